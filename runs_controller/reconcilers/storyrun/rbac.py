"""The per-run engram-runner ServiceAccount, Role and RoleBinding (§2.8).

Applied by server-side apply (create-or-update in one request, idempotent) when a run starts,
each with a plain owner reference to the run, so the garbage collector removes them with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.api.k8s import Role, RoleBinding, ServiceAccount
from runs_controller.api.meta import OwnerReference
from runs_controller.engine.runner_rbac import desired_runner_rbac, engram_keys, owned_by_storyrun
from runs_controller.kube.errors import AlreadyExists
from runs_controller.kube.resources import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS, STORY_RUNS
from runs_controller.runtime.informer import FIELD_MANAGER

if TYPE_CHECKING:
    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.reconcilers.storyrun.reconciler import StoryRunReconciler


def _owner(run: StoryRun) -> OwnerReference:
    meta = run.metadata
    assert meta is not None  # noqa: S101 - cached objects have metadata
    return OwnerReference(
        api_version=STORY_RUNS.api_version,
        kind=STORY_RUNS.kind,
        name=meta.name or "",
        uid=meta.uid or "",
    )


def _apply_body(resource: Any, obj: Any, owner: OwnerReference) -> Any:
    """The object as an apply body: apiVersion and kind set, owned by the run."""
    meta = obj.metadata
    return msgspec.structs.replace(
        obj,
        api_version=resource.api_version,
        kind=resource.kind,
        metadata=msgspec.structs.replace(meta, owner_references=[owner]),
    )


async def provision(rec: StoryRunReconciler, run: StoryRun, story: Story) -> str | None:
    """Apply the three objects. Returns why it must not when the ServiceAccount exists and is
    not this run's (the reference refuses to take one over): the run fails with that message."""
    meta = run.metadata
    assert meta is not None  # noqa: S101
    namespace = meta.namespace or ""
    engrams: dict[tuple[str, str], Engram] = {}
    templates: dict[str, EngramTemplate] = {}
    for key in engram_keys(story, namespace):
        engram = rec.engrams.get(*key)
        if engram is None:
            continue
        engrams[key] = engram
        template = rec.templates.get("", engram.spec.template_ref.name)
        if template is not None:
            templates[engram.spec.template_ref.name] = template
    desired = desired_runner_rbac(meta.name or "", namespace, story, engrams, templates)
    owner = _owner(run)
    kinds: tuple[tuple[Any, Any, type[Any]], ...] = (
        (SERVICE_ACCOUNTS, desired.service_account, ServiceAccount),
        (ROLES, desired.role, Role),
        (ROLE_BINDINGS, desired.role_binding, RoleBinding),
    )
    for resource, obj, kind in kinds:
        body = _apply_body(resource, obj, owner)
        name = body.metadata.name
        if resource is SERVICE_ACCOUNTS:
            try:
                await rec.kit.client.create(
                    resource, body, namespace, type=kind, field_manager=FIELD_MANAGER
                )
            except AlreadyExists:
                existing = await rec.kit.client.get(resource, name, namespace, type=kind)
                refs = existing.metadata.owner_references if existing.metadata else None
                if not owned_by_storyrun(refs, owner.name, owner.uid):
                    return (
                        f"ServiceAccount {namespace}/{name} already exists and is not owned by "
                        f"StoryRun {owner.name}: refusing to run its steps under it"
                    )
            else:
                if rec.metrics is not None:
                    rec.metrics.rbac_operation(resource.kind, "created")
                continue
        await rec.kit.client.apply(
            resource, body, name, namespace, type=kind, field_manager=FIELD_MANAGER, force=True
        )
        if rec.metrics is not None:
            rec.metrics.rbac_operation(resource.kind, "applied")
    return None
