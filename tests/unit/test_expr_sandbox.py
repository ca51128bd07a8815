"""The expression sandbox: every limit holds before its cost is paid, only TemplateErrors escape.

Memory is asserted with tracemalloc (the peak of what an evaluation allocates), cost with the
step counter; nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import math
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runs_controller.expr import (
    LimitExceeded,
    Limits,
    TemplateError,
    clear_caches,
    evaluate_condition,
    extract_step_references,
    extract_step_references_strict,
    resolve_template_string,
    resolve_value,
    validate_template_string,
)
from runs_controller.expr.cache import (
    CACHE_BYTES,
    CACHE_SIZE,
    MAX_CACHED_BYTES,
    analyze,
    cache_info,
)
from runs_controller.expr.functions import MAX_LAYOUT_BYTES, FuncError, FuncSpec, functions
from runs_controller.expr.limits import Budget
from runs_controller.expr.values import NO_VALUE, GoInt, deep_key

if TYPE_CHECKING:
    from collections.abc import Callable

MiB = 1024 * 1024


def peak_bytes(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """Peak traced allocation while `fn` runs, and what it raised (if anything)."""
    tracemalloc.start()
    try:
        fn()
        err: BaseException | None = None
    except Exception as exc:
        err = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, err


# --- lazy range --------------------------------------------------------------------------------


def test_range_over_a_large_int_is_lazy() -> None:
    peak, err = peak_bytes(
        lambda: resolve_template_string(
            "{{ range 1000000 }}{{ end }}", {}, limits=Limits(max_steps=10_000)
        )
    )
    assert isinstance(err, LimitExceeded)
    assert "max steps" in str(err)
    assert peak < 2 * MiB


def test_range_over_a_large_list_is_lazy() -> None:
    data = {"inputs": {"items": [0] * 1_000_000}}
    peak, err = peak_bytes(
        lambda: resolve_template_string(
            "{{ range .inputs.items }}{{ end }}", data, limits=Limits(max_steps=10_000)
        )
    )
    assert isinstance(err, LimitExceeded)
    assert peak < 2 * MiB


# --- amplifiers refuse before allocating -------------------------------------------------------

LIMIT = 256 * 1024
S = "a" * 100_000
MANY_S = " ".join([".inputs.s"] * 30)
NESTED: Any = [1] * 100_000
for _ in range(60):
    NESTED = [NESTED]
DATA: dict[str, Any] = {
    "inputs": {
        "s": S,
        "big": "a" * 1_000_000,
        "nl": "\n" * 2000,
        "lt": "<" * 100_000,
        "apos": "'" * 1_000_000,
        "ctrl": "\x01" * 100_000,
        "eacute": "é" * 100_000,
        "words": ["a"] * 20_000,
        "tens": ["aaaaaaaaaa"] * 10_000,
        "nested": NESTED,
        "obj": {f"k{i}": {"v": i} for i in range(20_000)},
    }
}
SEP = "-" * 200

AMPLIFIERS = {
    "indent": "{{ indent 3000 .inputs.nl }}",
    "nindent": "{{ nindent 3000 .inputs.nl }}",
    "replace": '{{ replace "a" "aaaaaaaaaa" .inputs.s }}',
    "replace-empty-old": '{{ replace "" "xxxxxxxxxx" .inputs.s }}',
    "wrapWith": '{{ wrapWith 1 "----------" .inputs.s }}',
    "join": f'{{{{ join "{SEP}" .inputs.words }}}}',
    "cat": f"{{{{ cat {MANY_S} }}}}",
    "print": f"{{{{ print {MANY_S} }}}}",
    "println": f"{{{{ println {MANY_S} }}}}",
    "printf-args": f'{{{{ printf "{"%v" * 30}" {MANY_S} }}}}',
    "printf-width": '{{ printf "%1000000s%1000000s%1000000s" "" "" "" }}',
    "printf-q": '{{ printf "%q" .inputs.ctrl }}',
    "printf-x": '{{ printf "%x%x" .inputs.s .inputs.s }}',
    "quote": f"{{{{ quote {MANY_S} }}}}",
    "squote": f"{{{{ squote {MANY_S} }}}}",
    "html": "{{ html .inputs.apos }}",
    "js": "{{ js .inputs.lt }}",
    "urlquery": "{{ urlquery .inputs.eacute }}",
    "toJson-escapes": "{{ toJson .inputs.lt }}",
    "toPrettyJson-indent": "{{ toPrettyJson .inputs.nested }}",
    "mustToRawJson": "{{ mustToRawJson .inputs.obj }}",
    "toString": "{{ toString .inputs.obj }}",
    "b64enc": "{{ b64enc .inputs.big }}",
    "b32enc": "{{ b32enc .inputs.big }}",
    "list-aliases": f"{{{{ len (list {MANY_S}) }}}}",
    "tuple-aliases": f"{{{{ len (tuple {MANY_S}) }}}}",
    "dict-aliases": "{{ len (dict " + " ".join(f'"k{i}" .inputs.s' for i in range(30)) + ") }}",
    "append-aliases": f"{{{{ len (append (list {MANY_S}) .inputs.s) }}}}",
    "concat": "{{ len (concat " + " ".join([".inputs.tens"] * 30) + ") }}",
    "splitList": '{{ len (splitList "" .inputs.s) }}',
    "split": '{{ len (split "" .inputs.s) }}',
    "randAlpha": "{{ len (randAlpha 1000000) }}",
}


@pytest.mark.parametrize("template", AMPLIFIERS.values(), ids=AMPLIFIERS.keys())
def test_amplifiers_refuse_before_allocating(template: str) -> None:
    """Each template would build a value far over the limit; it is refused having allocated
    no more than about the limit itself."""
    limits = Limits(max_value_bytes=LIMIT, max_output_bytes=0)
    resolve_template_string("{{ 1 }}", {}, limits=limits)  # warm imports and caches
    peak, err = peak_bytes(lambda: resolve_template_string(template, DATA, limits=limits))
    assert isinstance(err, LimitExceeded), repr(err)
    assert peak < 2 * LIMIT


def test_value_size_counts_utf8_bytes_not_characters() -> None:
    limits = Limits(max_value_bytes=1000)
    build = '{{ replace "a" "é" (printf "%600s" "" | replace " " "a") }}'  # 600 chars, 1200 bytes
    with pytest.raises(LimitExceeded, match="max size 1000 bytes"):
        resolve_template_string(build, {}, limits=limits)
    assert resolve_template_string(build, {}, limits=Limits(max_value_bytes=1200)) == "é" * 600


def test_output_limit_stops_printing_a_large_value_early() -> None:
    peak, err = peak_bytes(
        lambda: resolve_template_string("x{{ .inputs.obj }}", DATA, max_output_bytes=1000)
    )
    assert isinstance(err, LimitExceeded)
    assert "template output exceeds max bytes (current=1, writing=" in str(err)
    assert peak < LIMIT


# --- real cost is charged ----------------------------------------------------------------------


def test_uniq_without_has_charge_their_input_size() -> None:
    data = {"inputs": {"items": list(range(2000))}}
    for template in (
        "{{ len (uniq .inputs.items) }}",
        "{{ len (without .inputs.items 1) }}",
        "{{ has 5000 .inputs.items }}",
    ):
        assert resolve_template_string(template, data) in ("2000", "1999", "false")
        with pytest.raises(LimitExceeded, match="max steps 1000"):
            resolve_template_string(template, data, limits=Limits(max_steps=1000))


def invoke(name: str, args: list[object], limits: Limits | None = None) -> tuple[object, int]:
    # These tests count steps; a generous deadline keeps a loaded machine from failing them.
    budget = Budget(limits or Limits(max_steps=10**9, timeout_seconds=120.0))
    return functions()[name].invoke(args, budget), budget.steps


@pytest.mark.parametrize("name", ["uniq", "without", "has"])
def test_hashing_helpers_cost_grows_linearly(name: str) -> None:
    def steps(n: int) -> int:
        items = [[i, str(i)] for i in range(n)]
        by_name: dict[str, list[object]] = {"has": [5, items], "uniq": [items]}
        args = by_name.get(name, [items, 5])
        return invoke(name, args)[1]

    small, large = steps(4000), steps(16000)
    assert 3.5 * small <= large <= 4.5 * small  # 4x the input, 4x the charge (not 16x)


def test_uniq_keeps_the_first_of_each_deeply_equal_group() -> None:
    nan = math.nan
    items = [1, 1.0, GoInt(1), GoInt(1, "int64"), True, "1", None, NO_VALUE, nan, nan, -0.0, 0]
    items += [[1], [1.0], {"a": 1}, {"a": 1.0}, [nan], [nan], [], {}]
    got, _ = invoke("uniq", [items])
    assert isinstance(got, list)
    want = [1, GoInt(1), GoInt(1, "int64"), True, "1", None, NO_VALUE, nan, nan, -0.0]
    want += [[1], {"a": 1}, [nan], [nan], [], {}]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g is w or repr(g) == repr(w)


def reference_deep_equal(a: object, b: object) -> bool:
    """The pairwise deep equality uniq/without/has used before hashing (the oracle)."""
    if type(a) is not type(b) and not (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool | GoInt)
        and not isinstance(b, bool | GoInt)
    ):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(reference_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            reference_deep_equal(x, y) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, int | float) and not isinstance(a, bool | GoInt):
        return float(a) == float(b)  # type: ignore[arg-type]
    return a == b


scalars = (
    st.none()
    | st.just(NO_VALUE)
    | st.booleans()
    | st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 2**53, 2**53 + 1, float(2**53), math.nan])
    | st.integers(-3, 3)
    | st.builds(GoInt, st.integers(-2, 2), st.sampled_from(["int", "int64"]))
    | st.sampled_from(["", "a", "1"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=8,
)


@settings(max_examples=1000, deadline=None)
@given(a=values, b=values)
def test_hash_key_equality_is_exactly_deep_equality(a: object, b: object) -> None:
    memo: dict[int, tuple[object, object]] = {}
    ka, kb = deep_key(a, memo, lambda _n: None), deep_key(b, memo, lambda _n: None)
    assert (ka == kb) == reference_deep_equal(a, b)
    if ka == kb:
        assert hash(ka) == hash(kb)


def test_resolve_value_shares_one_budget() -> None:
    one = "{{ range 500 }}{{ end }}"
    limits = Limits(max_steps=5000)
    assert resolve_value(one, {}, limits=limits) == ""
    with pytest.raises(LimitExceeded, match="max steps 5000"):
        resolve_value([one] * 10, {}, limits=limits)


def test_parsing_is_charged_before_it_is_done() -> None:
    clear_caches()
    text = "{{ 1 }}" * 20_000
    with pytest.raises(LimitExceeded, match="max steps"):
        resolve_template_string(text, {})
    assert cache_info().entries == 0  # refused before the analysis ran (it would be cached)


def test_time_is_checked_inside_a_long_function_call() -> None:
    """A fake clock jumps past the deadline while uniq hashes nested values: the call stops."""
    reads = [0.0]

    def clock() -> float:
        reads[0] += 1.0
        return reads[0]

    budget = Budget(Limits(timeout_seconds=10.0, max_steps=10**9), clock=clock)
    items = [[[i] * 300] for i in range(200)]
    with pytest.raises(LimitExceeded, match="timed out"):
        functions()["uniq"].invoke([items], budget)
    assert reads[0] >= 11


# --- only TemplateErrors escape ----------------------------------------------------------------

HUGE = "9223372036854775807"


@pytest.mark.parametrize(
    "template",
    [
        f'{{{{ date "2006" {HUGE} }}}}',
        f'{{{{ dateInZone "2006" {HUGE} "UTC" }}}}',
        f'{{{{ date_in_zone "2006" {HUGE} "UTC" }}}}',
        f"{{{{ htmlDate {HUGE} }}}}",
        f'{{{{ htmlDateInZone {HUGE} "UTC" }}}}',
        '{{ date "2006" -9223372036854775808 }}',
        '{{ mustToDate "20062006" "x" }}',
        '{{ mustToDate "2006-01-02" "2024-02-30" }}',
        '{{ mustToDate "-07:00" "+99:00" }}',
    ],
)
def test_function_failures_are_template_errors(template: str) -> None:
    with pytest.raises(TemplateError, match="error calling"):
        resolve_template_string(template, {})


def test_layout_with_repeated_elements_parses_like_go() -> None:
    assert resolve_template_string('{{ toDate "20062006" "20232024" | date "2006" }}', {}) == (
        "2024"
    )
    assert resolve_template_string('{{ toDate "20062006" "x" | date "2006" }}', {}) == "0001"
    assert (
        resolve_template_string(
            '{{ mustToDate "2006-01-02T15:04:05Z07:00" "2024-03-05T01:02:03.25+01:30" '
            '| date "15:04:05.000 -07:00" }}',
            {},
        )
        == "01:02:03.250 +01:30"
    )


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (OSError(75, "Value too large"), FuncError, "OSError: [Errno 75] Value too large"),
        (LookupError("nope"), FuncError, "LookupError: nope"),
        (ValueError("bad"), FuncError, "bad"),
        (RecursionError(), LimitExceeded, "nested too deeply"),
        (MemoryError(), LimitExceeded, "out of memory"),
    ],
)
def test_any_exception_in_a_function_becomes_a_template_error(
    exc: BaseException, kind: type[TemplateError], text: str
) -> None:
    def boom() -> object:
        raise exc

    with pytest.raises(kind, match=text.replace("[", r"\[").replace("]", r"\]")):
        FuncSpec("boom", boom).invoke([], Budget(Limits()))


@pytest.mark.parametrize(
    "call",
    [
        lambda: resolve_template_string(None, {}),  # type: ignore[arg-type]
        lambda: resolve_template_string(b"{{ 1 }}", {}),  # type: ignore[arg-type]
        lambda: evaluate_condition(3, {}),  # type: ignore[arg-type]
        lambda: validate_template_string(None, roots=["inputs"]),  # type: ignore[arg-type]
        lambda: extract_step_references_strict(None),  # type: ignore[arg-type]
        lambda: resolve_value({"$bubuTemplate": "{{ .a | upper }}"}, {"a": {1, 2}}),
    ],
)
def test_public_api_raises_only_template_errors(call: Callable[[], object]) -> None:
    with pytest.raises(TemplateError):
        call()
    assert extract_step_references(None) == set()  # type: ignore[arg-type]


def test_cyclic_data_is_an_error_not_a_hang() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    steps: dict[str, Any] = {"a": {"output": cyclic}}
    for template in ("{{ toJson .inputs.c }}", "{{ len (list .inputs.c) }}", "x{{ .steps.a }}"):
        with pytest.raises(TemplateError):
            resolve_template_string(template, {"inputs": {"c": cyclic}, "steps": steps})


def test_negative_limits_are_template_errors_and_value_errors() -> None:
    with pytest.raises(TemplateError):
        Limits(max_steps=-1)
    with pytest.raises(ValueError, match="negative"):
        resolve_value("{{ 1 }}", {}, max_output_bytes=-1)


# --- the compile cache -------------------------------------------------------------------------


def test_compile_cache_is_bounded_in_bytes() -> None:
    clear_caches()
    padding = "x" * 200_000  # text outside actions costs little to parse but fills the cache
    for i in range(100):
        resolve_template_string(f"{padding}{{{{ {i} }}}}", {}, max_output_bytes=0)
    info = cache_info()
    assert info.bytes <= CACHE_BYTES
    assert info.entries < 100 * 2  # older entries were evicted for their size


def test_compile_cache_does_not_keep_a_very_large_template() -> None:
    clear_caches()
    big = "x" * (MAX_CACHED_BYTES + 1) + "{{ 1 }}"
    resolve_template_string(big, {}, max_output_bytes=0)
    resolve_template_string(big, {}, max_output_bytes=0)
    assert cache_info().hits == 0
    assert cache_info().entries == 0


def test_compile_cache_evicts_the_least_recently_used_entry() -> None:
    clear_caches()
    first = analyze("{{ 0 }}")
    for i in range(1, CACHE_SIZE + 1):
        analyze(f"{{{{ {i} }}}}")
    assert cache_info().entries == CACHE_SIZE
    assert analyze("{{ 0 }}") is not first  # evicted, analysed again
    assert analyze(f"{{{{ {CACHE_SIZE} }}}}") is analyze(f"{{{{ {CACHE_SIZE} }}}}")


def test_concurrent_evaluations_in_threads() -> None:
    """A few worker threads (as anyio.to_thread runs them) share the caches, not their state."""
    clear_caches()
    barrier = threading.Barrier(4)

    def work(worker: int) -> list[object]:
        barrier.wait()
        out: list[object] = []
        for i in range(300):
            vars_ = {"inputs": {"n": i, "w": worker}}
            out.append(resolve_template_string("{{ add .inputs.n .inputs.w }}", vars_))
            out.append(resolve_template_string(f"x{{{{ .inputs.n }}}}-{i % 7}", vars_))
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    for worker, got in enumerate(results):
        assert got[0::2] == [str(i + worker) for i in range(300)]
        assert got[1::2] == [f"x{i}-{i % 7}" for i in range(300)]
    info = cache_info()
    assert info.entries <= CACHE_SIZE
    assert info.bytes <= CACHE_BYTES


@pytest.mark.parametrize("template", ["{{ date .inputs.l 0 }}", '{{ mustToDate .inputs.l "x" }}'])
def test_time_layouts_longer_than_4096_bytes_are_refused_before_the_scan(template: str) -> None:
    # One regex scan of a megabyte layout holds the interpreter ~0.1 s (the loop's thread too,
    # even when the evaluation runs off the loop): refused by size first, counted in bytes.
    too_long = "é" * (MAX_LAYOUT_BYTES // 2) + "-"
    with pytest.raises(TemplateError, match=f"time layout of {MAX_LAYOUT_BYTES + 1} bytes"):
        resolve_template_string(template, {"inputs": {"l": too_long}})
    at_limit = {"inputs": {"l": "é" * (MAX_LAYOUT_BYTES // 2)}}
    assert resolve_template_string("{{ date .inputs.l 0 }}", at_limit) == at_limit["inputs"]["l"]
