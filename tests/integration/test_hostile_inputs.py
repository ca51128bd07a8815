"""The hostile-input suite: a generated corpus of malformed Stories, StoryRuns, StoryTriggers
and EngramTemplates (tests/hostile/strategies.py) against the real apiserver with the four
controllers running in this process and a stand-in kubelet.

Every case is either refused by the apiserver with a 422 naming the field, or settles (terminal,
or waiting) with a reason and a message naming its cause. Meanwhile no reconciler raises
anything but the benign races, no object is reconciled without bound, a settled object stays
quiet, and a valid chain run submitted with every batch still succeeds.

`HOSTILE_EXAMPLES=400` scales the corpus up (nightly); the default keeps the suite near a minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio
import pytest

from runs_controller.kube.client import KubeClient
from tests.hostile.strategies import corpus, summary
from tests.integration.hostile_support import (
    Names,
    Submitted,
    Tally,
    case_reconciles,
    counted_controller,
    settle,
    submit,
    verdict,
)
from tests.integration.steprun_support import echo, fake_kubelet
from tests.integration.storyrun_support import (
    DONE,
    create_engram,
    create_run,
    create_story,
    engram_step,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(1800)

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "60"))
"""Cases in the corpus, spread over every category (tests/hostile/strategies.py)."""
BATCH = 12
"""Cases submitted at once (with one valid run)."""
SETTLE_WITHIN = 60.0
MAX_RECONCILES_PER_CASE = 40
"""Reconciles of all the objects of one case (run, trigger, StepRuns) over the whole suite; a
valid one-step run takes about 8."""
QUIET_RECONCILES_PER_CASE = 2
"""Reconciles a settled case may still get while a whole valid chain run goes through."""

CHAIN = {
    "steps": [
        engram_step("one"),
        engram_step("two", needs=["one"], **{"with": {"v": "{{ steps.one.output.step }}"}}),
        engram_step("three", needs=["two"]),
    ]
}

T = TypeVar("T")


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(index: int) -> None:
        results[index] = await calls[index]()

    async with anyio.create_task_group() as group:
        for index in range(len(calls)):
            group.start_soon(one, index)
    return results


async def test_hostile_inputs_are_refused_or_settle_naming_their_cause(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    cases = corpus(EXAMPLES)
    tally = Tally()
    await create_engram(client, namespace)
    await create_story(client, namespace, "chain", CHAIN)
    done: list[Submitted] = []
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    kubelet = fake_kubelet(client, namespace, echo())
    async with counted_controller(client, namespace, tally) as manager, kubelet:
        for batch, first in enumerate(range(0, len(cases), BATCH)):
            chunk = list(enumerate(cases[first : first + BATCH], start=first))
            submitted = await gather(
                [partial(submit, client, case, Names.of(namespace, i)) for i, case in chunk]
            )
            await create_run(client, namespace, f"valid-{batch}", "chain")
            accepted = [s for s in submitted if s.refusal is None]
            await gather([partial(settle, client, s, SETTLE_WITHIN) for s in accepted])
            valid = await wait_for_phase(client, namespace, f"valid-{batch}", DONE)
            assert valid.status is not None and valid.status.phase == "Succeeded", valid.status
            done.extend(submitted)
        settled = [case_reconciles(tally, item) for item in done]
        # A whole valid run goes through while the settled cases must stay quiet.
        await create_run(client, namespace, "witness", "chain")
        witness = await wait_for_phase(client, namespace, "witness", DONE)
        assert witness.status is not None and witness.status.phase == "Succeeded"
        assert manager.controllers_started, "the manager stopped leading"
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started

    totals = [case_reconciles(tally, item) for item in done]
    problems: list[str] = []
    for index, item in enumerate(done):
        found = verdict(item)
        if totals[index] > MAX_RECONCILES_PER_CASE:
            found.append(f"{totals[index]} reconciles")
        if totals[index] - settled[index] > QUIET_RECONCILES_PER_CASE:
            found.append(f"{totals[index] - settled[index]} reconciles after it settled")
        problems += [f"case {index}: {problem}\n    {item.case.describe()}" for problem in found]
    problems += [f"{c} raised on {key}: {error[:500]}" for c, key, error in tally.unexpected()]
    report(done, totals, tally, cpu, wall)
    assert not problems, "\n".join(problems)


def report(done: list[Submitted], totals: list[int], tally: Tally, cpu: float, wall: float) -> None:
    """One summary line and one line per case (shown with -s)."""
    refused = sum(1 for s in done if s.refusal is not None)
    busiest = max(range(len(done)), key=totals.__getitem__)
    print(
        f"hostile inputs: {len(done)} cases {summary([s.case for s in done])}, {refused} refused "
        f"by the apiserver, {len(done) - refused} settled; reconciles per case: max "
        f"{totals[busiest]} ({done[busiest].case.category}), total {sum(totals)}; "
        f"{len(tally.errors)} benign reconcile errors; process CPU {cpu:.1f} s in {wall:.1f} s"
    )
    for index, item in enumerate(done):
        if item.refusal is not None:
            shown = f"refused {item.refusal.code}: {item.refusal.causes[:2]}"
        elif item.outcome is not None:
            outcome = item.outcome
            shown = f"{outcome.phase}/{outcome.reason}: {outcome.text[:240]}"
        else:
            shown = "-"
        print(f"  {index:3d} {item.case.category[:60]:60s} {totals[index]:3d} {shown}")
