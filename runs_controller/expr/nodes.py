"""AST of the Go text/template subset; node classes mirror text/template/parse."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Node:
    pos: int
    line: int


@dataclass(slots=True)
class TextNode(Node):
    text: str


@dataclass(slots=True)
class FieldNode(Node):
    idents: tuple[str, ...]


@dataclass(slots=True)
class VariableNode(Node):
    idents: tuple[str, ...]  # idents[0] is "$" or "$name"


@dataclass(slots=True)
class DotNode(Node):
    pass


@dataclass(slots=True)
class NilNode(Node):
    pass


@dataclass(slots=True)
class BoolNode(Node):
    value: bool


@dataclass(slots=True)
class NumberNode(Node):
    text: str
    is_int: bool
    int_value: int
    is_float: bool
    float_value: float
    is_char: bool = False


@dataclass(slots=True)
class StringNode(Node):
    value: str


@dataclass(slots=True)
class IdentifierNode(Node):
    name: str


@dataclass(slots=True)
class ChainNode(Node):
    node: Node
    idents: tuple[str, ...]


@dataclass(slots=True)
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class PipeNode(Node):
    decls: list[VariableNode] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[CommandNode] = field(default_factory=list)


@dataclass(slots=True)
class ActionNode(Node):
    pipe: PipeNode


@dataclass(slots=True)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class IfNode(Node):
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class WithNode(Node):
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class RangeNode(Node):
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class BreakNode(Node):
    pass


@dataclass(slots=True)
class ContinueNode(Node):
    pass


@dataclass(slots=True)
class TemplateNode(Node):
    name: str
    pipe: PipeNode | None


def children(n: Node) -> list[Node | None]:
    """Direct children of a node."""
    if isinstance(n, ListNode):
        return list(n.nodes)
    if isinstance(n, ActionNode):
        return [n.pipe]
    if isinstance(n, IfNode | WithNode | RangeNode):
        return [n.pipe, n.body, n.else_body]
    if isinstance(n, PipeNode):
        return [*n.decls, *n.cmds]
    if isinstance(n, CommandNode):
        return list(n.args)
    if isinstance(n, ChainNode):
        return [n.node]
    if isinstance(n, TemplateNode):
        return [n.pipe]
    return []


def walk(node: Node | None) -> list[Node]:
    """All nodes below `node` (pre-order, iterative so deep trees cannot overflow the stack)."""
    out: list[Node] = []
    stack: list[Node | None] = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        out.append(n)
        stack.extend(reversed(children(n)))
    return out
