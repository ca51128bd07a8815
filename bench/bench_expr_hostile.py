"""Hostile templates against the expression sandbox: each runs once with the default limits.

Per template: wall time, CPU time, peak traced memory (tracemalloc, measured in a second run so
it does not slow the timed one) and the outcome (error class and message, or the result).
Every template runs in its own child process, with a memory cap and a time limit, so an old
version that explodes cannot take the machine down with it.

    .venv/bin/python bench/bench_expr_hostile.py                # this checkout
    .venv/bin/python bench/bench_expr_hostile.py --src /tmp/old --small --mem-mb 4096
                                                                  # another checkout, smaller N

`--small` divides the sizes for versions that would need minutes or gigabytes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

# name -> (template, vars builder name, size parameters (normal, small))
CASES: dict[str, tuple[str, str, tuple[int, int]]] = {
    "range int": ("{{{{ range {n} }}}}{{{{ end }}}}", "none", (30_000_000, 3_000_000)),
    "range list": ("{{ range .inputs.items }}{{ end }}", "items", (3_000_000, 1_000_000)),
    "indent": ("{{{{ indent {n} .inputs.nl }}}}", "nl", (1_000_000, 100_000)),
    "replace": (
        (
            '{{{{ $a := printf "%{n}s" "" }}}}'
            '{{{{ $b := replace " " "a" (printf "%100000s" "") }}}}'
            '{{{{ $c := replace "a" $a $b }}}}{{{{ len $c }}}}'
        ),
        "none",
        (10_000, 1_000),
    ),
    "printf widths": (
        '{{{{ printf "' + "%1000000s" * 50 + '" ' + '"" ' * 50 + "}}}}",
        "none",
        (1, 1),
    ),
    "join sep": ('{{{{ join (printf "%{n}s" "") .inputs.words }}}}', "words", (100_000, 10_000)),
    "list aliases+toJson": (
        (
            "{{ $a := list .inputs.s .inputs.s .inputs.s .inputs.s }}"
            "{{ $b := list $a $a $a $a }}{{ $c := list $b $b $b $b }}{{ $d := list $c $c $c $c }}"
            "{{ $e := list $d $d $d $d }}{{ $f := list $e $e $e $e }}{{ len (toJson $f) }}"
        ),
        "s",
        (1, 1),
    ),
    "toPrettyJson deep": ("{{ len (toPrettyJson .inputs.nested) }}", "nested", (100_000, 20_000)),
    "toJson escapes": ("{{ len (toJson .inputs.lt) }}", "lt", (1_000_000, 200_000)),
    "uniq 8000": ("{{ len (uniq .inputs.distinct) }}", "distinct", (8000, 2000)),
    "without 500 args": (
        "{{ len (without .inputs.distinct " + " ".join(map(str, range(500))) + ") }}",
        "distinct",
        (8000, 2000),
    ),
    "has in range": (
        "{{ range .inputs.distinct }}{{ if has . $.inputs.distinct }}{{ end }}{{ end }}",
        "distinct",
        (8000, 1000),
    ),
    "wrap width 1": ("{{ len (wrap 1 .inputs.word) }}", "word", (200_000, 50_000)),
    "date layout": ('{{{{ len (date (printf "%{n}s" "") 0) }}}}', "none", (1_000_000, 50_000)),
    "semverCompare spaces": (
        '{{{{ semverCompare (printf "1.0%{n}s x" "") "1.0.0" }}}}',
        "none",
        (100_000, 20_000),
    ),
    "snakecase capitals": ("{{ snakecase .inputs.upper }}", "upper", (200_000, 20_000)),
    "subscripts": ("{{{{ .inputs.o" + '["x"]' + "}}}}", "none", (20_000, 5_000)),
    "many lines": ("{{ 1 }}\n", "none", (20_000, 5_000)),
    "date int64 max": ('{{ date "2006" 9223372036854775807 }}', "none", (1, 1)),
    "dateInZone int64 max": ('{{ dateInZone "2006" 9223372036854775807 "UTC" }}', "none", (1, 1)),
    "date_in_zone int64 max": (
        '{{ date_in_zone "2006" 9223372036854775807 "UTC" }}',
        "none",
        (1, 1),
    ),
    "htmlDate int64 max": ("{{ htmlDate 9223372036854775807 }}", "none", (1, 1)),
    "htmlDateInZone int64 max": (
        '{{ htmlDateInZone 9223372036854775807 "UTC" }}',
        "none",
        (1, 1),
    ),
    "toDate 20062006": ('{{ toDate "20062006" "20242024" }}', "none", (1, 1)),
    "mustToDate 20062006": ('{{ mustToDate "20062006" "x" }}', "none", (1, 1)),
    "cyclic step data": ("{{ toJson .steps.a }}", "cyclic", (1, 1)),
    "fromJson 2 MB": ("{{ len (fromJson .inputs.json) }}", "json", (1_000_000, 100_000)),
    "sortAlpha 200k": ("{{ len (sortAlpha .inputs.strings) }}", "strings", (200_000, 20_000)),
}


def build_vars(kind: str, n: int) -> Any:
    """The data a case reads (built before measuring)."""
    if kind == "items":
        return {"inputs": {"items": [0] * n}}
    if kind == "nl":
        return {"inputs": {"nl": "\n" * 2000}}
    if kind == "words":
        return {"inputs": {"words": ["a"] * 1000}}
    if kind == "s":
        return {"inputs": {"s": "x" * 1000}}
    if kind == "nested":
        nested: Any = [1] * n
        for _ in range(60):
            nested = [nested]
        return {"inputs": {"nested": nested}}
    if kind == "lt":
        return {"inputs": {"lt": "<" * n}}
    if kind == "distinct":
        return {"inputs": {"distinct": list(range(n))}}
    if kind == "word":
        return {"inputs": {"word": "a" * n}}
    if kind == "upper":
        return {"inputs": {"upper": "A" * n}}
    if kind == "json":
        return {"inputs": {"json": "[" + "1," * n + "1]"}}
    if kind == "strings":
        return {"inputs": {"strings": [str(i) for i in range(n)]}}
    if kind == "cyclic":
        c: dict[str, Any] = {}
        c["self"] = c
        return {"steps": {"a": {"output": c}}}
    return {"inputs": {"o": {}}}


def template_of(name: str, n: int) -> str:
    text = CASES[name][0]
    if name == "subscripts":
        return "{{ .inputs.o" + '["x"]' * n + " }}"
    if name == "many lines":
        return text * n
    return text.format(n=n) if "{n}" in text else text.replace("{{{{", "{{").replace("}}}}", "}}")


def run_child(name: str, small: bool, trace: bool) -> dict[str, Any]:
    from runs_controller.expr import resolve_template_string

    n = CASES[name][2][1 if small else 0]
    text = template_of(name, n)
    data = build_vars(CASES[name][1], n)
    if trace:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        value = resolve_template_string(text, data)
        outcome = "ok: " + repr(value)[:60]
    except Exception as exc:  # the point is to see what escapes
        public = next(c for c in type(exc).__mro__ if not c.__name__.startswith("_"))
        outcome = f"{public.__name__}: {str(exc)[:100]}"
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    return {"n": n, "wall": wall, "cpu": cpu, "peak": peak, "outcome": outcome}


def spawn(name: str, args: argparse.Namespace, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name]
    cmd += ["--small"] if args.small else []
    cmd += ["--trace"] if trace else []
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = args.src
    cap = args.mem_mb * 1024 * 1024

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        proc = subprocess.run(  # noqa: S603 - our own interpreter and script
            cmd, env=env, capture_output=True, text=True, timeout=args.timeout, preexec_fn=limit
        )
    except subprocess.TimeoutExpired:
        return {"n": 0, "wall": args.timeout, "cpu": 0, "peak": 0, "outcome": "killed: timeout"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"n": 0, "wall": 0, "cpu": 0, "peak": 0, "outcome": f"crashed: {last[:90]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child")
    p.add_argument("--trace", action="store_true")
    p.add_argument("--small", action="store_true", help="smaller sizes, for old versions")
    p.add_argument("--src", help="put this checkout first on sys.path (PYTHONPATH)")
    p.add_argument("--mem-mb", type=int, default=4096, help="address-space cap per child")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per child")
    p.add_argument("--only", nargs="*", help="case names to run")
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.small, args.trace)))  # noqa: T201
        return
    print(f"{'template':24} {'N':>10} {'wall s':>8} {'cpu s':>8} {'peak MB':>9}  outcome")  # noqa: T201
    for name in args.only or CASES:
        timed = spawn(name, args, trace=False)
        traced = spawn(name, args, trace=True) if timed["wall"] < 30 else {"peak": -1}
        peak = f"{traced['peak'] / 1e6:9.1f}" if traced["peak"] >= 0 else "      n/a"
        print(  # noqa: T201
            f"{name:24} {timed['n']:>10} {timed['wall']:8.3f} {timed['cpu']:8.3f} {peak}  "
            f"{timed['outcome']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
