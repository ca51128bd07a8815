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
    quoted: str = ""  # the literal as written (Go prints it in error contexts)


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


def node_string(n: Node | None) -> str:
    """Go's `Node.String()`: how an error context names the node (not a slice of the source)."""
    if n is None:
        return ""
    if isinstance(n, TextNode):
        return n.text
    if isinstance(n, FieldNode):
        return "".join("." + i for i in n.idents)
    if isinstance(n, VariableNode):
        return ".".join(n.idents)
    if isinstance(n, DotNode):
        return "."
    if isinstance(n, NilNode):
        return "nil"
    if isinstance(n, BoolNode):
        return "true" if n.value else "false"
    if isinstance(n, NumberNode):
        return n.text
    if isinstance(n, StringNode):
        return n.quoted
    if isinstance(n, IdentifierNode):
        return n.name
    if isinstance(n, ChainNode):
        inner = node_string(n.node)
        if isinstance(n.node, PipeNode):
            inner = f"({inner})"
        return inner + "".join("." + i for i in n.idents)
    if isinstance(n, CommandNode):
        return " ".join(
            f"({node_string(a)})" if isinstance(a, PipeNode) else node_string(a) for a in n.args
        )
    if isinstance(n, PipeNode):
        decl = ""
        if n.decls:
            decl = ", ".join(node_string(d) for d in n.decls)
            decl += " = " if n.is_assign else " := "
        return decl + " | ".join(node_string(c) for c in n.cmds)
    return _compound_string(n)


def _compound_string(n: Node) -> str:
    if isinstance(n, ActionNode):
        return "{{" + node_string(n.pipe) + "}}"
    if isinstance(n, ListNode):
        return "".join(node_string(c) for c in n.nodes)
    if isinstance(n, IfNode | WithNode | RangeNode):
        word = {IfNode: "if", WithNode: "with", RangeNode: "range"}[type(n)]
        out = f"{{{{{word} {node_string(n.pipe)}}}}}{node_string(n.body)}"
        if n.else_body is not None:
            out += "{{else}}" + node_string(n.else_body)
        return out + "{{end}}"
    if isinstance(n, BreakNode):
        return "{{break}}"
    if isinstance(n, ContinueNode):
        return "{{continue}}"
    if isinstance(n, TemplateNode):
        name = '"' + n.name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pipe = f" {node_string(n.pipe)}" if n.pipe is not None else ""
        return f"{{{{template {name}{pipe}}}}}"
    return ""


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
