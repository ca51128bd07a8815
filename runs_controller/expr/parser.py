"""Parser for the Go text/template subset (§8.5.1), with Go's parse-time checks.

Functions are checked while parsing (an unknown name is a parse error, as in Go), so the set of
defined names is part of the parse input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import LimitExceeded, TemplateSyntaxError
from .lexer import Tok, Token, lex
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
from .scope import VarStack

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["MAX_PARSE_DEPTH", "go_unquote", "parse"]

MAX_PARSE_DEPTH = 100
_INT64_MAX = 2**63 - 1


def go_unquote(lit: str) -> str:
    """Go `strconv.Unquote` for "..." , `...` and one-rune '...' literals."""
    if len(lit) < 2 or lit[0] != lit[-1] or lit[0] not in "\"'`":
        raise ValueError("invalid syntax")
    if lit[0] == "`":
        if "`" in lit[1:-1]:
            raise ValueError("invalid syntax")
        return lit[1:-1].replace("\r", "")
    body = lit[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == lit[0] or c == "\n":
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        e = body[i + 1]
        simple = {
            "a": "\a",
            "b": "\b",
            "f": "\f",
            "n": "\n",
            "r": "\r",
            "t": "\t",
            "v": "\v",
            "\\": "\\",
        }
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == lit[0]:
            out.append(e)
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i + 2 : i + 2 + width]
            if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise ValueError("invalid syntax")
            cp = int(hexs, 16)
            if cp > 0x10FFFF or (e != "x" and 0xD800 <= cp <= 0xDFFF):
                raise ValueError("invalid syntax")
            out.append(chr(cp))
            i += 2 + width
        elif e in "01234567":
            octs = body[i + 1 : i + 4]
            if len(octs) != 3 or any(o not in "01234567" for o in octs) or int(octs, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(octs, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    res = "".join(out)
    if lit[0] == "'" and len(res) != 1:
        raise ValueError("invalid syntax")
    return res


def _parse_number(tok: Token) -> NumberNode:
    text = tok.val
    node = NumberNode(tok.pos, tok.line, text, False, 0, False, 0.0)
    if tok.typ == Tok.CHAR:
        try:
            r = go_unquote(text)
        except ValueError as exc:
            raise TemplateSyntaxError(f"malformed character constant: {text}") from exc
        node.is_char = True
        node.is_int, node.int_value = True, ord(r)
        node.is_float, node.float_value = True, float(ord(r))
        return node
    if text.endswith("i"):
        raise TemplateSyntaxError(f"complex numbers are not supported: {text}")
    clean = text.replace("_", "")
    try:
        iv = int(clean, 0)
    except ValueError:
        iv = None
    if iv is not None:
        if abs(iv) > _INT64_MAX + (1 if iv < 0 else 0):
            if not any(c in clean for c in ".eEpP"):
                raise TemplateSyntaxError(f"integer overflow: {text!r}")
        else:
            node.is_int, node.int_value = True, iv
            node.is_float, node.float_value = True, float(iv)
            return node
    try:
        fv = float.fromhex(clean) if clean.lower().lstrip("+-").startswith("0x") else float(clean)
    except (ValueError, OverflowError) as exc:
        raise TemplateSyntaxError(f"illegal number syntax: {text!r}") from exc
    node.is_float, node.float_value = True, fv
    if fv.is_integer() and abs(fv) <= _INT64_MAX:
        node.is_int, node.int_value = True, int(fv)
    return node


class _Parser:
    def __init__(self, text: str, name: str, funcs: Collection[str]) -> None:
        self.toks = lex(text)
        self.i = 0
        self.name = name
        self.funcs = funcs
        self.vars = VarStack()
        self.vars.push("$")
        self.range_depth = 0
        self.depth = 0

    # token helpers
    def next(self) -> Token:
        t = self.toks[self.i]
        if t.typ == Tok.ERROR:
            self.fail(t.val, t)
        if self.i < len(self.toks) - 1:
            self.i += 1
        return t

    def peek(self) -> Token:
        t = self.toks[self.i]
        if t.typ == Tok.ERROR:
            self.fail(t.val, t)
        return t

    def next_non_space(self) -> Token:
        t = self.next()
        while t.typ == Tok.SPACE:
            t = self.next()
        return t

    def peek_non_space(self) -> Token:
        t = self.next_non_space()
        self.i -= 1
        return t

    def fail(self, msg: str, tok: Token | None = None) -> None:
        line = tok.line if tok is not None else 1
        raise TemplateSyntaxError(f"template: {self.name}:{line}: {msg}")

    def unexpected(self, tok: Token, context: str) -> None:
        self.fail(f"unexpected {_describe(tok)} in {context}", tok)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_PARSE_DEPTH:
            raise LimitExceeded(f"template nesting exceeds max depth {MAX_PARSE_DEPTH}")

    # grammar
    def parse(self) -> ListNode:
        root = ListNode(0, 1)
        while self.peek().typ != Tok.EOF:
            n = self.text_or_action()
            if isinstance(n, _End | _Else):
                self.fail(f"unexpected {n.word}", None)
            if n is not None:
                root.nodes.append(n)
        return root

    def text_or_action(self) -> Node | None:
        t = self.next_non_space()
        if t.typ == Tok.TEXT:
            return TextNode(t.pos, t.line, t.val)
        if t.typ == Tok.LEFT:
            return self.action()
        self.unexpected(t, "input")
        return None

    def item_list(self) -> tuple[ListNode, _End | _Else]:
        lst = ListNode(self.peek().pos, self.peek().line)
        while self.peek_non_space().typ != Tok.EOF:
            n = self.text_or_action()
            if isinstance(n, _End | _Else):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        self.fail("unexpected EOF", self.peek())
        raise AssertionError  # unreachable

    def action(self) -> Node | None:
        t = self.next_non_space()
        if t.typ == Tok.KEYWORD:
            word = t.val
            if word == "if":
                return self.control(t, "if")
            if word == "with":
                return self.control(t, "with")
            if word == "range":
                return self.control(t, "range")
            if word == "end":
                self.expect(Tok.RIGHT, "end")
                return _End(t.pos, t.line, "{{end}}")
            if word == "else":
                p = self.peek_non_space()
                if p.typ == Tok.KEYWORD and p.val in ("if", "with"):
                    return _Else(t.pos, t.line, "{{else}}", chained=p.val)
                self.expect(Tok.RIGHT, "else")
                return _Else(t.pos, t.line, "{{else}}")
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", t)
                self.expect(Tok.RIGHT, word)
                return BreakNode(t.pos, t.line) if word == "break" else ContinueNode(t.pos, t.line)
            if word == "template":
                return self.template_call(t)
            self.fail(f"{word} is not supported", t)
        self.i -= 1
        return ActionNode(t.pos, t.line, self.pipeline("command", Tok.RIGHT))

    def expect(self, typ: Tok, context: str) -> Token:
        t = self.next_non_space()
        if t.typ != typ:
            self.unexpected(t, context)
        return t

    def template_call(self, t: Token) -> Node:
        tok = self.next_non_space()
        if tok.typ not in (Tok.STRING, Tok.RAW):
            self.unexpected(tok, "template clause")
        name = self.unquote(tok)
        pipe = None
        if self.peek_non_space().typ != Tok.RIGHT:
            pipe = self.pipeline("template clause", Tok.RIGHT)
        else:
            self.next_non_space()
        del t
        return TemplateNode(tok.pos, tok.line, name, pipe)  # Go: at the name

    def control(self, t: Token, context: str) -> Node:
        self.enter()
        nvars = self.vars.mark()
        pipe = self.pipeline(context, Tok.RIGHT)
        if context == "range":
            self.range_depth += 1
        body, nxt = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_body: ListNode | None = None
        if isinstance(nxt, _Else):
            if nxt.chained is not None and context in ("if", "with") and nxt.chained == context:
                kw = self.next_non_space()  # the chained keyword
                else_body = ListNode(nxt.pos, nxt.line, [self.control(kw, context)])
                # the chained control consumed the shared {{end}}
            else:
                if nxt.chained is not None:
                    self.fail(f"unexpected {nxt.chained} after else", None)
                else_body, end = self.item_list()
                if not isinstance(end, _End):
                    self.fail(f"expected end; found {end.word}", None)
        self.vars.pop_to(nvars)
        self.depth -= 1
        cls = {"if": IfNode, "with": WithNode, "range": RangeNode}[context]
        del t
        return cls(pipe.pos, pipe.line, pipe, body, else_body)  # Go: at the pipeline

    def pipeline(self, context: str, end: Tok) -> PipeNode:
        self.enter()
        start = self.peek_non_space()
        pipe = PipeNode(start.pos, start.line)
        self.decls(pipe, context)
        while True:
            t = self.next_non_space()
            if t.typ == end:
                self.check_pipeline(pipe, context, t)
                self.depth -= 1
                return pipe
            if t.typ in (
                Tok.BOOL,
                Tok.CHAR,
                Tok.DOT,
                Tok.FIELD,
                Tok.IDENT,
                Tok.NUMBER,
                Tok.NIL,
                Tok.RAW,
                Tok.STRING,
                Tok.VARIABLE,
                Tok.LPAREN,
            ):
                self.i -= 1
                pipe.cmds.append(self.command())
            else:
                self.unexpected(t, context)

    def decls(self, pipe: PipeNode, context: str) -> None:
        v = self.peek_non_space()
        if v.typ != Tok.VARIABLE:
            return
        save = self.i
        self.next_non_space()
        nxt = self.peek_non_space()
        if nxt.typ in (Tok.ASSIGN, Tok.DECLARE):
            self.next_non_space()
            pipe.is_assign = nxt.typ == Tok.ASSIGN
            if pipe.is_assign and v.val not in self.vars:
                self.fail(f"undefined variable {v.val!r}".replace("'", '"'), v)
            pipe.decls.append(VariableNode(v.pos, v.line, (v.val,)))
            if not pipe.is_assign:
                self.vars.push(v.val)
            return
        if nxt.typ == Tok.COMMA:
            self.next_non_space()
            pipe.decls.append(VariableNode(v.pos, v.line, (v.val,)))
            self.vars.push(v.val)
            if context == "range" and len(pipe.decls) < 2:
                p = self.peek_non_space()
                if p.typ == Tok.VARIABLE:
                    v2 = self.next_non_space()
                    op = self.next_non_space()
                    if op.typ not in (Tok.DECLARE, Tok.ASSIGN):
                        self.fail("range can only initialize variables", op)
                    pipe.decls.append(VariableNode(v2.pos, v2.line, (v2.val,)))
                    self.vars.push(v2.val)
                    return
                self.fail("range can only initialize variables", p)
            self.fail(f"too many declarations in {context}", nxt)
        self.i = save

    def check_pipeline(self, pipe: PipeNode, context: str, tok: Token) -> None:
        if not pipe.cmds:
            self.fail(f"missing value for {context}", tok)
        for k, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                self.fail(f"non executable command in pipeline stage {k + 2}", tok)

    def command(self) -> CommandNode:
        start = self.peek_non_space()
        cmd = CommandNode(start.pos, start.line)
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            t = self.next()
            if t.typ == Tok.SPACE:
                continue
            if t.typ in (Tok.RIGHT, Tok.RPAREN):
                self.i -= 1
            elif t.typ != Tok.PIPE:
                self.unexpected(t, "operand")
            break
        if not cmd.args:
            self.fail("empty command", start)
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == Tok.FIELD:
            # Go positions a chain (and a field or variable with more fields) at its first
            # chained field, not at the term
            at = self.peek()
            idents: list[str] = []
            while self.peek().typ == Tok.FIELD:
                idents.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(at.pos, at.line, node.idents + tuple(idents))
            if isinstance(node, VariableNode):
                return VariableNode(at.pos, at.line, node.idents + tuple(idents))
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                self.fail(f"unexpected . after term {_node_text(node)!r}", None)
            return ChainNode(at.pos, at.line, node, tuple(idents))
        return node

    def unquote(self, t: Token) -> str:
        try:
            return go_unquote(t.val)
        except ValueError:
            self.fail(f"invalid syntax: {t.val}", t)
            raise AssertionError from None

    def term(self) -> Node | None:
        t = self.next_non_space()
        typ = t.typ
        if typ == Tok.IDENT:
            if t.val not in self.funcs:
                self.fail(f'function "{t.val}" not defined', t)
            return IdentifierNode(t.pos, t.line, t.val)
        if typ == Tok.DOT:
            return DotNode(t.pos, t.line)
        if typ == Tok.NIL:
            return NilNode(t.pos, t.line)
        if typ == Tok.VARIABLE:
            name = t.val.split(".")[0]
            if name not in self.vars:
                self.fail(f'undefined variable "{name}"', t)
            return VariableNode(t.pos, t.line, (t.val,))
        if typ == Tok.FIELD:
            return FieldNode(t.pos, t.line, (t.val[1:],))
        if typ == Tok.BOOL:
            return BoolNode(t.pos, t.line, t.val == "true")
        if typ in (Tok.CHAR, Tok.NUMBER):
            try:
                return _parse_number(t)
            except TemplateSyntaxError as exc:
                self.fail(str(exc), t)
        if typ == Tok.LPAREN:
            return self.pipeline("parenthesized pipeline", Tok.RPAREN)
        if typ in (Tok.STRING, Tok.RAW):
            return StringNode(t.pos, t.line, self.unquote(t), t.val)
        self.i -= 1
        return None


class _End(Node):
    def __init__(self, pos: int, line: int, word: str) -> None:
        super().__init__(pos, line)
        self.word = word


class _Else(Node):
    def __init__(self, pos: int, line: int, word: str, chained: str | None = None) -> None:
        super().__init__(pos, line)
        self.word = word
        self.chained = chained


def _describe(t: Token) -> str:
    if t.typ == Tok.EOF:
        return "EOF"
    if t.typ == Tok.RIGHT:
        return "}}"
    if t.typ == Tok.RPAREN:
        return "right paren"
    return f'"{t.val}"' if t.typ != Tok.STRING else t.val


def _node_text(node: Node) -> str:
    if isinstance(node, StringNode):
        return node.value
    if isinstance(node, NumberNode):
        return node.text
    if isinstance(node, BoolNode):
        return "true" if node.value else "false"
    if isinstance(node, NilNode):
        return "nil"
    return "."


def parse(text: str, funcs: Collection[str], *, name: str = "bubu") -> ListNode:
    """Parse `text`; raises TemplateSyntaxError with Go-like messages."""
    try:
        return _Parser(text, name, funcs).parse()
    except RecursionError as exc:
        raise LimitExceeded("template nesting too deep") from exc
