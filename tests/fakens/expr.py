"""A small parser and evaluator for the NetScaler default-syntax expressions the fake needs.

Supported (enough for ACME responder policies and the redirect policies admins typically have):

* boolean: ``true``, ``false``, ``!``, ``&&``, ``||``, parentheses, and text predicates
  ``<text>.EQ("…")`` / ``CONTAINS`` / ``STARTSWITH`` / ``ENDSWITH``;
* text: string literals (escapes ``\\r \\n \\t \\" \\\\``; at most 255 characters each) joined
  with ``+``, and request values ``HTTP.REQ.URL``, ``HTTP.REQ.URL.PATH``,
  ``HTTP.REQ.URL.PATH_AND_QUERY``, ``HTTP.REQ.URL.QUERY``, ``HTTP.REQ.HOSTNAME`` (host without
  port; compared case-insensitively), each optionally followed by ``.SET_TEXT_MODE(IGNORECASE)``,
  ``.HTTP_URL_SAFE``, ``.TO_LOWER`` or ``.TO_UPPER``.

``parse_rule`` / ``parse_text`` raise :class:`ExprError` for anything else, which the responder
module turns into the appliance's "invalid expression" errors at add time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

MAX_LITERAL = 255


class ExprError(ValueError):
    """The expression does not parse or has the wrong type."""


@dataclass(frozen=True)
class Request:
    """What an expression can look at: the request line target and the Host header."""

    url: str  # path and query, as sent
    host: str  # Host header, possibly with a port


@dataclass(frozen=True)
class Text:
    """A text-valued expression; ``ignorecase`` is set by SET_TEXT_MODE or implied by HOSTNAME."""

    value: Callable[[Request], str]
    ignorecase: bool = False


Bool = Callable[[Request], bool]
Node = Union[Text, Bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>&&|\|\||[!().,+])
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"unexpected character at offset {pos}: {source[pos:pos + 10]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    text = "".join(out)
    if len(text) > MAX_LITERAL:
        raise ExprError(f"string literal longer than {MAX_LITERAL} characters")
    return text


def _host(request: Request) -> str:
    host = request.host.strip()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def _path(request: Request) -> str:
    return request.url.split("?", 1)[0]


def _query(request: Request) -> str:
    return request.url.split("?", 1)[1] if "?" in request.url else ""


_SOURCES: dict[tuple[str, ...], Text] = {
    ("URL",): Text(lambda r: r.url),
    ("URL", "PATH"): Text(_path),
    ("URL", "PATH_AND_QUERY"): Text(lambda r: r.url),
    ("URL", "QUERY"): Text(_query),
    ("HOSTNAME",): Text(_host, ignorecase=True),
}

_PREDICATES: dict[str, Callable[[str, str], bool]] = {
    "EQ": lambda a, b: a == b,
    "CONTAINS": lambda a, b: b in a,
    "STARTSWITH": lambda a, b: a.startswith(b),
    "ENDSWITH": lambda a, b: a.endswith(b),
}


class _Parser:
    """Recursive descent over the token list; each method returns a typed node."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, value: str = "") -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end" or (value and token[1] != value):
            raise ExprError(f"expected {value or 'more input'}, found {token[1] or 'end'}")
        self.pos += 1
        return token

    def done(self) -> None:
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected {self.peek()[1]!r}")

    def boolean(self) -> Bool:
        left = self.conjunction()
        while self.peek() == ("op", "||"):
            self.take()
            left = _or(left, self.conjunction())
        return left

    def conjunction(self) -> Bool:
        left = self.negation()
        while self.peek() == ("op", "&&"):
            self.take()
            left = _and(left, self.negation())
        return left

    def negation(self) -> Bool:
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.negation()
            return lambda r: not inner(r)
        node = self.operand()
        if isinstance(node, Text):
            raise ExprError("a text expression is not a condition")
        return node

    def operand(self) -> Node:
        kind, value = self.peek()
        if (kind, value) == ("op", "("):
            self.take()
            node = self.boolean()
            self.take(")")
            return node
        if kind == "ident" and value.lower() in ("true", "false"):
            self.take()
            constant = value.lower() == "true"
            return lambda r: constant
        return self.text_or_predicate()

    def text(self) -> Text:
        parts = [self.text_term()]
        while self.peek() == ("op", "+"):
            self.take()
            parts.append(self.text_term())
        if len(parts) == 1:
            return parts[0]
        return Text(lambda r: "".join(part.value(r) for part in parts))

    def text_term(self) -> Text:
        node = self.text_or_predicate()
        if not isinstance(node, Text):
            raise ExprError("a condition is not text")
        return node

    def text_or_predicate(self) -> Node:
        kind, value = self.take()
        if kind == "string":
            return _literal(_unescape(value))
        if (kind, value) != ("ident", "HTTP"):
            raise ExprError(f"unsupported expression start {value!r}")
        self.take(".")
        self.take("REQ")
        return self.request_value()

    def request_value(self) -> Node:
        names: list[str] = []
        while self.peek() == ("op", ".") and (*names, self._next_name()) in _SOURCES_PREFIXES:
            self.take(".")
            names.append(self.take()[1].upper())
        source = _SOURCES.get(tuple(names))
        if source is None:
            raise ExprError(f"unsupported request value HTTP.REQ.{'.'.join(names) or '?'}")
        return self.modifiers(source)

    def _next_name(self) -> str:
        if self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][0] == "ident":
            return self.tokens[self.pos + 1][1].upper()
        return ""

    def modifiers(self, text: Text) -> Node:
        while self.peek() == ("op", "."):
            self.take(".")
            name = self.take()[1].upper()
            if name == "SET_TEXT_MODE":
                self.take("(")
                mode = self.take()[1].upper()
                self.take(")")
                if mode not in ("IGNORECASE", "NOIGNORECASE"):
                    raise ExprError(f"unknown text mode {mode}")
                text = Text(text.value, ignorecase=mode == "IGNORECASE")
            elif name == "HTTP_URL_SAFE":
                continue
            elif name in ("TO_LOWER", "TO_UPPER"):
                text = _case(text, upper=name == "TO_UPPER")
            elif name in _PREDICATES:
                self.take("(")
                argument = self.text()
                self.take(")")
                return _predicate(text, _PREDICATES[name], argument)
            else:
                raise ExprError(f"unsupported method {name}")
        return text


_SOURCES_PREFIXES = {prefix[:i] for prefix in _SOURCES for i in range(1, len(prefix) + 1)}


def _literal(text: str) -> Text:
    return Text(lambda r: text)


def _or(left: Bool, right: Bool) -> Bool:
    return lambda r: left(r) or right(r)


def _and(left: Bool, right: Bool) -> Bool:
    return lambda r: left(r) and right(r)


def _case(text: Text, *, upper: bool) -> Text:
    def value(r: Request) -> str:
        raw = text.value(r)
        return raw.upper() if upper else raw.lower()

    return Text(value, text.ignorecase)


def _predicate(subject: Text, test: Callable[[str, str], bool], argument: Text) -> Bool:
    def evaluate(r: Request) -> bool:
        left, right = subject.value(r), argument.value(r)
        if subject.ignorecase:
            left, right = left.lower(), right.lower()
        return test(left, right)

    return evaluate


def parse_rule(source: str) -> Bool:
    """Parse a policy rule; the result maps a :class:`Request` to True/False."""
    parser = _Parser(source)
    rule = parser.boolean()
    parser.done()
    return rule


def parse_text(source: str) -> Callable[[Request], str]:
    """Parse a text expression (an action target); the result maps a :class:`Request` to text."""
    parser = _Parser(source)
    text = parser.text()
    parser.done()
    return text.value
