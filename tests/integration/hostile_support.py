"""The harness of the hostile-input suite: submit a generated case, judge what it ends in, and
count every reconcile per object key (and every exception a reconciler raised).

A case is judged on the apiserver's answer (a 422 whose causes name a field) or on the object
it settles in: a StoryRun terminal, `Pending` with a reason, or `Running` with only Blocked or
finished steps; a StoryTrigger decided. Waiting is a poll with a deadline, never a sleep.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.api.runs.storytrigger import StoryTrigger
from runs_controller.engine.naming import derive_storytrigger_name
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    NotFound,
)
from runs_controller.kube.resources import (
    ENGRAM_TEMPLATES,
    ENGRAMS,
    STORIES,
    STORY_RUNS,
    STORY_TRIGGERS,
)
from runs_controller.runtime.manager import Manager
from runs_controller.runtime.reconciler import Reconciler, Request, Result, TerminalError
from runs_controller.testing.wait import poll_until_async
from tests.hostile import crd_fields
from tests.hostile.model import ENGRAM, NAMESPACE, STORY, TEMPLATE, Case, substitute
from tests.integration.storyrun_support import TERMINAL, running_controller

BENIGN = (Conflict, AlreadyExists, NotFound)
"""Errors a reconcile may meet in a race (a stale resourceVersion, a name taken or gone): the
controller retries them by design. Anything else a reconciler raises is a bug."""

SHARED_ENGRAM = "echo"
"""The valid Engram (template `echo`) steps use unless a case brings its own template."""


@dataclass
class Tally:
    """Reconciles per (controller, namespace/name), and the exceptions reconcilers raised."""

    reconciles: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[tuple[str, str, str]] = field(default_factory=list)

    def of(self, key: str) -> int:
        """Reconciles of `key` by every controller."""
        return sum(n for (_, k), n in self.reconciles.items() if k == key)

    def unexpected(self) -> list[tuple[str, str, str]]:
        return [e for e in self.errors if not e[2].startswith(tuple(c.__name__ for c in BENIGN))]


class Counting:
    """A reconciler that counts each call of the one it wraps and records what it raised."""

    def __init__(self, inner: Reconciler, controller: str, tally: Tally) -> None:
        self.inner, self.controller, self.tally = inner, controller, tally

    async def reconcile(self, request: Request) -> Result:
        self.tally.reconciles[(self.controller, request.key)] += 1
        try:
            return await self.inner.reconcile(request)
        except TerminalError:
            raise  # reported on the object by design
        except Exception as error:
            self.tally.errors.append(
                (self.controller, request.key, f"{type(error).__name__}: {error}")
            )
            raise


class CountingReporter(Counting):
    """`Counting` for reconcilers that report terminal errors on the object."""

    async def report_terminal(self, request: Request, error: TerminalError) -> None:
        await self.inner.report_terminal(request, error)  # type: ignore[attr-defined]


@asynccontextmanager
async def counted_controller(
    client: KubeClient, namespace: str, tally: Tally
) -> AsyncIterator[Manager]:
    """The manager with the four controllers, every reconciler wrapped in `Counting`."""

    def count(manager: Manager) -> None:
        for controller in manager.controllers:
            wrapper = (
                CountingReporter if hasattr(controller.reconciler, "report_terminal") else Counting
            )
            controller.reconciler = wrapper(controller.reconciler, controller.name, tally)

    async with running_controller(client, namespace, prepare=count) as manager:
        yield manager


# -- submitting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    namespace: str
    prefix: str
    """Every object of the case is named `<prefix>-...` (but a trigger, named by derivation)."""
    story: str
    run: str
    trigger: str
    engram: str
    template: str

    @classmethod
    def of(cls, namespace: str, index: int) -> Names:
        prefix = f"h{index}"
        return cls(
            namespace,
            prefix,
            f"{prefix}-s",
            f"{prefix}-r",
            f"{prefix}-t",
            f"{prefix}-e",
            f"{namespace}-{prefix}",
        )

    def tokens(self, case: Case) -> dict[str, str]:
        return {
            STORY: self.story,
            ENGRAM: self.engram if case.template is not None else SHARED_ENGRAM,
            TEMPLATE: self.template,
            NAMESPACE: self.namespace,
        }


@dataclass
class Refusal:
    kind: str
    code: int
    causes: list[tuple[str, str]]
    """(field, message) of every cause."""
    message: str


@dataclass
class Outcome:
    """What an accepted case settled in: phase (or decision), reason and every text it shows."""

    phase: str
    reason: str
    text: str


@dataclass
class Submitted:
    case: Case
    names: Names
    refusal: Refusal | None = None
    judged: str | None = None
    """"run" or "trigger": the object whose outcome is judged (None: refused)."""
    name: str = ""
    key: str = ""
    outcome: Outcome | None = None
    errors: list[str] = field(default_factory=list)


def _meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def trigger_name(spec: Any, names: Names) -> str:
    """The name the trigger must have (`<story>-trigger-<hash>`, §6), or a plain one when the
    spec is too malformed to derive it (the apiserver refuses those anyway)."""
    try:
        ref, identity = spec["storyRef"], spec["deliveryIdentity"]
        derived = derive_storytrigger_name(
            str(ref.get("namespace") or names.namespace),
            str(ref["name"]),
            str(identity.get("key") or "").strip(),
            str(identity["submissionId"]).strip(),
        )
    except (KeyError, TypeError, AttributeError):
        return names.trigger
    return derived or names.trigger


def bodies(case: Case, names: Names) -> list[tuple[str, Any, type[Any], dict[str, Any]]]:
    """(kind, resource, type, body) to create, in order, placeholders replaced."""
    tokens = names.tokens(case)
    ns = names.namespace
    out: list[tuple[str, Any, type[Any], dict[str, Any]]] = []
    if case.template is not None:
        out.append(
            (
                "EngramTemplate",
                ENGRAM_TEMPLATES,
                EngramTemplate,
                {"metadata": _meta(names.template, None), "spec": case.template},
            )
        )
        engram = {"templateRef": {"name": names.template}}
        out.append(
            ("Engram", ENGRAMS, Engram, {"metadata": _meta(names.engram, ns), "spec": engram})
        )
    story = (
        case.story
        if case.story is not None
        else {"steps": [{"name": "a", "ref": {"name": ENGRAM}}]}
    )
    out.append(("Story", STORIES, Story, {"metadata": _meta(names.story, ns), "spec": story}))
    if case.trigger is not None:
        spec = substitute(case.trigger, tokens)
        body = {"metadata": _meta(trigger_name(spec, names), ns), "spec": spec}
        out.append(("StoryTrigger", STORY_TRIGGERS, StoryTrigger, body))
    else:
        run = case.run if case.run is not None else {"storyRef": {"name": STORY}}
        meta = _meta(names.run, ns)
        if case.run_annotations:
            meta["annotations"] = dict(case.run_annotations)
        out.append(("StoryRun", STORY_RUNS, StoryRun, {"metadata": meta, "spec": run}))
    return [(kind, res, typ, substitute(body, tokens)) for kind, res, typ, body in out]


async def submit(client: KubeClient, case: Case, names: Names) -> Submitted:
    """Create the case's objects in order; stop at the first refusal."""
    submitted = Submitted(case, names)
    for kind, resource, type_, body in bodies(case, names):
        namespace = body["metadata"].get("namespace")
        submitted.name = body["metadata"]["name"]
        try:
            await client.create(resource, body, namespace, type=type_)
        except ApiError as error:
            causes = [(c.field or "", c.message or "") for c in error.causes]
            submitted.refusal = Refusal(kind, error.code, causes, str(error)[:2000])
            return submitted
    submitted.judged = "trigger" if case.trigger is not None else "run"
    submitted.key = f"{names.namespace}/{submitted.name}"
    return submitted


# -- judging ------------------------------------------------------------------------------------


def _error_text(error: dict[str, Any]) -> str:
    """`status.error` as it reads (JSON would escape the quotes in a message it quotes)."""
    return " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in error.items()
    )


def run_outcome(run: StoryRun) -> Outcome | None:
    """The run's settled outcome, None while it is still working."""
    status = run.status
    if status is None or not status.phase:
        return None
    ready = next((c for c in status.conditions or [] if c.type == "Ready"), None)
    states = status.step_states or {}
    texts = [
        status.phase,
        status.message or "",
        ready.reason if ready else "",
        ready.message if ready else "",
        _error_text(status.error) if status.error else "",
        *(f"{name}: {s.phase}: {s.message or ''}" for name, s in sorted(states.items())),
    ]
    reason = (ready.reason if ready else "") or ""
    text = " | ".join(t for t in texts if t)
    if status.phase in TERMINAL:
        return Outcome(status.phase, reason, text)
    if status.phase == "Pending" and reason:
        return Outcome("Pending", reason, text)
    blocked = [s for s in states.values() if s.phase == "Blocked"]
    settled = all(s.phase == "Blocked" or s.phase in TERMINAL for s in states.values())
    if status.phase == "Running" and blocked and settled:
        return Outcome("Blocked", reason, text)
    return None


def trigger_outcome(trigger: StoryTrigger) -> Outcome | None:
    status = trigger.status
    if status is None or status.decision not in ("Created", "Reused", "Rejected"):
        return None
    ready = next((c for c in status.conditions or [] if c.type == "Ready"), None)
    texts = [status.decision, status.reason or "", status.message or ""]
    if ready is not None:
        texts += [ready.reason or "", ready.message or ""]
    return Outcome(status.decision, status.reason or "", " | ".join(t for t in texts if t))


WAITING_FOR = re.compile(r"Waiting for (Engram|Story|EngramTemplate) '([^/']*)/([^']+)'")
KINDS: dict[str, tuple[Any, type[Any]]] = {
    "Engram": (ENGRAMS, Engram),
    "Story": (STORIES, Story),
    "EngramTemplate": (ENGRAM_TEMPLATES, EngramTemplate),
}


async def still_missing(client: KubeClient, outcome: Outcome) -> bool:
    """A waiting outcome is settled only while what it waits for is really absent: right after
    a create the controller's cache may not show it yet, and the wait ends by itself."""
    for kind, namespace, name in WAITING_FOR.findall(outcome.text):
        resource, type_ = KINDS[kind]
        try:
            await client.get(resource, name, namespace or None, type=type_)
        except NotFound:
            continue
        return False
    return True


async def settle(client: KubeClient, submitted: Submitted, within: float) -> None:
    """Wait for the judged object to settle (recorded in `submitted.outcome`)."""
    names = submitted.names
    last = ["nothing yet"]

    async def settled() -> Outcome | None:
        if submitted.judged == "trigger":
            trigger = await client.get(
                STORY_TRIGGERS, submitted.name, names.namespace, type=StoryTrigger
            )
            return trigger_outcome(trigger)
        run = await client.get(STORY_RUNS, submitted.name, names.namespace, type=StoryRun)
        outcome = run_outcome(run)
        status = run.status
        last[0] = (
            f"{status.phase}: {status.message}; steps {status.step_states}"[:600]
            if status is not None
            else "no status"
        )
        if outcome is not None and outcome.phase in ("Pending", "Blocked"):
            return outcome if await still_missing(client, outcome) else None
        return outcome

    try:
        submitted.outcome = await poll_until_async(
            settled, within=within, what=f"{submitted.key} to settle", max_interval=0.5
        )
    except TimeoutError as error:
        submitted.errors.append(f"never settled ({error}); last seen {last[0]}")


def case_reconciles(tally: Tally, item: Submitted) -> int:
    """Reconciles of every object of a case: those named `<prefix>-...` (its run, StepRuns,
    sub-runs, the run a trigger created) and its trigger."""
    prefix = f"{item.names.namespace}/{item.names.prefix}-"
    return sum(
        n
        for (_, key), n in tally.reconciles.items()
        if key.startswith(prefix) or (item.key and key == item.key)
    )


def verdict(submitted: Submitted) -> list[str]:
    """What is wrong with how the case ended (empty: it ended as it must)."""
    case, expect = submitted.case, submitted.case.expect
    problems = list(submitted.errors)
    refusal = submitted.refusal
    if refusal is not None:
        if expect.refused == "never":
            return [*problems, f"refused, must be accepted: {refusal.message}"]
        if refusal.kind != case.kind:
            problems.append(f"a {refusal.kind} was refused, not the {case.kind}: {refusal.message}")
        if refusal.code != 422:
            problems.append(f"refused with {refusal.code}, not 422: {refusal.message}")
        named = [
            f for f, _ in refusal.causes if any(crd_fields.related(f, x) for x in expect.fields)
        ]
        if not named:
            problems.append(f"no cause names {expect.fields}: {refusal.causes}")
        problems += [
            f"refused for its length at the limit: {field_}: {message}"
            for field_, message in refusal.causes
            for bad in expect.forbidden_causes
            if bad.lower() in message.lower()
        ]
        return problems
    if expect.refused == "must":
        problems.append("accepted, must be refused")
    outcome = submitted.outcome
    if outcome is None:
        return problems or ["no outcome"]
    if expect.phases and outcome.phase not in expect.phases:
        problems.append(f"settled {outcome.phase}, expected one of {sorted(expect.phases)}")
    if not outcome.reason:
        problems.append("settled without a condition reason")
    elif expect.reasons and outcome.reason not in expect.reasons:
        problems.append(f"reason {outcome.reason}, expected one of {sorted(expect.reasons)}")
    text = outcome.text.lower()
    tokens = submitted.names.tokens(case)
    for mention in expect.mentions:
        wanted = str(substitute(mention, tokens))
        if wanted.lower() not in text:
            problems.append(f"the outcome does not mention {wanted!r}")
    if expect.any_of and not any(str(w).lower() in text for w in expect.any_of):
        problems.append(f"the outcome mentions none of {expect.any_of}")
    if outcome.phase != "Succeeded" and expect.phases and len(outcome.text) < 10:
        problems.append("the outcome says nothing")
    return problems
