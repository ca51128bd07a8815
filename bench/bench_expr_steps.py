"""How much CPU one step of the expression budget costs, per kind of work.

Each template below runs until the step budget stops it (max_steps=STEPS, no time limit), so
`CPU / STEPS` is the price of a step for that kind of work; the default `max_steps` is chosen so
that the most expensive kind stays near one second. Run:

    .venv/bin/python bench/bench_expr_steps.py
"""

from __future__ import annotations

import time

from runs_controller.expr import LimitExceeded, Limits, clear_caches, resolve_template_string

STEPS = 250_000
BIG = "x" * 3000 + "\n"
VARS = {
    "inputs": {
        "items": [{"a": {"b": i}} for i in range(2000)],
        "text": "Hello World " * 2000,
        "nums": list(range(5000)),
        "big": BIG,
    }
}
LOOP = "{{ range $i := 100000000 }}"
CASES = {
    "empty range loop": LOOP + "{{ end }}",
    "field access": LOOP + "{{ $.inputs.items }}{{ end }}".replace("{{ $.", "{{ $x := $."),
    "function calls": LOOP + "{{ $x := add $i 1 }}{{ end }}",
    "printf": LOOP + '{{ $x := printf "%d-%s" $i "a" }}{{ end }}',
    "append (measure)": "{{ $l := list }}" + LOOP + "{{ $l = append $l $i }}{{ end }}",
    "toJson of input": LOOP + "{{ $x := toJson $.inputs.items }}{{ end }}",
    "uniq of input": LOOP + "{{ $x := uniq $.inputs.nums }}{{ end }}",
    "title (char loop)": LOOP + "{{ $x := title $.inputs.text }}{{ end }}",
    "upper (C speed)": LOOP + "{{ $x := upper $.inputs.text }}{{ end }}",
    "replace": LOOP + '{{ $x := replace "x" "yy" $.inputs.big }}{{ end }}',
    "print map": LOOP + "{{ $x := toString $.inputs.items }}{{ end }}",
    "parse (cold)": "{{ (((((((((1))))))))) }}" * 20000,
}


def measure(template: str) -> tuple[float, int]:
    limits = Limits(max_steps=STEPS, timeout_seconds=1e9, max_output_bytes=0)
    clear_caches()
    start = time.process_time()
    try:
        resolve_template_string(template, VARS, limits=limits)
        outcome = 0
    except LimitExceeded as exc:
        outcome = 1 if "max steps" in str(exc) else 2
    return time.process_time() - start, outcome


def main() -> None:
    print(f"CPU seconds for {STEPS:,} steps (the default max_steps)")  # noqa: T201
    for name, template in CASES.items():
        cpu, outcome = measure(template)
        note = {0: "finished early", 1: "", 2: "other limit"}[outcome]
        print(f"{name:20} {cpu:6.3f} s  {STEPS / cpu:>12,.0f} steps/s  {note}")  # noqa: T201


if __name__ == "__main__":
    main()
