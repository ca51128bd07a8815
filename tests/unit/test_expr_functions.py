"""Own cases for Go semantics and every catalogue function."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from runs_controller.expr import (
    EvaluationBlocked,
    OffloadedData,
    TemplateError,
    TemplateSyntaxError,
    evaluate_condition,
    resolve_template_string,
    resolve_value,
)
from runs_controller.expr.functions import function_names

VARS: dict[str, Any] = {
    "inputs": {
        "name": "alice",
        "n": 7,
        "f": 2.5,
        "big": 1000000,
        "items": ["b", "a", "b"],
        "obj": {"a": 1, "z": None},
        "flag": True,
        "empty": "",
        "url": "a<b>&c",
        "nested": {"a": {"b": "deep"}},
        "path": "/x/y/file.tar.gz",
        "nil": None,
    },
    "steps": {
        "fetch-feed": {"output": {"body": "hello"}},
        "fetch_feed": {"output": {"body": "hi"}},
        "big": {"output": {"$bubuStorageRef": "s3://b/o"}},
    },
}


def r(expr: str, **kw: Any) -> Any:
    return resolve_template_string(expr, VARS, **kw)


CASES: list[tuple[str, Any]] = [
    # builtins and printing
    ("a{{ inputs.obj }}", "amap[a:1 z:<nil>]"),
    ("a{{ inputs.big }}", "a1e+06"),
    ('{{ print 1 2 "x" 3 }}', "1 2x3"),
    ('a{{ println 1 "x" }}', "a1 x\n"),
    (
        'a{{ printf "%d|%s|%q|%5.2f|%x|%t|%v" 3 "s" "q" 2.5 255 true inputs.items }}',
        'a3|s|"q"| 2.50|ff|true|[b a b]',
    ),
    ('a{{ printf "%d" inputs.n }}', "a%!d(float64=7)"),
    ('a{{ printf "%s %s" "x" }}', "ax %!s(MISSING)"),
    ("{{ html \"<a href='x'>\" }}", "&lt;a href=&#39;x&#39;&gt;"),
    ('{{ js "a\'b<" }}', "a\\'b\\u003C"),
    ('{{ urlquery "a b&c" }}', "a+b%26c"),
    ("{{ index .inputs.items 1 }}", "a"),
    ('a{{ index .inputs.obj "nope" }}', "a<no value>"),
    ("{{ not 0 }}", True),
    ("{{ and 1 0 }}", 0),
    ('{{ or 0 "" }}', ""),
    ("{{ ne 1 2 }}", True),
    ('{{ lt "a" "b" }}', True),
    ("{{ le 2 2 }}", True),
    ("{{ gt 3.5 2 }}", True),
    ("{{ ge 1 2 }}", False),
    ("{{ eq inputs.n 7 }}", True),  # ruling "Expressions": JSON number vs int literal
    ("{{ len inputs.name }}", 5),
    ("{{ slice inputs.items 1 }}", "[a b]"),
    # custom helpers
    ('{{ hash_of "alice" }}', hashlib.sha256(b"alice").hexdigest()),
    ("{{ type_of inputs.obj }}", "object"),
    ("{{ type_of inputs.flag }}", "bool"),
    ("{{ type_of inputs.name }}", "string"),
    ("{{ exists inputs.nil }}", "false"),
    ("{{ sample inputs.name }}", "alice"),
    # strings
    ('{{ abbrev 5 "hello world" }}', "he..."),
    ('{{ abbrevboth 5 10 "1234 5678 9123" }}', "...5678..."),
    ('{{ trunc 3 "hello" }}', "hel"),
    ('{{ trunc -2 "hello" }}', "lo"),
    ('{{ trim "  x " }}', "x"),
    ('{{ upper "x" }}{{ lower "Y" }}', "Xy"),
    ('{{ title "hello world" }}', "Hello World"),
    ('{{ untitle "Hello World" }}', "hello world"),
    ('{{ substr 1 3 "hello" }}', "el"),
    ('{{ trimall "$" "$5$" }}{{ trimAll "$" "$6$" }}', "56"),
    ('{{ trimSuffix "-" "a-" }}{{ trimPrefix "-" "-b" }}', "ab"),
    ('{{ nospace "a b\tc" }}', "abc"),
    ('{{ initials "First Try" }}', "FT"),
    ('{{ snakecase "FirstName" }}', "first_name"),
    ('{{ camelcase "http_server" }}', "HttpServer"),
    ('{{ kebabcase "FirstName" }}', "first-name"),
    ('{{ wrap 5 "hello world" }}', "hello\nworld"),
    ('{{ wrapWith 5 "\\t" "hello world" }}', "hello\tworld"),
    ('{{ contains "ell" "hello" }}', "true"),
    ('{{ hasPrefix "he" "hello" }}{{ hasSuffix "lo" "hello" }}', "truetrue"),
    ('{{ quote "a" 1 }}', '"a" "1"'),
    ('{{ squote "a" }}', "'a'"),
    ('{{ cat "a" 1 nil "b" }}', "a 1 b"),
    ('{{ indent 2 "a\\nb" }}', "  a\n  b"),
    ('{{ nindent 2 "a" }}', "\n  a"),
    ('{{ replace "a" "b" "aaa" }}', "bbb"),
    ('{{ plural "one" "many" 2 }}', "many"),
    ('{{ sha1sum "abc" }}', hashlib.sha1(b"abc").hexdigest()),  # noqa: S324
    ('{{ sha256sum "abc" | len }}', "64"),
    ('{{ adler32sum "abc" }}', "38600999"),
    ("{{ toString 2.5 }}", "2.5"),
    # conversion / math
    ('{{ atoi "42" | add1 }}', "43"),
    ('{{ int64 "12" }}', "12"),
    ("{{ int 3.9 }}", "3"),
    ('{{ float64 "1.5" }}', "1.5"),
    ('{{ toDecimal "777" }}', "511"),
    ("{{ add 1 2 3 }}", "6"),
    ("{{ sub 5 7 }}", "-2"),
    ("{{ div 7 2 }}", "3"),
    ("{{ div -7 2 }}", "-3"),
    ("{{ mod -7 3 }}", "-1"),
    ("{{ mul 2 3 4 }}", "24"),
    ("{{ add1f 1.5 }}", "2.5"),
    ("{{ addf 0.1 0.2 }}", "0.3"),
    ("{{ subf 1 0.5 }}", "0.5"),
    ("{{ divf 7 2 }}", "3.5"),
    ("{{ mulf 1.5 2 }}", "3"),
    ("{{ biggest 1 5 3 }}{{ max 1 9 }}{{ min 4 2 }}", "592"),
    ("{{ maxf 1 2.5 }}{{ minf 1 2.5 }}", "2.51"),
    ("{{ ceil 1.2 }}{{ floor 1.8 }}", "21"),
    ("{{ round 3.14159 2 }}", "3.14"),
    # lists
    ('{{ split "," "a,b" }}', "map[_0:a _1:b]"),
    ('{{ splitList "," "a,b" }}', "[a b]"),
    ('{{ splitn "," 2 "a,b,c" }}', "map[_0:a _1:b,c]"),
    ("{{ toStrings (list 1 2) }}", "[1 2]"),
    ('{{ join "-" inputs.items }}', "b-a-b"),
    ("{{ sortAlpha inputs.items }}", "[a b b]"),
    ("{{ tuple 1 2 }}", "[1 2]"),
    ("{{ append (list 1) 2 }}{{ push (list) 3 }}", "[1 2][3]"),
    ("{{ mustAppend (list) 1 }}{{ mustPush (list) 2 }}", "[1][2]"),
    ("{{ prepend (list 1) 0 }}{{ mustPrepend (list) 9 }}", "[0 1][9]"),
    ("{{ first inputs.items }}{{ mustFirst inputs.items }}", "bb"),
    ("{{ rest inputs.items }}{{ mustRest inputs.items }}", "[a b][a b]"),
    ("{{ last inputs.items }}{{ mustLast inputs.items }}", "bb"),
    ("{{ initial inputs.items }}{{ mustInitial inputs.items }}", "[b a][b a]"),
    ("{{ reverse inputs.items }}{{ mustReverse (list 1 2) }}", "[b a b][2 1]"),
    ("{{ uniq inputs.items }}{{ mustUniq (list 1 1) }}", "[b a][1]"),
    ('{{ without inputs.items "b" }}{{ mustWithout (list 1 2) 1 }}', "[a][2]"),
    ('{{ has "a" inputs.items }}{{ mustHas 3 (list 1) }}', "truefalse"),
    ("{{ mustSlice (list 1 2 3) 1 2 }}", "[2]"),
    ("{{ concat (list 1) (list 2 3) }}", "[1 2 3]"),
    ('{{ compact (list 1 "" 0 "x") }}{{ mustCompact (list nil 2) }}', "[1 x][2]"),
    # dicts
    ('{{ dict "a" 1 "b" }}', "map[a:1 b:]"),
    ('{{ get inputs.obj "a" }}', "1"),
    ('{{ hasKey inputs.obj "a" }}', "true"),
    ('{{ pluck "a" inputs.obj (dict "a" 2) }}', "[1 2]"),
    ("{{ keys inputs.obj }}", "[a z]"),
    ('{{ pick inputs.obj "a" }}{{ omit inputs.obj "a" }}', "map[a:1]map[z:<nil>]"),
    ('{{ values (dict "a" 1 "b" 2) }}', "[1 2]"),
    ('{{ dig "a" "x" "dflt" .inputs.nested }}', "dflt"),
    # defaults / flow
    ('{{ default "d" inputs.empty }}', "d"),
    ("{{ empty inputs.items }}", "false"),
    ('{{ coalesce inputs.empty 0 "z" }}', "z"),
    ('{{ all 1 "x" }}{{ any 0 "" }}', "truefalse"),
    ("{{ ternary 1 2 false }}", "2"),
    # JSON
    ('{{ (fromJson "{\\"a\\": [1, 2]}").a }}', "[1 2]"),
    ('{{ mustFromJson "[1]" }}', "[1]"),
    ("{{ toJson inputs.url }}", '"a\\u003cb\\u003e\\u0026c"'),
    ("{{ toRawJson inputs.url }}{{ mustToRawJson 1 }}", '"a<b>&c"1'),
    ('{{ toPrettyJson (dict "a" 1) }}', '{\n  "a": 1\n}'),
    ("{{ mustToJson (list 1e21 0.0000001) }}{{ mustToPrettyJson (list) }}", "[1e+21,1e-7][]"),
    # reflection
    (
        "{{ typeOf inputs.obj }}|{{ typeOf 1 }}|{{ typeOf inputs.n }}",
        "map[string]interface {}|int|float64",
    ),
    ('{{ typeIs "string" "x" }}{{ typeIsLike "int" 1 }}', "truetrue"),
    ('{{ kindOf inputs.items }}{{ kindIs "map" inputs.obj }}', "slicetrue"),
    ('{{ deepEqual inputs.obj (fromJson "{\\"a\\":1,\\"z\\":null}") }}', "true"),
    # paths / encoding
    ("{{ base inputs.path }}|{{ dir inputs.path }}|{{ ext inputs.path }}", "file.tar.gz|/x/y|.gz"),
    ('{{ clean "a//b/../c/." }}{{ isAbs "/a" }}', "a/ctrue"),
    (
        (
            '{{ osBase "/a/b" }}{{ osDir "/a/b" }}{{ osClean "/a/../b" }}{{ osExt "x.y" }}'
            '{{ osIsAbs "a" }}'
        ),
        "b/a/b.yfalse",
    ),
    ('{{ b64enc "hi" | b64dec }}{{ b32enc "hi" | b32dec }}', "hihi"),
    # semver
    ('{{ (semver "1.2.3-beta").Minor }}', "2"),
    ('{{ semverCompare ">=1.2.0" "1.3.0" }}', "true"),
    ('{{ semverCompare "^1.2" "2.0.0" }}', "false"),
    ('{{ semverCompare "~1.2.3" "1.2.9" }}', "true"),
    # dates
    ('{{ date "2006-01-02 15:04" (toDate "2006-01-02" "2024-03-05") }}', "2024-03-05 00:00"),
    (
        (
            '{{ dateInZone "15:04 MST" (toDate "2006-01-02T15:04:05Z07:00" '
            '"2024-01-01T12:00:00Z") "UTC" }}'
        ),
        "12:00 UTC",
    ),
    ('{{ date_in_zone "2006" (mustToDate "2006" "2020") "Europe/Paris" }}', "2020"),
    ('{{ dateModify "1h" (toDate "2006-01-02" "2024-03-05") | htmlDate }}', "2024-03-05"),
    ('{{ date_modify "-1h" (toDate "2006-01-02" "2024-03-05") | htmlDate }}', "2024-03-04"),
    ('{{ mustDateModify "24h" (toDate "2006-01-02" "2024-03-05") | htmlDate }}', "2024-03-06"),
    ('{{ must_date_modify "1m" (toDate "2006-01-02" "2024-03-05") | unixEpoch }}', "1709596860"),
    ('{{ htmlDateInZone (toDate "2006-01-02" "2024-03-05") "UTC" }}', "2024-03-05"),
    ("{{ duration 95 }}", "1m35s"),
    ('{{ durationRound "2h10m" }}', "2h"),
    # control flow and variables
    ("{{ range $i, $v := inputs.items }}{{ $i }}{{ $v }}{{ end }}", "0b1a2b"),
    ('{{ range inputs.items }}{{ if eq . "a" }}{{ break }}{{ end }}{{ . }}{{ end }}', "b"),
    ('{{ range inputs.items }}{{ if eq . "a" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "bb"),
    ("{{ range inputs.nil }}x{{ else }}none{{ end }}", "none"),
    ("{{ range $k, $v := inputs.obj }}{{ $k }}={{ $v }};{{ end }}", "a=1;z=<no value>;"),
    ("{{ with inputs.empty }}x{{ else }}y{{ end }}", "y"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
    ("{{ $.inputs.name }}", "alice"),
    ("{{ steps.fetch_feed.output.body }}", "hi"),
    ('{{ steps["fetch-feed"].output.body }}', "hello"),
    ('{{ inputs.nil | default "x" | upper }}', "X"),
    ("{{ 0x10 }}|{{ 1_000 }}|{{ 'a' }}|{{ 1e3 }}", "16|1000|97|1000"),
    ("{{ `raw\\n` }}", "raw\\n"),
]


@pytest.mark.parametrize(("expr", "want"), CASES, ids=[c[0][:60] for c in CASES])
def test_function_cases(expr: str, want: Any) -> None:
    assert r(expr) == want


def test_catalogue_is_covered() -> None:
    used = " ".join(e for e, _ in CASES)
    missing = {
        n
        for n in function_names()
        if n not in used
        and n
        not in {
            "call",
            "now",
            "randAlpha",
            "randAlphaNum",
            "randAscii",
            "randNumeric",
            "randInt",
            "uuidv4",
            "fail",
            "durationRound",
            "mustToDate",
            "unixEpoch",
        }
    }
    assert not {m for m in missing if f"{m} " not in used and f"{m} }}" not in used}


def test_now_and_random_helpers() -> None:
    assert len(r("{{ uuidv4 }}")) == 36
    assert len(r("{{ randAlpha 5 }}{{ randAlphaNum 5 }}{{ randAscii 5 }}")) == 15
    assert str(r("{{ randNumeric 4 }}")).isdigit()
    assert r("{{ randInt 3 4 }}") == "3"
    assert str(r("{{ now | unixEpoch }}")).isdigit()
    assert r('{{ mustToDate "2006" "2020" | date "2006" }}') == "2020"


@pytest.mark.parametrize("expr", ["{{ now }}", "{{ uuidv4 }}", "{{ randInt 1 2 }}"])
def test_deterministic_mode_undefines_now_and_random(expr: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="not defined"):
        r(expr, deterministic=True)


@pytest.mark.parametrize("name", ["env", "expandenv", "getHostByName", "repeat", "regexMatch"])
def test_refused_functions_are_undefined(name: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=f'function "{name}" not defined'):
        r(f'{{{{ {name} "HOME" }}}}')


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("{{ steps.nope.output.x }}", EvaluationBlocked),
        ('{{ index .steps "nope" }}', EvaluationBlocked),
        ("{{ steps.big.output.body | toJson }}", OffloadedData),
        ('{{ len (index .inputs "sel") }}', OffloadedData),
        ("{{ hash_of .inputs.sel }}", OffloadedData),
        ("{{ sample .inputs.sel }}", OffloadedData),
        ('{{ fail "boom" }}', TemplateError),
        ("{{ inputs.missing }}", TemplateError),
        ("x{{ inputs.nil.x }}", TemplateError),
        ("x{{ inputs.name.x }}", TemplateError),
        ("{{ eq inputs.obj inputs.obj }}", TemplateError),
        ('{{ eq 1 "1" }}', TemplateError),
        ("{{ lt true false }}", TemplateError),
        ("{{ index inputs.items 9 }}", TemplateError),
        ("{{ div 1 0 }}", TemplateError),
        ("{{ upper 3 }}", TemplateError),
        ("{{ hash_of nil }}", TemplateError),
        ('{{ template "x" }}', TemplateError),
        ("{{ 1 2 }}", TemplateError),
        ("{{ nil }}", TemplateError),
        ("{{ if }}{{ end }}", TemplateSyntaxError),
        ("{{ end }}", TemplateSyntaxError),
        ("{{ $y }}", TemplateSyntaxError),
        ("{{ break }}", TemplateSyntaxError),
        ("{{ (1 }}", TemplateSyntaxError),
        ('{{ "x }}', TemplateSyntaxError),
        ("{{ 9999999999999999999999 }}", TemplateSyntaxError),
    ],
)
def test_error_kinds(expr: str, kind: type[Exception]) -> None:
    data = {**VARS, "inputs": {**VARS["inputs"], "sel": {"$bubuStorageRef": "s3://b/o"}}}
    with pytest.raises(kind) as info:
        resolve_template_string(expr, data)
    if kind is TemplateError:
        assert not isinstance(info.value, EvaluationBlocked | OffloadedData)


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("{{ steps.nope.output.x }}", EvaluationBlocked),
        ("{{ steps.big.output.body | toJson }}", OffloadedData),
    ],
)
def test_blocked_and_offloaded_are_caught_as_template_errors(
    expr: str, kind: type[TemplateError]
) -> None:
    """Callers that catch TemplateError also see the wait/offload outcomes (and can tell them)."""
    try:
        r(expr)
    except TemplateError as exc:
        assert type(exc) is kind
    else:
        pytest.fail("no error")


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("", True),
        ("  ", True),
        ("y", True),
        ("N", False),
        ("{{ inputs.flag }}", True),
        ('{{ "no" }}', False),
        ("{{ inputs.empty }}", False),
    ],
)
def test_conditions(expr: str, want: bool) -> None:
    assert evaluate_condition(expr, VARS) is want


def test_condition_rejects_non_boolean() -> None:
    with pytest.raises(TemplateError, match="got float64"):
        evaluate_condition("{{ inputs.n }}", VARS)
    with pytest.raises(TemplateError, match='boolean: "maybe"'):
        evaluate_condition("maybe", VARS)


def test_resolve_value_errors_and_wrappers() -> None:
    assert resolve_value({"$bubuTemplate": "{{ .x }}", "$bubuTemplateVars": None}, {"x": 1}) == 1
    with pytest.raises(TemplateError, match="must be a string"):
        resolve_value({"$bubuTemplate": 1}, {})
    with pytest.raises(TemplateError, match="must be an object"):
        resolve_value({"$bubuTemplate": "x", "$bubuTemplateVars": [1]}, {})
    with pytest.raises(TemplateError, match="index 1: "):
        resolve_value(["ok", "{{ inputs.missing }}"], VARS)
    assert resolve_value([1, None, {"k": "{{ inputs.n }}"}], VARS) == [1, None, {"k": 7}]
