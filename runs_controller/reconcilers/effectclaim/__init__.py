"""The EffectClaim controller."""
