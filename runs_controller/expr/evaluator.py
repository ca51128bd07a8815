"""Tree-walking executor with Go text/template semantics over JSON data (`missingkey=zero`).

Only JSON values (dict, list, str, int, float, bool, None) and the wrappers of `values` are ever
touched: field access is a dict lookup, never a Python attribute, so templates reach the data
they are given and nothing else.

Errors are reported like Go's: `template: NAME:LINE:COL: executing "NAME" at <NODE>: MSG`, where
NODE is the `String()` form of the node the executor was last positioned at (`_State.at`, set at
the same points as Go's `state.at`) and COL is its 0-based byte column on its line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .errors import LimitExceeded, OffloadedData, TemplateError
from .functions import FuncError, FuncSpec, convert_value
from .limits import Budget, OutputBuffer
from .nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    node_string,
)
from .normalize import go_quote
from .scope import VarStack
from .text import Sink, utf8_len
from .values import NO_VALUE, GoInt, is_nil, print_value, truthy, write_value

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["execute", "go_error_context"]


class _Missing:
    """No final (piped) value: distinct from a piped nil."""


_MISSING: Final = _Missing()
# Go's reflect type names of the parameter kinds, for "can't handle" / "cannot assign nil".
_GO_PARAM = {
    "str": "string",
    "int": "int",
    "float": "float64",
    "bool": "bool",
    "map": "map[string]interface {}",
    "time": "time.Time",
}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(TemplateError):
    pass


def go_error_context(source: str, node: Node) -> tuple[int, int, str]:
    """Go's ErrorContext: 1-based line, 0-based byte column on that line, and the node text."""
    pos = node.pos
    line_start = source.rfind("\n", 0, pos) + 1
    line = source.count("\n", 0, pos) + 1
    return line, utf8_len(source[line_start:pos]), node_string(node)


def _literal(node: Node) -> object:
    if isinstance(node, BoolNode):
        return node.value
    if isinstance(node, StringNode):
        return node.value
    if isinstance(node, NilNode):
        return None
    if isinstance(node, NumberNode):
        if node.is_char:
            return GoInt(node.int_value, "int32")
        if (
            node.is_float
            and any(c in node.text for c in ".eEpP")
            and not (node.text.lower().lstrip("+-").startswith("0x"))
        ):
            return node.float_value
        if node.is_int:
            return GoInt(node.int_value)
        return node.float_value
    raise AssertionError(node)


def _typed_literal(node: Node, kind: str) -> tuple[object, str | None]:
    """Go's evalArg for a literal given to a typed parameter: (value, error message)."""
    if kind == "any":
        return _literal(node), None
    if isinstance(node, NilNode):
        if kind == "map":
            return {}, None
        return None, f"cannot assign nil to {_GO_PARAM[kind]}"
    text = node_string(node)
    if kind == "str":
        if isinstance(node, StringNode):
            return node.value, None
        return None, f"expected string; found {text}"
    if kind == "int":
        if isinstance(node, NumberNode) and node.is_int:
            return node.int_value, None
        return None, f"expected integer; found {text}"
    if kind == "float":
        if isinstance(node, NumberNode) and node.is_float:
            return node.float_value, None
        return None, f"expected float; found {text}"
    if kind == "bool":
        if isinstance(node, BoolNode):
            return node.value, None
        return None, f"expected bool; found {text}"
    return None, f"can't handle {text} for arg of type {_GO_PARAM[kind]}"


def _range_items(val: object) -> Iterator[tuple[object, object]] | None:
    """Lazy (key, element) pairs of a range; None when `val` cannot be ranged over."""
    if isinstance(val, list):
        return ((GoInt(i), val[i]) for i in range(len(val)))
    if isinstance(val, dict):
        return ((k, val[k]) for k in sorted(val))
    if isinstance(val, GoInt):
        return ((GoInt(i), GoInt(i)) for i in range(max(val.value, 0)))
    if is_nil(val):
        return iter(())
    return None


class _State:
    def __init__(
        self,
        funcs: Mapping[str, FuncSpec],
        data: Any,
        budget: Budget,
        out: OutputBuffer,
        name: str,
        source: str,
    ) -> None:
        self.funcs = funcs
        self.budget = budget
        self.out = out
        self.name = name
        self.source = source
        self.vars = VarStack()
        self.vars.push("$", data)
        self.depth = 0
        self.node: Node | None = None

    # errors
    def at(self, node: Node) -> None:
        """Position the executor at `node`: errors name the node last positioned at (Go)."""
        self.node = node

    def fail(self, msg: str) -> None:
        if self.node is None:  # pragma: no cover - walk positions at the root first
            raise _ExecError(f"template: {self.name}: {msg}")
        line, col, context = go_error_context(self.source, self.node)
        raise _ExecError(
            f"template: {self.name}:{line}:{col}: executing {go_quote(self.name)} at "
            f"<{context}>: {msg}"
        )

    # walking
    def walk(self, dot: object, node: Node) -> None:
        self.budget.tick()
        self.at(node)
        if isinstance(node, TextNode):
            self.out.write(node.text)
        elif isinstance(node, ActionNode):
            val = self.pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.print_action(val)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, IfNode | WithNode):
            self.enter()
            mark = self.vars.mark()
            val = self.pipeline(dot, node.pipe)
            if truthy(val):
                self.walk(val if isinstance(node, WithNode) else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
            self.vars.pop_to(mark)
            self.depth -= 1
        elif isinstance(node, RangeNode):
            self.enter()
            self.range(dot, node)
            self.depth -= 1
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, TemplateNode):
            self.fail(f"template {go_quote(node.name)} not defined")
        else:  # pragma: no cover - the parser produces nothing else
            raise AssertionError(node)

    def print_action(self, val: object) -> None:
        """Print an action's value; a container is charged first and printed only as far as
        the output limit allows."""
        if isinstance(val, str):
            self.out.write(val)
            return
        if not isinstance(val, list | dict):
            self.out.write(print_value(val))  # a scalar: a few bytes
            return
        limit = self.out.max_bytes - self.out.size if self.out.max_bytes else 0
        sink = Sink(limit, "output", self.budget.charge)
        try:
            write_value(sink, val, top=True)
        except LimitExceeded:
            self.out.refuse(sink.refused_at)
        self.out.write(sink.getvalue())

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.budget.limits.max_depth:
            raise LimitExceeded(
                f"template evaluation exceeded max depth {self.budget.limits.max_depth}"
            )

    def range(self, dot: object, node: RangeNode) -> None:
        mark = self.vars.mark()
        val = self.pipeline(dot, node.pipe)
        self.vars.pop_to(mark)  # the pipeline's declarations are re-bound per element
        if isinstance(val, dict):
            self.budget.charge_items(len(val))  # the keys are sorted up front
        items = _range_items(val)
        if items is None:
            self.fail(f"range can't iterate over {print_value(val)}")
            return
        decls = [d.idents[0] for d in node.pipe.decls]
        depth = self.depth  # break/continue unwind nested if/with without their exits
        ran = False
        for key, elem in items:
            ran = True
            self.budget.tick()
            if len(decls) == 1:
                self.vars.push(decls[0], elem)
            elif len(decls) == 2:
                self.vars.push(decls[0], key)
                self.vars.push(decls[1], elem)
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                self.vars.pop_to(mark)
                self.depth = depth
        if not ran and node.else_body is not None:
            self.walk(dot, node.else_body)

    def pipeline(self, dot: object, pipe: PipeNode) -> object:
        self.enter()
        self.at(pipe)
        value: object = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:
                value = NO_VALUE  # Go digs into interface{}: a nil becomes "no value"
        for var in pipe.decls:
            name = var.idents[0]
            if pipe.is_assign:
                self.vars.assign(name, value)
            else:
                self.vars.push(name, value)
        self.depth -= 1
        return value

    def command(self, dot: object, cmd: CommandNode, final: object) -> object:
        self.budget.tick()
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.field_chain(dot, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.call(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.fail("nil is not a command")
        return _literal(first)

    def not_a_function(self, args: list[Node], final: object) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.fail(f"can't give argument to non-function {node_string(args[0])}")

    def variable(self, dot: object, node: VariableNode, args: list[Node], final: object) -> object:
        self.at(node)
        found, value = self.vars.lookup(node.idents[0])
        if not found:
            self.fail(f"undefined variable: {node.idents[0]}")
        if len(node.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.field_chain(value, node.idents[1:], args, final)

    def chain(self, dot: object, node: ChainNode, args: list[Node], final: object) -> object:
        self.at(node)
        if isinstance(node.node, NilNode):
            self.fail(f"indirection through explicit nil in {node_string(node)}")
        recv = self.arg_value(dot, node.node)
        return self.field_chain(recv, node.idents, args, final)

    def field_chain(
        self, recv: object, idents: tuple[str, ...], args: list[Node], final: object
    ) -> object:
        for name in idents[:-1]:
            recv = self.field(name, recv, False)
        has_args = len(args) > 1 or final is not _MISSING
        return self.field(idents[-1], recv, has_args)

    def field(self, name: str, recv: object, has_args: bool) -> object:
        self.budget.tick()
        if recv is NO_VALUE:
            return NO_VALUE
        if recv is None:
            self.fail(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, dict):
            if has_args:
                self.fail(f"{name} is not a method but has arguments")
            return recv.get(name)
        self.fail(f"can't evaluate field {name} in type interface {{}}")
        return None

    def arg_value(self, dot: object, node: Node) -> object:
        """Evaluate one argument node to a value (Go evalArg with an empty-interface type)."""
        self.node = node
        if isinstance(node, FieldNode):
            return self.field_chain(dot, node.idents, [node], _MISSING)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, VariableNode):
            return self.variable(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.call(dot, node, node, [node], _MISSING)
        if isinstance(node, ChainNode):
            return self.chain(dot, node, [node], _MISSING)
        return _literal(node)

    def typed_arg(self, dot: object, node: Node, kind: str) -> object:
        """Go evalArg for a parameter of `kind`: literals are checked by their node, evaluated
        values by their type (validateType)."""
        if kind == "any":
            value = self.arg_value(dot, node)
            return None if value is NO_VALUE else value
        if isinstance(node, BoolNode | NumberNode | StringNode | NilNode):
            self.node = node
            value, err = _typed_literal(node, kind)
            if err is not None:
                self.fail(err)
            return value
        return self.validated(self.arg_value(dot, node), kind)

    def validated(self, value: object, kind: str) -> object:
        try:
            return convert_value(value, kind)
        except TemplateError as exc:
            self.fail(str(exc))
            raise AssertionError from None

    def call(
        self, dot: object, ident: IdentifierNode, cmd: Node, args: list[Node], final: object
    ) -> object:
        self.budget.tick()
        self.at(ident)
        name = ident.name
        argn = args[1:]
        n_in = len(argn) + (final is not _MISSING)
        if name in ("and", "or"):
            return self.and_or(dot, name, argn, final, n_in)
        spec = self.funcs.get(name)
        if spec is None:
            self.fail(f"{go_quote(name)} is not a defined function")
            raise AssertionError
        err = spec.arity_error(len(argn), n_in)
        if err is not None:
            self.fail(err)
        params, fixed = spec.params, len(spec.params)
        rest = str(spec.variadic)
        values = [
            self.typed_arg(dot, n, params[k] if k < fixed else rest) for k, n in enumerate(argn)
        ]
        if final is not _MISSING:
            values.append(self.validated(final, spec.kind(len(argn))))
        try:
            result = spec.invoke(values, self.budget)
        except FuncError as exc:
            self.at(cmd)
            self.fail(f"error calling {name}: {exc}")
            raise AssertionError from None
        except (OffloadedData, LimitExceeded):
            raise
        if isinstance(result, str):  # a backstop: amplifiers already checked before building
            self.budget.check_bytes(utf8_len(result), f"result of {name}")
        return result

    def and_or(self, dot: object, name: str, argn: list[Node], final: object, n_in: int) -> object:
        """`and`/`or` short-circuit and return an operand (Go builtins)."""
        if n_in < 1:
            self.fail(f"wrong number of args for {name}: want at least 1 got 0")
        val: object = None
        for n in argn:
            val = self.arg_value(dot, n)
            if truthy(val) != (name == "and"):
                return val
        if final is not _MISSING:
            val = final
        return val


def execute(
    tree: ListNode,
    data: Any,
    funcs: Mapping[str, FuncSpec],
    budget: Budget,
    max_output_bytes: int,
    *,
    source: str,
    name: str = "bubu",
) -> str:
    """Render `tree` against `data`; raises only TemplateError subclasses."""
    out = OutputBuffer(max_output_bytes)
    state = _State(funcs, data, budget, out, name, source)
    try:
        state.walk(data, tree)
    except RecursionError as exc:
        raise LimitExceeded("template evaluation exceeded max recursion depth") from exc
    except MemoryError as exc:
        raise LimitExceeded("template evaluation ran out of memory") from exc
    return out.getvalue()
