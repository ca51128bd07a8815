"""Tree-walking executor with Go text/template semantics over JSON data (`missingkey=zero`).

Only JSON values (dict, list, str, int, float, bool, None) and the wrappers of `values` are ever
touched: field access is a dict lookup, never a Python attribute, so templates reach the data
they are given and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .errors import LimitExceeded, OffloadedData, TemplateError
from .functions import FuncError, FuncSpec
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
)
from .values import NO_VALUE, GoInt, is_nil, print_value, truthy

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["execute"]


class _Missing:
    """No final (piped) value: distinct from a piped nil."""


_MISSING: Final = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(TemplateError):
    pass


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
        self.vars: list[tuple[str, object]] = [("$", data)]
        self.depth = 0

    # errors
    def fail(self, node: Node, msg: str) -> None:
        col = node.pos - self.source.rfind("\n", 0, node.pos)
        raise _ExecError(
            f'template: {self.name}:{node.line}:{col}: executing "{self.name}" at '
            f"<{self._snippet(node)}>: {msg}"
        )

    def _snippet(self, node: Node) -> str:
        s = self.source[node.pos : node.pos + 60]
        end = s.find("}}")
        return (s[:end] if end >= 0 else s).strip()

    # walking
    def walk(self, dot: object, node: Node) -> None:
        self.budget.tick()
        if isinstance(node, TextNode):
            self.out.write(node.text)
        elif isinstance(node, ActionNode):
            val = self.pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.out.write(print_value(val))
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, IfNode | WithNode):
            self.enter()
            nvars = len(self.vars)
            val = self.pipeline(dot, node.pipe)
            if truthy(val):
                self.walk(val if isinstance(node, WithNode) else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
            del self.vars[nvars:]
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
            self.fail(node, f'no such template "{node.name}"')
        else:  # pragma: no cover - the parser produces nothing else
            raise AssertionError(node)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.budget.limits.max_depth:
            raise LimitExceeded(
                f"template evaluation exceeded max depth {self.budget.limits.max_depth}"
            )

    def range(self, dot: object, node: RangeNode) -> None:
        nvars = len(self.vars)
        val = self.pipeline(dot, node.pipe)
        del self.vars[nvars:]  # the pipeline's declarations are re-bound per element
        items: list[tuple[object, object]]
        if isinstance(val, list):
            items = [(GoInt(i), v) for i, v in enumerate(val)]
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val)]
        elif isinstance(val, GoInt):
            items = [(GoInt(i), GoInt(i)) for i in range(max(val.value, 0))]
        elif is_nil(val):
            items = []
        else:
            self.fail(node, f"range can't iterate over {print_value(val)}")
            return
        if not items:
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        for key, elem in items:
            self.budget.tick()
            if len(node.pipe.decls) == 1:
                self.vars.append((node.pipe.decls[0].idents[0], elem))
            elif len(node.pipe.decls) == 2:
                self.vars.append((node.pipe.decls[0].idents[0], key))
                self.vars.append((node.pipe.decls[1].idents[0], elem))
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[nvars:]

    def pipeline(self, dot: object, pipe: PipeNode) -> object:
        self.enter()
        value: object = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:
                value = NO_VALUE  # Go digs into interface{}: a nil becomes "no value"
        for var in pipe.decls:
            name = var.idents[0]
            if pipe.is_assign:
                for k in range(len(self.vars) - 1, -1, -1):
                    if self.vars[k][0] == name:
                        self.vars[k] = (name, value)
                        break
            else:
                self.vars.append((name, value))
        self.depth -= 1
        return value

    def command(self, dot: object, cmd: CommandNode, final: object) -> object:
        self.budget.tick()
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            recv = self.arg_value(dot, first.node)
            return self.field_chain(dot, recv, first, first.idents, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.call(dot, first, cmd.args, final)
        if isinstance(first, VariableNode):
            return self.variable(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final, first)
        if isinstance(first, PipeNode):
            return self.pipeline(dot, first)
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.fail(first, "nil is not a command")
        return _literal(first)

    def not_a_function(self, args: list[Node], final: object, node: Node) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.fail(node, "can't give argument to non-function")

    def lookup_var(self, node: Node, name: str) -> object:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        self.fail(node, f"undefined variable: {name}")
        return None

    def variable(self, dot: object, node: VariableNode, args: list[Node], final: object) -> object:
        value = self.lookup_var(node, node.idents[0])
        if len(node.idents) == 1:
            self.not_a_function(args, final, node)
            return value
        return self.field_chain(dot, value, node, node.idents[1:], args, final)

    def field_chain(
        self,
        dot: object,
        recv: object,
        node: Node,
        idents: tuple[str, ...],
        args: list[Node],
        final: object,
    ) -> object:
        for name in idents[:-1]:
            recv = self.field(node, name, recv, False)
        has_args = len(args) > 1 or final is not _MISSING
        return self.field(node, idents[-1], recv, has_args)

    def field(self, node: Node, name: str, recv: object, has_args: bool) -> object:
        self.budget.tick()
        if recv is NO_VALUE:
            return NO_VALUE
        if recv is None:
            self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, dict):
            if has_args:
                self.fail(node, f"{name} is not a method but has arguments")
            return recv.get(name)
        self.fail(node, f"can't evaluate field {name} in type interface {{}}")
        return None

    def arg_value(self, dot: object, node: Node) -> object:
        """Evaluate one argument node to a value (Go evalArg with an empty-interface type)."""
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, FieldNode):
            return self.field_chain(dot, dot, node, node.idents, [node], _MISSING)
        if isinstance(node, VariableNode):
            return self.variable(dot, node, [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.call(dot, node, [node], _MISSING)
        if isinstance(node, ChainNode):
            if isinstance(node.node, NilNode):
                self.fail(node, "indirection through explicit nil")
            recv = self.arg_value(dot, node.node)
            return self.field_chain(dot, recv, node, node.idents, [node], _MISSING)
        return _literal(node)

    def call(self, dot: object, ident: IdentifierNode, args: list[Node], final: object) -> object:
        self.budget.tick()
        name = ident.name
        argn = args[1:]
        if name in ("and", "or"):
            nodes: list[Node | object] = list(argn)
            if final is not _MISSING:
                nodes.append(final)
            if not nodes:
                self.fail(ident, f"wrong number of args for {name}: want at least 1 got 0")
            val: object = None
            for n in nodes:
                val = self.arg_value(dot, n) if isinstance(n, Node) else n
                if truthy(val) != (name == "and"):
                    return val
            return val
        spec = self.funcs.get(name)
        if spec is None:
            self.fail(ident, f'"{name}" is not a defined function')
            raise AssertionError
        values = [self.arg_value(dot, n) for n in argn]
        if final is not _MISSING:
            values.append(final)
        try:
            result = spec.invoke(values)
        except FuncError as exc:
            self.fail(ident, f"error calling {name}: {exc}")
            raise AssertionError from None
        except OffloadedData:
            raise
        except LimitExceeded:
            raise
        except TemplateError as exc:
            self.fail(ident, str(exc))
            raise AssertionError from None
        if isinstance(result, (str, list | dict)):
            self.budget.check_size(len(result))
        return result


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
    return out.getvalue()
