"""A small Go text/template engine for ``--format``.

Docker's ``--format`` takes Go templates; this module implements the part of
the language people use with docker, with docker's extra functions:

- text and actions ``{{ ... }}`` with trim markers ``{{-`` and ``-}}``,
  comments ``{{/* ... */}}``;
- fields ``.``, ``.Field``, ``.Field.Sub``, variables ``$``, ``$x``,
  ``$x.Field``, literals ("string", `raw`, numbers, true, false, nil),
  parenthesised pipelines and ``|`` pipes;
- ``if``/``else if``/``else``/``end``, ``range`` (with ``$i, $v :=`` and
  ``else``), ``with``, ``$x := ...`` and ``$x = ...``;
- functions: and, or, not, len, index, slice, eq, ne, lt, le, gt, ge,
  print, printf, println, json, join, split, lower, upper, title, pad,
  truncate, table-friendly ``json`` (Go's HTML-safe escaping).

Values print as Go's ``%v`` prints them (``[a b]``, ``map[k:v]``, ``<nil>``,
``<no value>`` for a missing map key).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from dockyard.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """A template that does not parse or cannot be executed."""


class _NoValue:
    """A missing map key (Go prints ``<no value>``)."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class StrictFields(dict):
    """A dict whose missing fields are errors, not ``<no value>`` (docker's
    table rows are Go structs: ``{{.Nope}}`` fails there).  ``methods`` are
    the row's methods that take arguments (``{{.Label "env"}}``); they are
    not fields, so ``{{json .}}`` leaves them out."""

    methods: dict[str, Callable[..., Any]] = {}


# ---------------------------------------------------------------------------
# Printing values as Go's %v does.

def go_str(value: Any) -> str:
    if value is None:
        return "<nil>"
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    return str(value)


#: Fields of Docker's API objects that are Go maps (json.Marshal sorts their
#: keys); every other object is a struct, whose fields keep their order.
#: A name maps to the parents it is a map under ("*": any parent).
GO_MAP_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(parents) for name, parents in {
        "Labels": ["*"], "Attributes": ["*"], "Options": ["*"], "DriverOpts": ["*"], "Annotations": ["*"],
        "ExposedPorts": ["*"], "Volumes": ["*"], "Ports": ["*"], "Sysctls": ["*"], "StorageOpt": ["*"],
        "Tmpfs": ["*"], "Runtimes": ["*"], "IndexConfigs": ["*"], "Details": ["*"],
        "Data": ["GraphDriver"], "Networks": ["NetworkSettings"], "Config": ["LogConfig"],
        "stats": ["memory_stats"], "networks": ["*"],
    }.items()}


def _go_ordered(value: Any, *, sort_all: bool, name: str = "", parent: str = "") -> Any:
    """``value`` with dict keys in the order json.Marshal writes them: sorted
    for maps (and for every level of a formatter row, ``sort_all``), as
    given for structs."""
    if isinstance(value, dict):
        parents = GO_MAP_FIELDS.get(name)
        is_map = sort_all or (parents is not None and ("*" in parents or parent in parents))
        items = sorted(value.items(), key=lambda kv: str(kv[0])) if is_map else value.items()
        return {k: _go_ordered(v, sort_all=sort_all, name=str(k), parent=name) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_go_ordered(v, sort_all=sort_all, name=name, parent=parent) for v in value]
    return value


def go_json(value: Any) -> str:
    """json.Marshal's output: compact, <>& escaped; a formatter row
    (:class:`StrictFields`, which docker marshals as a map) with sorted keys,
    an API object with its fields in order and its maps sorted."""
    if value is NO_VALUE:
        value = None
    ordered = _go_ordered(value, sort_all=isinstance(value, StrictFields))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def truthy(value: Any) -> bool:
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# ---------------------------------------------------------------------------
# Lexing actions.

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_CHAINED_FIELDS = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


class Tok:
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text


def _lex(action: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(action):
        m = _TOKEN.match(action, pos)
        if not m:
            raise TemplateError(f"template: bad character {action[pos]!r} in {{{{{action}}}}}")
        kind = m.lastgroup or ""
        text = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        # A field chain right after a variable or ")" continues it: $x.Name, (.A).B
        if kind == "field" and text != "." and toks and toks[-1].kind in ("var", "rparen") and m.start() == (
                pos - len(text)) and action[m.start() - 1] not in " \t\n":
            toks.append(Tok("chain", text))
            continue
        toks.append(Tok(kind, text))
    return toks


def _unquote(tok: Tok) -> str:
    if tok.kind == "raw":
        return tok.text[1:-1]
    return json.loads(tok.text) if tok.kind == "string" else tok.text


# ---------------------------------------------------------------------------
# AST.

# AST nodes are plain slotted classes: dataclasses would cost the CLI's
# start-up time on every table it prints.

class Node:
    __slots__ = ()


class Text(Node):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Operand(Node):
    __slots__ = ("kind", "value", "chain")

    def __init__(self, kind: str, value: Any, chain: tuple[str, ...] = ()) -> None:
        self.kind = kind  # field, var, literal, pipeline, ident
        self.value = value
        self.chain = chain


class Command(Node):
    __slots__ = ("args",)

    def __init__(self, args: list[Operand]) -> None:
        self.args = args


class Pipeline(Node):
    __slots__ = ("commands", "declare", "assign")

    def __init__(self, commands: list[Command], declare: tuple[str, ...] = (), assign: bool = False) -> None:
        self.commands = commands
        self.declare = declare
        self.assign = assign  # "=" rather than ":="


class Action(Node):
    __slots__ = ("pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline


class Branch(Node):
    __slots__ = ("kind", "pipeline", "body", "orelse")

    def __init__(self, kind: str, pipeline: Pipeline) -> None:
        self.kind = kind  # if, range, with
        self.pipeline = pipeline
        self.body: list[Node] = []
        self.orelse: list[Node] = []


class LoopControl(Node):
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind  # break, continue


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Parser:
    def __init__(self, toks: list[Tok], source: str) -> None:
        self.toks = toks
        self.pos = 0
        self.source = source

    def peek(self) -> Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise TemplateError(f"template: unexpected end of action {{{{{self.source}}}}}")
        self.pos += 1
        return tok

    def expect_end(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise TemplateError(f"template: unexpected {tok.text!r} in {{{{{self.source}}}}}")

    def pipeline(self, allow_decl: bool = True) -> Pipeline:
        declare: tuple[str, ...] = ()
        assign = False
        if allow_decl:
            # $x := ... or $i, $v := ...
            save = self.pos
            names = []
            while (tok := self.peek()) is not None and tok.kind == "var":
                names.append(self.take().text)
                nxt = self.peek()
                if nxt is not None and nxt.kind == "comma":
                    self.take()
                    continue
                break
            nxt = self.peek()
            if names and nxt is not None and nxt.kind in ("declare", "assign"):
                self.take()
                declare, assign = tuple(names), nxt.kind == "assign"
            else:
                self.pos = save
        commands = [self.command()]
        while (tok := self.peek()) is not None and tok.kind == "pipe":
            self.take()
            commands.append(self.command())
        return Pipeline(commands, declare, assign)

    def command(self) -> Command:
        args = []
        while (tok := self.peek()) is not None and tok.kind not in ("pipe", "rparen"):
            args.append(self.operand())
        if not args:
            raise TemplateError(f"template: missing value in {{{{{self.source}}}}}")
        return Command(args)

    def operand(self) -> Operand:
        tok = self.take()
        op: Operand
        if tok.kind == "field":
            op = Operand("field", tuple(p for p in tok.text.split(".") if p))
        elif tok.kind == "var":
            op = Operand("var", tok.text)
        elif tok.kind in ("string", "raw"):
            op = Operand("literal", _unquote(tok))
        elif tok.kind == "char":
            op = Operand("literal", ord(json.loads('"' + tok.text[1:-1] + '"')))
        elif tok.kind == "number":
            text = tok.text
            op = Operand("literal", int(text, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", text)
                         else float(text))
        elif tok.kind == "ident":
            constants = {"true": True, "false": False, "nil": None}
            if tok.text in constants:
                op = Operand("literal", constants[tok.text])
            else:
                op = Operand("ident", tok.text)
        elif tok.kind == "lparen":
            inner = self.pipeline(allow_decl=False)
            closing = self.take()
            if closing.kind != "rparen":
                raise TemplateError(f"template: unclosed parenthesis in {{{{{self.source}}}}}")
            op = Operand("pipeline", inner)
        else:
            raise TemplateError(f"template: unexpected {tok.text!r} in {{{{{self.source}}}}}")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "chain":
            self.take()
            op.chain = tuple(p for p in nxt.text.split(".") if p)
        return op


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def parse(source: str) -> list[Node]:
    """Parse a template into nodes; TemplateError with the reason."""
    items: list[tuple[str, str]] = []
    pos = 0
    pending_trim = False
    for m in _ACTION.finditer(source):
        text = source[pos:m.start()]
        if pending_trim:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            items.append(("text", text))
        body = m.group(2).strip()
        items.append(("action", body))
        pending_trim = bool(m.group(3))
        pos = m.end()
    tail = source[pos:]
    if "{{" in tail:
        raise TemplateError("template: unclosed action")
    if pending_trim:
        tail = tail.lstrip()
    if tail:
        items.append(("text", tail))

    root: list[Node] = []
    # Open blocks: (branch, the node list to return to at {{end}}, chained).
    # An "else if" opens a chained branch that the parent's {{end}} closes.
    stack: list[tuple[Branch, list[Node], bool]] = []
    current = root

    for kind, body in items:
        if kind == "text":
            current.append(Text(body))
            continue
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError("template: unclosed comment")
            continue
        toks = _lex(body)
        if not toks:
            raise TemplateError("template: missing value for command")
        head = toks[0]
        word = head.text if head.kind == "ident" else ""
        if word in ("if", "range", "with"):
            p = _Parser(toks[1:], body)
            branch = Branch(word, p.pipeline())
            p.expect_end()
            current.append(branch)
            stack.append((branch, current, False))
            current = branch.body
        elif word == "else":
            if not stack:
                raise TemplateError("template: unexpected {{else}}")
            branch = stack[-1][0]
            if current is branch.orelse:
                raise TemplateError("template: {{else}} after {{else}}")
            if len(toks) > 1 and toks[1].kind == "ident" and toks[1].text in ("if", "with"):
                p = _Parser(toks[2:], body)
                nested = Branch(toks[1].text, p.pipeline())
                p.expect_end()
                branch.orelse.append(nested)
                stack.append((nested, branch.orelse, True))
                current = nested.body
            else:
                current = branch.orelse
        elif word == "end":
            if not stack:
                raise TemplateError("template: unexpected {{end}}")
            while True:
                _, parent, chained = stack.pop()
                if not chained:
                    break
            current = parent
        elif word in ("break", "continue") and len(toks) == 1:
            current.append(LoopControl(word))
        elif word in ("define", "template", "block"):
            raise TemplateError(f"template: {{{{{word}}}}} is not supported")
        else:
            p = _Parser(toks, body)
            pipeline = p.pipeline()
            p.expect_end()
            current.append(Action(pipeline))
    if stack:
        raise TemplateError(f"template: unexpected EOF: {{{{{stack[-1][0].kind}}}}} without {{{{end}}}}")
    return root




# ---------------------------------------------------------------------------
# Functions.

def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            # Go's index of a missing key is the element type's zero value:
            # "" for the string maps (Labels, Options) docker's structs have
            default = "" if all(isinstance(v, str) for v in item.values()) else NO_VALUE
            item = item.get(key, default)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int):
                raise TemplateError(f"cannot index slice/array with type {type(key).__name__}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None and isinstance(key, str):
            item = ""  # a typed nil map (null Labels) in docker's struct
        elif item is None or item is NO_VALUE:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {type(item).__name__}")
    return item


def _slice(item: Any, *idx: int) -> Any:
    if len(idx) == 0:
        return item
    if len(idx) == 1:
        return item[idx[0]:]
    return item[idx[0]:idx[1]]


def _len(item: Any) -> int:
    try:
        return len(item)
    except TypeError:
        raise TemplateError(f"error calling len: len of type {type(item).__name__}") from None


def _eq(a: Any, *bs: Any) -> bool:
    return any(_norm(a) == _norm(b) for b in bs)


def _norm(v: Any) -> Any:
    return None if v is NO_VALUE else v


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise TemplateError(f"incompatible types for comparison: {go_str(a)} and {go_str(b)}") from None
    return compare


def _print(*args: Any) -> str:
    # Go's fmt.Sprint: spaces between operands when neither is a string.
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


def _println(*args: Any) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    out = []
    pos = 0
    argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        spec = "%" + flags + (width or "") + (f".{prec}" if prec else "")
        if verb in "sv":
            out.append((spec + "s") % go_str(arg))
        elif verb == "q":
            out.append((spec + "s") % json.dumps(go_str(arg), ensure_ascii=False))
        elif verb in "dxXob":
            try:
                number = int(arg)
            except (TypeError, ValueError):
                out.append(f"%!{verb}({go_str(arg)})")
                continue
            out.append(format(number, (flags or "") + (width or "") + verb) if verb == "b" else (spec + verb) % number)
        elif verb in "feEgG":
            try:
                out.append((spec + verb) % float(arg))
            except (TypeError, ValueError):
                out.append(f"%!{verb}({go_str(arg)})")
        elif verb == "t":
            out.append((spec + "s") % go_str(bool(arg)))
        else:
            out.append(f"%!{verb}({go_str(arg)})")
    out.append(fmt[pos:])
    return "".join(out)


def _join(items: Any, sep: str) -> str:
    if items is None or items is NO_VALUE:
        return ""
    return sep.join(go_str(i) for i in items)


def _split(text: str, sep: str) -> list[str]:
    return go_str(text).split(sep) if sep else list(go_str(text))


def _title(text: Any) -> str:
    # strings.Title: upper-case the first letter of each word, leave the rest.
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), go_str(text))


def _pad(text: Any, left: int, right: int) -> str:
    return " " * left + go_str(text) + " " * right


def _truncate(text: Any, length: int) -> str:
    s = go_str(text)
    return s[:length] if len(s) > length else s


FUNCS: dict[str, Callable[..., Any]] = {
    "and": None,  # type: ignore[dict-item]  # evaluated lazily, see _call
    "or": None,  # type: ignore[dict-item]
    "not": lambda v: not truthy(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "print": _print,
    "printf": _printf,
    "println": _println,
    "json": go_json,
    "join": _join,
    "split": _split,
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": _title,
    "pad": _pad,
    "truncate": _truncate,
}


# ---------------------------------------------------------------------------
# Execution.

class _Scope:
    def __init__(self, dot: Any) -> None:
        self.vars: list[dict[str, Any]] = [{"$": dot}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable: {name}")

    def set(self, name: str, value: Any, *, declare: bool) -> None:
        if declare:
            self.vars[-1][name] = value
            return
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")


#: Go struct field names whose JSON names differ (docker's templates run on
#: Go structs, so users write ``.ID`` where the JSON says "Id").
FIELD_ALIASES = {"ID": "Id", "Id": "ID", "APIVersion": "ApiVersion", "ApiVersion": "APIVersion"}


class GoStruct(dict):
    """An API object whose Go struct docker's CLI templates: ``fields`` maps
    each struct field name to its JSON key and its zero value (what the
    template reads when the daemon omitted it, omitempty)."""

    fields: dict[str, tuple[str, Any]] = {}

    def lookup(self, name: str) -> Any:
        if name in self:
            return self[name]
        if name in self.fields:
            key, zero = self.fields[name]
            return self.get(key, zero)
        return NO_VALUE


class EventMessage(GoStruct):
    """events.Message: ``{{.ID}} {{.Status}} {{.From}}`` as docker reads them."""

    fields = {"Status": ("status", ""), "ID": ("id", ""), "From": ("from", ""), "Scope": ("scope", ""),
              "Time": ("time", 0), "TimeNano": ("timeNano", 0)}


def _field(value: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        if isinstance(value, GoStruct):
            value = value.lookup(name)
            continue
        if isinstance(value, dict) and name not in value and FIELD_ALIASES.get(name) in value:
            name = FIELD_ALIASES[name]
        if isinstance(value, StrictFields):
            if name in value:
                value = value[name]
            elif name in value.methods:
                value = value.methods[name]
            else:
                raise TemplateError(f"can't evaluate field {name}")
        elif isinstance(value, dict):
            value = value.get(name, NO_VALUE)
        elif value is None or value is NO_VALUE:
            # Go: nil pointer evaluating interface {}.Name
            if value is NO_VALUE:
                return NO_VALUE
            raise TemplateError(f"nil pointer evaluating .{name}")
        else:
            attr = getattr(value, name, NO_VALUE)
            if attr is NO_VALUE:
                raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
            value = attr() if callable(attr) else attr
    return value


class Template:
    """A parsed template; ``execute(dot)`` returns the output text."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = parse(source)

    def execute(self, dot: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, dot, _Scope(dot), out)
        return "".join(out)

    def _run(self, nodes: list[Node], dot: Any, scope: _Scope, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipeline(node.pipeline, dot, scope)
                if not node.pipeline.declare:
                    out.append(go_str(value))
            elif isinstance(node, Branch):
                self._branch(node, dot, scope, out)
            elif isinstance(node, LoopControl):
                raise _Break() if node.kind == "break" else _Continue()

    def _branch(self, node: Branch, dot: Any, scope: _Scope, out: list[str]) -> None:
        scope.vars.append({})
        try:
            if node.kind == "range":
                self._range(node, dot, scope, out)
                return
            value = self._pipeline(node.pipeline, dot, scope)
            if truthy(value):
                self._run(node.body, value if node.kind == "with" else dot, scope, out)
            else:
                self._run(node.orelse, dot, scope, out)
        finally:
            scope.vars.pop()

    def _range(self, node: Branch, dot: Any, scope: _Scope, out: list[str]) -> None:
        pipeline = node.pipeline
        value = self._pipeline(Pipeline(pipeline.commands), dot, scope)
        if value is None or value is NO_VALUE:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: str(kv[0]))
        elif isinstance(value, (list, tuple, str)):
            items = list(enumerate(value))
        elif isinstance(value, int):
            items = [(i, i) for i in range(value)]
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        if not items:
            self._run(node.orelse, dot, scope, out)
            return
        for key, item in items:
            if len(pipeline.declare) == 1:
                scope.set(pipeline.declare[0], item, declare=True)
            elif len(pipeline.declare) == 2:
                scope.set(pipeline.declare[0], key, declare=True)
                scope.set(pipeline.declare[1], item, declare=True)
            try:
                self._run(node.body, item, scope, out)
            except _Continue:
                continue
            except _Break:
                break

    def _pipeline(self, pipeline: Pipeline, dot: Any, scope: _Scope) -> Any:
        value: Any = NO_VALUE
        for i, command in enumerate(pipeline.commands):
            value = self._command(command, dot, scope, value if i else None, piped=i > 0)
        if pipeline.declare:
            scope.set(pipeline.declare[0], value, declare=not pipeline.assign)
        return value

    def _command(self, command: Command, dot: Any, scope: _Scope, piped_value: Any, *, piped: bool) -> Any:
        first = command.args[0]
        if first.kind == "ident":
            name = first.value
            if name not in FUNCS:
                raise TemplateError(f'template: function "{name}" not defined')
            args_nodes = command.args[1:]
            if name in ("and", "or"):
                # Short-circuit, returning the deciding operand as Go does.
                operands = [lambda n=n: self._operand(n, dot, scope) for n in args_nodes]
                if piped:
                    operands.append(lambda: piped_value)
                if not operands:
                    raise TemplateError(f"wrong number of args for {name}")
                result = None
                for get in operands:
                    result = get()
                    if (name == "and" and not truthy(result)) or (name == "or" and truthy(result)):
                        return result
                return result
            args = [self._operand(n, dot, scope) for n in args_nodes]
            if piped:
                args.append(piped_value)
            try:
                return FUNCS[name](*args)
            except TypeError as e:
                raise TemplateError(f"error calling {name}: {e}") from None
        if len(command.args) > 1 or piped:
            method = self._operand(first, dot, scope) if first.kind == "field" else None
            if not callable(method):
                raise TemplateError(f"can't give argument to non-function {self._describe(first)}")
            args = [self._operand(n, dot, scope) for n in command.args[1:]]
            if piped:
                args.append(piped_value)
            try:
                return method(*args)
            except TypeError as e:
                raise TemplateError(f"error calling {self._describe(first)}: {e}") from None
        return self._operand(first, dot, scope)

    @staticmethod
    def _describe(op: Operand) -> str:
        if op.kind == "field":
            return "." + ".".join(op.value)
        return go_str(op.value)

    def _operand(self, op: Operand, dot: Any, scope: _Scope) -> Any:
        if op.kind == "field":
            value = _field(dot, op.value)
        elif op.kind == "var":
            value = scope.get(op.value)
        elif op.kind == "literal":
            value = op.value
        elif op.kind == "pipeline":
            value = self._pipeline(op.value, dot, scope)
        elif op.kind == "ident":
            value = self._command(Command([op]), dot, scope, None, piped=False)
        else:  # pragma: no cover - parser produces no other kinds
            raise TemplateError(f"bad operand {op.kind}")
        if op.chain:
            value = _field(value, op.chain)
        return value


def render(source: str, dot: Any) -> str:
    return Template(source).execute(dot)
