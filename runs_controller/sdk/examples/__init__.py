"""Example Engrams built on the Python SDK."""
