"""The cross-namespace reference policy (controller-behaviour.md §1.9, ruling 16)."""

from __future__ import annotations

POLICY_ALLOW = "allow"
POLICY_GRANT = "grant"


def cross_namespace_refusal(policy: str, own: str, target: str, kind: str) -> str | None:
    """Why a reference from namespace `own` to a `kind` in `target` is refused, or None.

    `deny` (the default) refuses every cross-namespace reference; `allow` accepts them;
    `grant` (ReferenceGrant objects) is not supported yet and says so.
    """
    if not target or target == own or policy == POLICY_ALLOW:
        return None
    if policy == POLICY_GRANT:
        return (
            f"cross-namespace reference from {own} to {kind} in {target} needs a ReferenceGrant, "
            "which this controller does not support yet (policy 'grant')"
        )
    return f"cross-namespace reference from {own} to {kind} in {target} is denied by policy"
