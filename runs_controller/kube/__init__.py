"""The Kubernetes API client: one aiohttp session, msgspec all the way, typed errors."""
