"""Execution errors read like Go's: `template: NAME:LINE:COL: executing "NAME" at <NODE>: MSG`.

COL is the node's 0-based *byte* column on its line (so non-ASCII text before it shifts it), NODE
is the node's `String()` form (never a slice of the source, never a trim marker), and the node is
the one Go's executor was last positioned at. Expectations follow Go's text/template rules as the
published corpus shows them (see test_expr_conformance).
"""

from __future__ import annotations

import pytest

from runs_controller.expr import TemplateError, resolve_template_string

VARS = {"inputs": {"s": "str", "n": 1, "o": {"a": "s"}}}


def message(template: str) -> str:
    with pytest.raises(TemplateError) as info:
        resolve_template_string(template, VARS)
    return str(info.value)


def at(col: str, node: str, msg: str) -> str:
    return f'template: bubu:{col}: executing "bubu" at <{node}>: {msg}'


@pytest.mark.parametrize(
    ("template", "want"),
    [
        # byte columns: é is 2 bytes, 日本 6, the emoji 4
        ('é {{ fail "boom" }}', at("1:6", 'fail "boom"', "error calling fail: boom")),
        ('line1\n日本 {{ fail "x" }}', at("2:10", 'fail "x"', "error calling fail: x")),
        (
            "😀 {{ .inputs.s.foo }}",
            at("1:15", ".inputs.s.foo", "can't evaluate field foo in type interface {}"),
        ),
        # a trim marker is not part of the node; the column is still the node's
        (
            "x {{- .inputs.s.foo -}}",
            at("1:13", ".inputs.s.foo", "can't evaluate field foo in type interface {}"),
        ),
        # literals print as written
        ("x{{ fail `boom` }}", at("1:4", "fail `boom`", "error calling fail: boom")),
        # a command prints its arguments, a parenthesised pipeline in parentheses
        (
            'x{{ len (index .inputs "n") }}',
            at(
                "1:4",
                'len (index .inputs "n")',
                "error calling len: len: unsupported argument type float64",
            ),
        ),
        # Go's field lookup does not re-position the executor: after a parenthesised pipeline
        # the error names the pipeline's last evaluated node
        (
            'x{{ (index .inputs "o").a.b }}',
            at("1:19", '"o"', "can't evaluate field b in type interface {}"),
        ),
        # a variable with fields is positioned at its first field
        (
            "{{ $x := .inputs.o }}{{ $x.a.b }}",
            at("1:26", "$x.a.b", "can't evaluate field b in type interface {}"),
        ),
        # a literal of the wrong kind is reported at the literal, in Go's words
        ("x{{ upper 3 }}", at("1:10", "3", "expected string; found 3")),
        ("x{{ upper nil }}", at("1:10", "nil", "cannot assign nil to string")),
        ("x{{ trunc 1.5 .inputs.s }}", at("1:10", "1.5", "expected integer; found 1.5")),
        # an evaluated value of the wrong type is reported at the value's node
        (
            "x{{ upper .inputs.n }}",
            at("1:17", ".inputs.n", "wrong type for value; expected string; got float64"),
        ),
        # a piped value is checked after the function name was evaluated
        (
            "x{{ .inputs.n | upper }}",
            at("1:16", "upper", "wrong type for value; expected string; got float64"),
        ),
        # a nil from a map is a nil interface; a nil through a pipeline is no value at all
        (
            "x{{ upper .inputs.nope }}",
            at("1:17", ".inputs.nope", "wrong type for value; expected string; got interface {}"),
        ),
        ("x{{ .inputs.nope | upper }}", at("1:19", "upper", "invalid value; expected string")),
        ("x{{ upper }}", at("1:4", "upper", "wrong number of args for upper: want 1 got 0")),
        ("x{{ 1 2 }}", at("1:4", "1", "can't give argument to non-function 1")),
        ("x{{ range 1.5 }}{{ end }}", at("1:10", "1.5", "range can't iterate over 1.5")),
        ('x{{ template "t" }}', at("1:13", '{{template "t"}}', 'template "t" not defined')),
        # inside a range body, on a later line
        (
            'a\nb{{ range $i := 2 }}\n  {{ fail (printf "n%d" $i) }}{{ end }}',
            at("3:5", 'fail (printf "n%d" $i)', "error calling fail: n0"),
        ),
    ],
)
def test_go_error_format(template: str, want: str) -> None:
    assert message(template) == want
