"""CloudWatch Logs filter patterns as AWS's user guide documents them, compiled once to generated Python predicates."""

# Where the guide is silent, the choice is marked "Decision:" next to the code, to revisit against a real account.

from __future__ import annotations

import builtins
import functools
import json
import re
from collections.abc import Callable, Iterable

__all__ = ["FilterPatternError", "Match", "MISSING", "Pattern", "PatternSet", "compile"]

# PutMetricFilter, PutSubscriptionFilter, FilterLogEvents and StartLiveTail all cap the pattern at 1024 characters.
MAX_LENGTH = 1024
# AWS: "a limit of 2 regex for each filter pattern when creating a delimited or JSON filter pattern".
MAX_REGEX = 2
# Keeps the recursive parser and the generated code far from Python's recursion and nesting limits.
MAX_DEPTH = 48


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING: object = _Sentinel("MISSING")  # "the caller has not decoded the message": decode lazily if needed
_ABSENT = _Sentinel("ABSENT")  # a selector that resolves to nothing


class FilterPatternError(ValueError):
    """A pattern AWS would refuse (InvalidParameterException), with the 0-based offset of the problem."""

    def __init__(self, position: int, reason: str):
        super().__init__(position, reason)
        self.position = position
        self.reason = reason

    def __str__(self) -> str:
        return f"Invalid filter pattern at position {self.position}: {self.reason}"


class _Sel:
    """A JSON selector: `$.a.b[0]`, `$.['cluster.name']`; path holds names (str) and indexes (int)."""
    __slots__ = ("path",)

    def __init__(self, path: tuple):
        self.path = path

    def __str__(self) -> str:
        out = ["$"]
        for seg in self.path:
            if isinstance(seg, int):
                out.append(f"[{seg}]")
            elif _NAME_RE.fullmatch(seg):
                out.append(f".{seg}")
            else:
                out.append(f".['{seg}']")
        return "".join(out)


class _Val:
    """A literal after an operator: kind "str" (data may hold `*` wildcards), "num" (data a number, raw as written)
    or "regex" (data the body between the `%`, regex compiled)."""
    __slots__ = ("kind", "data", "raw", "regex")

    def __init__(self, kind: str, data: object, raw: str, regex: re.Pattern | None = None):
        self.kind, self.data, self.raw, self.regex = kind, data, raw, regex

    def __str__(self) -> str:
        if self.kind == "num":
            return self.raw
        if self.kind == "regex":
            return f"%{self.data}%"
        return _quote(self.data)


class _Cmp:
    __slots__ = ("sel", "op", "val")

    def __init__(self, sel: _Sel | str, op: str, val: _Val):
        self.sel, self.op, self.val = sel, op, val

    def __str__(self) -> str:
        return f"{self.sel} {self.op} {self.val}"


class _Is:
    """`IS NULL`, `IS TRUE`, `IS FALSE`, `NOT EXISTS`."""
    __slots__ = ("sel", "what")

    def __init__(self, sel: _Sel, what: str):
        self.sel, self.what = sel, what

    def __str__(self) -> str:
        return f"{self.sel} {self.what}"


class _And:
    __slots__ = ("items",)

    def __init__(self, items: tuple):
        self.items = items

    def __str__(self) -> str:
        return " && ".join(f"({i})" if isinstance(i, _Or) else str(i) for i in self.items)


class _Or:
    __slots__ = ("items",)

    def __init__(self, items: tuple):
        self.items = items

    def __str__(self) -> str:
        return " || ".join(str(i) for i in self.items)


def _join(cls: type, items: list):
    """One node for `a && b && c` even when written `(a && b) && c`: flat trees render and compile simply."""
    flat: list = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return flat[0] if len(flat) == 1 else cls(tuple(flat))


class _Field:
    """One slot of a space-delimited pattern; name None is the unnamed slot a trailing comma leaves."""
    __slots__ = ("name", "cond")

    def __init__(self, name: str | None, cond):
        self.name, self.cond = name, cond

    def __str__(self) -> str:
        return "" if self.name is None else str(self.cond) if self.cond is not None else self.name


_ELLIPSIS = "..."


class _Term:
    """A text-pattern item: mode is "" (required), "?" (any of these) or "-" (excluded)."""
    __slots__ = ("mode", "text", "quoted")

    def __init__(self, mode: str, text: str, quoted: bool):
        self.mode, self.text, self.quoted = mode, text, quoted

    def __str__(self) -> str:
        body = self.text if not self.quoted and _TERM_RE.fullmatch(self.text) else _quote(self.text)
        return self.mode + body


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_WS = " \t\r\n"
# Selector property names: "alphanumeric strings that also support '-' and '_'" (AWS).
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
# Unquoted text terms: AWS wants terms with "characters other than alphanumeric or underscore" in double quotes.
_TERM_RE = re.compile(r"[A-Za-z0-9_]+")
_FIELD_RE = re.compile(r"[A-Za-z0-9_]+")
# Unquoted values: AWS's examples use bare kms.amazonaws.com, 123.123.*, *.html*, +1000; '@', '$', '\' need quotes.
_BARE_RE = re.compile(r"[A-Za-z0-9_.*:/+-]+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER_RE = re.compile(r"[+-]?\d+")
_WORD_RE = re.compile(r"[A-Za-z]+")
_OPERATOR_RE = re.compile(r"[=!<>]+")
_JOINER_RE = re.compile(r"[&|]+")
_INDEX_RE = re.compile(r"\d+")
_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
# Supported inside %regex%: letters, digits, the listed symbols and operators; '(' and ')' are not.
_REGEX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         ":_#=@/;,-" "^$?[]{}|\\*+.")


class _Scanner:
    __slots__ = ("text", "pos", "end", "regexes")

    def __init__(self, text: str, pos: int):
        self.text, self.pos, self.end, self.regexes = text, pos, len(text), 0

    def ws(self) -> None:
        text, pos, end = self.text, self.pos, self.end
        while pos < end and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def at(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def run(self, pattern: re.Pattern) -> str:
        m = pattern.match(self.text, self.pos)
        if m is None:
            return ""
        self.pos = m.end()
        return m.group()

    def fail(self, reason: str, at: int | None = None) -> FilterPatternError:
        return FilterPatternError(self.pos if at is None else at, reason)

    def describe(self) -> str:
        return "the end of the pattern" if self.pos >= self.end else repr(self.text[self.pos])


def _quoted(s: _Scanner) -> str:
    """A double-quoted string at s.pos; `\\"` and `\\\\` are escapes, any other backslash is literal."""
    start = s.pos
    text, i, out = s.text, s.pos + 1, []
    while i < s.end:
        c = text[i]
        if c == '"':
            s.pos = i + 1
            return "".join(out)
        if c == "\\" and i + 1 < s.end and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    raise s.fail("unterminated quoted string (missing closing '\"')", start)


def _regex(s: _Scanner) -> _Val:
    start = s.pos
    close = s.text.find("%", start + 1)
    if close < 0:
        raise s.fail("unterminated regular expression (missing closing '%')", start)
    body = s.text[start + 1:close]
    if not body:
        raise s.fail("empty regular expression", start)
    for offset, c in enumerate(body, start + 1):
        if c not in _REGEX_CHARS:
            what = "'(' and ')' are" if c in "()" else f"{c!r} is"
            raise s.fail(f"{what} not supported in a regular expression", offset)
    try:
        compiled = re.compile(body, re.ASCII)
    except re.error as exc:
        raise s.fail(f"invalid regular expression: {exc.msg}", start) from None
    s.pos = close + 1
    return _Val("regex", body, s.text[start:close + 1], compiled)


def _value(s: _Scanner, op: str) -> _Val:
    s.ws()
    at, c = s.pos, s.peek()
    if c == '"':
        text = _quoted(s)
        val = _Val("str", text, s.text[at:s.pos])
    elif c == "%":
        s.regexes += 1
        if s.regexes > MAX_REGEX:
            raise s.fail(f"at most {MAX_REGEX} regular expressions are allowed in a JSON or space-delimited pattern")
        val = _regex(s)
    else:
        raw = s.run(_BARE_RE)
        if not raw:
            raise s.fail(f"expected a value after '{op}'", at)
        nxt = s.peek()
        if nxt and nxt not in _WS and nxt not in "(){}[],&|":
            raise s.fail(f"unexpected character {nxt!r} in an unquoted value: quote values that contain it")
        val = _Val("num", _number(raw), raw) if _NUMBER_RE.fullmatch(raw) else _Val("str", raw, raw)
    if op not in ("=", "!=") and val.kind != "num":
        kind = "a regular expression" if val.kind == "regex" else f"the string {val}"
        raise s.fail(f"'{op}' compares numbers: expected a number, got {kind}", at)
    return val


def _operator(s: _Scanner) -> str:
    at = s.pos
    op = s.run(_OPERATOR_RE)
    if op not in _OPERATORS:
        hint = " (use '=')" if op == "==" else ""
        raise s.fail(f"unknown operator '{op}'{hint}", at)
    return op


def _parse_json(text: str, start: int):
    s = _Scanner(text, start + 1)
    s.ws()
    if s.peek() == "}":
        raise s.fail("expected a condition inside '{ }'")
    tree = _json_or(s, 0, "'{'")
    s.ws()
    c = s.peek()
    if c == "":
        raise s.fail(f"missing '}}' to close the '{{' at position {start}: "
                     "a pattern that starts with '{' must end with '}'")
    if c == ")":
        raise s.fail("unbalanced ')'")
    if c != "}":
        raise s.fail(_after_condition(s, "'}'"))
    s.pos += 1
    s.ws()
    if s.pos < s.end:
        raise s.fail("unexpected text after the closing '}'")
    return tree


def _bad_joiner(s: _Scanner) -> str:
    return f"unknown operator '{_JOINER_RE.match(s.text, s.pos).group()}' (use '&&' or '||')"


def _after_condition(s: _Scanner, closer: str) -> str:
    if s.peek() and s.peek() in "&|":
        return _bad_joiner(s)
    return f"expected '&&', '||' or {closer} after a condition, found {s.describe()}"


def _json_or(s: _Scanner, depth: int, after: str):
    items = [_json_and(s, depth, after)]
    while True:
        s.ws()
        if not s.at("||"):
            return _join(_Or, items)
        s.pos += 2
        items.append(_json_and(s, depth, "'||'"))


def _json_and(s: _Scanner, depth: int, after: str):
    items = [_json_unary(s, depth, after)]
    while True:
        s.ws()
        if not s.at("&&"):
            return _join(_And, items)
        s.pos += 2
        items.append(_json_unary(s, depth, "'&&'"))


def _json_unary(s: _Scanner, depth: int, after: str):
    s.ws()
    c = s.peek()
    if c == "(":
        if depth >= MAX_DEPTH:
            raise s.fail(f"parentheses nested more than {MAX_DEPTH} deep")
        open_at = s.pos
        s.pos += 1
        node = _json_or(s, depth + 1, "'('")
        s.ws()
        c = s.peek()
        if c == ")":
            s.pos += 1
            return node
        if c in ("", "}"):
            raise s.fail(f"missing ')' to close the '(' at position {open_at}")
        raise s.fail(_after_condition(s, "')'"))
    if c == "$":
        sel = _selector(s)
        return _json_condition(s, sel)
    if c == "" or c in "})&|":
        raise s.fail(f"expected a condition after {after}, found {s.describe()}")
    if _NAME_RE.match(c):
        raise s.fail("a selector must start with '$.'")
    raise s.fail(f"expected a selector ('$.') or '(', found {s.describe()}")


def _selector(s: _Scanner) -> _Sel:
    s.pos += 1  # '$'
    if s.peek() != ".":
        raise s.fail("a selector must start with '$.'", s.pos - 1)
    s.pos += 1
    path: list = []
    dotted = True
    while True:
        c = s.peek()
        if s.at("['"):
            path.append(_bracket_name(s))
        elif dotted:
            name = s.run(_NAME_RE)
            if not name:
                what = "wildcard selectors are not supported" if c == "*" else "expected a property name after '.'"
                raise s.fail(what)
            path.append(name)
        elif c == "[":
            at = s.pos
            s.pos += 1
            digits = s.run(_INDEX_RE)
            if not digits or s.peek() != "]":
                raise s.fail("expected an array index like [0] or a quoted name like ['a.b']", at)
            s.pos += 1
            path.append(int(digits))
        else:
            return _Sel(tuple(path))
        dotted = s.peek() == "."
        if dotted:
            s.pos += 1


def _bracket_name(s: _Scanner) -> str:
    at = s.pos
    close = s.text.find("']", at + 2)
    if close < 0:
        raise s.fail("unterminated quoted property name (expected \"']\")", at)
    name = s.text[at + 2:close]
    if not name or "'" in name:
        raise s.fail("expected a property name inside [' ']", at)
    s.pos = close + 2
    return name


def _json_condition(s: _Scanner, sel: _Sel):
    s.ws()
    at, c = s.pos, s.peek()
    if c and c in "=!<>":
        op = _operator(s)
        return _Cmp(sel, op, _value(s, op))
    word = s.run(_WORD_RE)
    if word == "IS":
        s.ws()
        what_at = s.pos
        what = s.run(_WORD_RE)
        if what in ("NULL", "TRUE", "FALSE"):
            return _Is(sel, f"IS {what}")
        if what == "NOT":
            raise s.fail("'IS NOT' is not supported: use '!=' or 'NOT EXISTS'", at)
        raise s.fail("expected NULL, TRUE or FALSE after IS", what_at)
    if word == "NOT":
        s.ws()
        what_at = s.pos
        if s.run(_WORD_RE) == "EXISTS":
            return _Is(sel, "NOT EXISTS")
        raise s.fail("expected EXISTS after NOT", what_at)
    if word == "EXISTS":
        raise s.fail("'EXISTS' is not supported: only 'NOT EXISTS' is", at)
    if word:
        raise s.fail(f"unknown operator '{word}'", at)
    if c == "" or c in "})&|":
        raise s.fail(f"expected an operator after the selector {sel}, found {s.describe()}")
    raise s.fail(f"unknown operator {c!r}")


def _parse_delimited(text: str, start: int) -> list:
    s = _Scanner(text, start + 1)
    slots: list = []
    names: set[str] = set()
    while True:
        s.ws()
        at, c = s.pos, s.peek()
        if s.at("..."):
            s.pos += 3
            slots.append(_ELLIPSIS)
        elif c == "]" and slots:
            slots.append(_Field(None, None))  # `[a, b,]`: AWS extracts the unnamed slot as "$<position>"
        elif _FIELD_RE.match(c or " "):
            name = s.run(_FIELD_RE)
            if name in names:
                raise s.fail(f"field name '{name}' is used twice", at)
            names.add(name)
            s.ws()
            cond = None if s.peek() in ("", ",", "]") else _field_condition(s, name)
            slots.append(_Field(name, cond))
        elif c == "":
            break
        else:
            raise s.fail(f"expected a field name or '...', found {s.describe()}")
        s.ws()
        c = s.peek()
        if c == ",":
            s.pos += 1
            continue
        if c == "]":
            s.pos += 1
            s.ws()
            if s.pos < s.end:
                raise s.fail("unexpected text after the closing ']'")
            return slots
        if c == "":
            break
        if c in "&|":
            raise s.fail(_bad_joiner(s))
        raise s.fail(f"expected ',' or ']' after a field, found {s.describe()}")
    raise s.fail(f"missing ']' to close the '[' at position {start}: a pattern that starts with '[' must end with ']'")


def _field_condition(s: _Scanner, name: str):
    """`status_code = 404 || status_code = 410`: every condition in one slot names that slot's field."""
    groups: list[list] = [[]]
    while True:
        c = s.peek()
        if not (c and c in "=!<>"):
            raise s.fail(f"expected an operator, ',' or ']' after field '{name}', found {s.describe()}")
        op = _operator(s)
        groups[-1].append(_Cmp(name, op, _value(s, op)))
        s.ws()
        if s.at("&&") or s.at("||"):
            joiner = s.text[s.pos:s.pos + 2]
            s.pos += 2
            if joiner == "||":
                groups.append([])
            s.ws()
            other_at = s.pos
            other = s.run(_FIELD_RE)
            # Decision: field names compare case-insensitively here, as AWS's own `[w1=ERROR || W1=WARNING, w2]`.
            if other.lower() != name.lower():
                found = f"'{other}'" if other else s.describe()
                raise s.fail(f"conditions joined by '{joiner}' must all be on field '{name}', found {found}"
                             " (conditions on different fields go in their own slots)", other_at)
            s.ws()
            continue
        return _join(_Or, [_join(_And, g) for g in groups])


def _parse_text(text: str, start: int) -> list[_Term]:
    s = _Scanner(text, start)
    items: list[_Term] = []
    while True:
        s.ws()
        if s.pos >= s.end:
            return items
        at, mode = s.pos, ""
        if s.peek() in "?-":
            mode = s.peek()
            s.pos += 1
            if mode == "-":
                s.ws()  # the older guide writes the exclusion as `"ERROR" - "Exiting"`
        c = s.peek()
        if c == '"':
            items.append(_Term(mode, _quoted(s), True))
            if s.peek() not in ("", *_WS):
                raise s.fail("expected a space after the closing quote")
            continue
        term = s.run(_TERM_RE)
        if not term:
            if c == "" or c in _WS:
                raise s.fail(f"expected a term or a quoted phrase after '{mode}'", at)
            raise s.fail(f"unexpected character {c!r}: quote terms that contain characters other than "
                         "letters, digits and '_'")
        if s.peek() not in ("", *_WS):
            raise s.fail(f"unexpected character {s.peek()!r} in the term '{term}': quote terms that contain "
                         "characters other than letters, digits and '_'")
        items.append(_Term(mode, term, False))


def _number(text: str) -> int | float:
    """Integers stay exact (account ids, request ids); anything with a point or an exponent is a float."""
    return int(text) if _INTEGER_RE.fullmatch(text) else float(text)


def _snum(text: str) -> int | float | None:
    """A string field read as a number, or None when it is not one."""
    return _number(text) if _NUMBER_RE.fullmatch(text) else None


def _walk(node: object, path: tuple) -> object:
    for seg in path:
        if seg.__class__ is str:
            if not isinstance(node, dict):
                return _ABSENT
            node = node.get(seg, _ABSENT)
            if node is _ABSENT:
                return _ABSENT
        elif isinstance(node, list) and len(node) > seg:
            node = node[seg]
        else:
            return _ABSENT
    return node


class _Gen:
    """Builds one Python function from a tree: constants and regexes become globals of the generated code."""

    def __init__(self):
        self.hoisted: dict[str, str] = {}  # top-level key -> local already holding d.get(key, _ABSENT)
        self.ns: dict[str, object] = {"_ABSENT": _ABSENT, "_snum": _snum, "_walk": _walk, "_decode": _decode,
                                      "MISSING": MISSING, "_NUMS": (int, float)}
        self.counter = 0

    def const(self, value: object) -> str:
        name = f"_k{len(self.ns)}"
        self.ns[name] = value
        return name

    def tmp(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def function(self, signature: str, body: str) -> Callable:
        source = f"def _predicate({signature}):\n{body}\n"
        try:
            code = builtins.compile(source, "<filterpattern>", "exec")
        except (SyntaxError, RecursionError, MemoryError):  # pragma: no cover - MAX_DEPTH keeps us clear of it
            raise FilterPatternError(0, "pattern too complex") from None
        exec(code, self.ns)
        return self.ns["_predicate"]

    # Text tests on a str held in `x`; `!=` is the negation of `=` (both need a value node).
    def text_test(self, op: str, val: _Val, x: str) -> str:
        test = self._positive_text_test(val, x)
        return test if op == "=" else f"(not {test})"

    def _positive_text_test(self, val: _Val, x: str) -> str:
        if val.kind == "regex":
            return f"({self.const(val.regex.search)}({x}) is not None)"
        text: str = val.data  # type: ignore[assignment]
        if "*" not in text:
            return f"({x} == {self.const(text)})"
        parts = text.split("*")
        if not "".join(parts):
            return "True"
        if len(parts) == 2:
            head, tail = parts
            if not tail:
                return f"{x}.startswith({self.const(head)})"
            if not head:
                return f"{x}.endswith({self.const(tail)})"
            return (f"(len({x}) >= {len(head) + len(tail)} and {x}.startswith({self.const(head)})"
                    f" and {x}.endswith({self.const(tail)}))")
        if len(parts) == 3 and not parts[0] and not parts[2]:
            return f"({self.const(parts[1])} in {x})"
        wild = re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)
        return f"({self.const(wild.fullmatch)}({x}) is not None)"

    def num_test(self, op: str, val: _Val, n: str) -> str:
        return f"({n} {'==' if op == '=' else op} {self.const(val.data)})"

    def json(self, node, strict: bool = False) -> str:
        """A JSON node as an expression on `d`. Comparisons hold only on value nodes (strings, numbers): arrays,
        objects, booleans, null and absent fields fail `=` and `!=` alike (AWS: "both {$.users = 1} and
        {$.users != 1} will fail to match"). strict: this node being false makes the whole pattern false (the
        root, a conjunct of a strict And), so a TypeError raised in it may be caught as "no match"."""
        if isinstance(node, _And):
            return "(" + " and ".join(self.json(i, strict) for i in node.items) + ")"
        if isinstance(node, _Or):
            return self._json_or(node, strict)
        get = self.path(node.sel.path)
        if isinstance(node, _Is):
            return {"IS NULL": f"({get} is None)", "IS TRUE": f"({get} is True)",
                    "IS FALSE": f"({get} is False)", "NOT EXISTS": f"({get} is _ABSENT)"}[node.what]
        op, val, v = node.op, node.val, self.tmp("_v")
        if val.kind == "num":
            # Decision: a numeric comparison also reads a numeric string ("404" = 404), as delimited fields are read.
            n = self.tmp("_n")
            return (f"(({v} := {get}).__class__ in _NUMS and {self.num_test(op, val, v)}"
                    f" or {v}.__class__ is str and ({n} := _snum({v})) is not None and {self.num_test(op, val, n)})")
        if op == "=" and self._plain(val):
            return f"({get} == {self.const(val.data)})"  # a str constant equals only that str
        # Decision: a string comparison on a number compares its JSON text (AWS's `{ $.latency = * }` matches 50).
        return (f"(({v} := {get}).__class__ is str and {self.text_test(op, val, v)}"
                f" or {v}.__class__ in _NUMS and {self.text_test(op, val, f'str({v})')})")

    @staticmethod
    def _plain(val: _Val) -> bool:
        """A literal string no number's text can equal: `=` reduces to Python `==`, a set of them to `in`."""
        return val.kind == "str" and "*" not in val.data and not re.fullmatch(r"[-+0-9.eEinfa]+", val.data)

    def _json_or(self, node: _Or, strict: bool) -> str:
        """Alternatives on one selector share its look-up: `=` on plain strings becomes one set test, other
        string tests one type dispatch (CIS 4.1's two errorCode wildcards)."""
        groups: dict[tuple, list] = {}
        order: list = []
        for item in node.items:
            if isinstance(item, _Cmp) and item.val.kind != "num":
                key = ("=" if item.op == "=" and self._plain(item.val) else "~", item.sel.path)
                if key not in groups:
                    groups[key] = []
                    order.append(key)
                groups[key].append(item)
            else:
                order.append(item)
        parts = []
        for entry in order:
            if not isinstance(entry, tuple):
                parts.append(self.json(entry))
                continue
            (kind, path), items = entry, groups[entry]
            if len(items) == 1:
                parts.append(self.json(items[0]))
            elif kind == "~":
                v, t = self.tmp("_v"), self.tmp("_s")
                on_str = " or ".join(self.text_test(i.op, i.val, v) for i in items)
                on_num = " or ".join(self.text_test(i.op, i.val, t) for i in items)
                parts.append(f"(({v} := {self.path(path)}).__class__ is str and ({on_str}) or {v}.__class__ in _NUMS"
                             f" and (({t} := str({v})) is None or {on_num}))")
            elif strict and len(order) == 1:
                # Unhashable (array, object) raises TypeError, which the caller turns into "no match".
                parts.append(f"({self.path(path)} in {self.const(frozenset(i.val.data for i in items))})")
            else:
                v = self.tmp("_v")
                parts.append(f"(({v} := {self.path(path)}).__class__ is str and {v} in "
                             f"{self.const(frozenset(i.val.data for i in items))})")
        return "(" + " or ".join(parts) + ")"

    def path(self, path: tuple) -> str:
        if len(path) > 4:
            return f"_walk({self.path(path[:1])}, {self.const(path[1:])})"
        expr = self.hoisted.get(path[0]) or f"d.get({self.const(path[0])}, _ABSENT)"
        for seg in path[1:]:
            t = self.tmp("_t")
            if isinstance(seg, int):
                expr = f"({t}[{seg}] if isinstance(({t} := {expr}), list) and len({t}) > {seg} else _ABSENT)"
            else:
                expr = f"({t}.get({self.const(seg)}, _ABSENT) if isinstance(({t} := {expr}), dict) else _ABSENT)"
        return expr

    # Space-delimited: every field is a string.
    def field(self, node) -> str:
        if isinstance(node, _And):
            return "(" + " and ".join(self.field(i) for i in node.items) + ")"
        if isinstance(node, _Or):
            return "(" + " or ".join(self.field(i) for i in node.items) + ")"
        if node.val.kind == "num":
            n = self.tmp("_n")
            return f"(({n} := _snum(x)) is not None and {self.num_test(node.op, node.val, n)})"
        return self.text_test(node.op, node.val, "x")


def _json_matches(tree) -> Callable[..., bool]:
    """`matches(message, parsed=MISSING)` itself, no wrapper: the 15 CIS patterns run on every record."""
    gen = _Gen()
    expr = gen.json(tree, strict=True)
    # Only the root can lack .get (not a JSON object); only a strict set test can raise TypeError (unhashable).
    return gen.function("message, parsed=MISSING", f"""\
    if parsed is MISSING:
        parsed = _decode(message)
    d = parsed
    try:
        return {expr}
    except (AttributeError, TypeError):
        return False""")


def _text_matches(terms: list[_Term]) -> Callable[[str], bool]:
    gen = _Gen()

    def present(term: _Term) -> str:
        # AWS: `" "` "returns all log events": a blank phrase is in every message.
        return "True" if not term.text.strip() else f"({gen.const(term.text)} in m)"

    required = [present(t) for t in terms if t.mode == ""]
    optional = [present(t) for t in terms if t.mode == "?"]
    excluded = [present(t) for t in terms if t.mode == "-"]
    clauses = required
    if optional and not required:
        # Decision: with plain terms present, `?` terms are ignored (observed in the console; the guide is silent).
        clauses = ["(" + " or ".join(optional) + ")"]
    if excluded:
        clauses = clauses + ["not (" + " or ".join(excluded) + ")"]
    return gen.function("message, parsed=MISSING", f"    m = message\n    return {' and '.join(clauses) or 'True'}")


_DECODER = json.JSONDecoder()


def _decode(message: str) -> object:
    try:
        return _DECODER.decode(message)
    except (ValueError, TypeError):
        return None  # not JSON: no JSON pattern matches it


class Match:
    """One event a pattern matched: extracted values and selector look-ups for metric values and dimensions."""
    __slots__ = ("extracted", "_parsed")

    def __init__(self, extracted: dict[str, str], parsed: object = None):
        self.extracted = extracted
        self._parsed = parsed

    def value(self, selector: str) -> str | float | None:
        """`$.a.b[0]` on a JSON match, `$field` on a space-delimited one; None when absent or not a value node."""
        if self._parsed is not None and selector.startswith("$."):
            found = _walk(self._parsed, _selector_path(selector))
            if found.__class__ in (str, int, float):
                return found  # type: ignore[return-value]
            return None
        return self.extracted.get(selector)

    def __repr__(self) -> str:
        return f"Match(extracted={self.extracted!r})"


@functools.lru_cache(maxsize=1024)
def _selector_path(selector: str) -> tuple:
    s = _Scanner(selector, 0)
    sel = _selector(s)
    if s.pos != s.end:
        raise s.fail("unexpected text after the selector")
    return sel.path


class Pattern:
    """A compiled filter pattern; kind is "json", "text", "delimited" or "all" (the empty pattern)."""

    def __init__(self, kind: str, source: str, tree, matches: Callable[..., bool] | None = None):
        self.kind, self.source, self._tree = kind, source, tree
        if matches is not None:
            self.matches = matches  # the generated function shadows the method: one call per event, no wrapper

    def matches(self, message: str, parsed: object = MISSING) -> bool:
        """Whether the event matches; parsed is the message's decoded JSON when the caller already has it."""
        return True

    def match(self, message: str, parsed: object = MISSING) -> Match | None:
        """The match with its extracted values (what TestMetricFilter reports), or None."""
        if self.kind != "json":
            return Match({}) if self.matches(message, parsed) else None
        if parsed is MISSING:
            parsed = _decode(message)
        return Match({}, parsed) if self.matches(message, parsed) else None  # AWS: extracted values only for delimited

    def __str__(self) -> str:
        """Canonical syntax: compiling it gives an equivalent pattern."""
        if self.kind == "json":
            return f"{{ {self._tree} }}"
        if self.kind == "delimited":
            return "[" + ", ".join(str(slot) for slot in self._tree) + "]"
        if self.kind == "text":
            if isinstance(self._tree, _Val):
                return str(self._tree)
            return " ".join(str(t) for t in self._tree)
        return ""

    def __repr__(self) -> str:
        return f"<Pattern {self.kind} {str(self)!r}>"


class PatternSet:
    """Several patterns run together on each event (a log group's metric filters): one generated function, and
    each top-level JSON key that more than one condition reads is looked up once per event for all of them."""

    def __init__(self, patterns: Iterable[Pattern | str]):
        self.patterns = tuple(p if isinstance(p, Pattern) else compile(p) for p in patterns)
        self.matching = _set_matching(self.patterns)  # shadows the method, as Pattern.matches does

    def matching(self, message: str, parsed: object = MISSING) -> list[int]:
        """Indexes into .patterns of the patterns the event matches, ascending."""
        return []

    def __len__(self) -> int:
        return len(self.patterns)


def _top_keys(node, counts: dict[str, int]) -> None:
    if isinstance(node, (_And, _Or)):
        for item in node.items:
            _top_keys(item, counts)
    else:
        counts[node.sel.path[0]] = counts.get(node.sel.path[0], 0) + 1


def _set_matching(patterns: tuple[Pattern, ...]) -> Callable[..., list[int]]:
    counts: dict[str, int] = {}
    for p in patterns:
        if p.kind == "json":
            _top_keys(p._tree, counts)
    gen = _Gen()
    hoisted = {key: f"_h{i}" for i, key in enumerate(k for k, n in counts.items() if n > 1)}
    lines = ["    out = []", "    add = out.append"]
    if counts:
        lines += ["    if parsed is MISSING:", "        parsed = _decode(message)"]
    lines += ["    d = parsed", "    obj = isinstance(d, dict)"]
    if hoisted:
        lines.append("    if obj:")
        lines += [f"        {local} = d.get({gen.const(key)}, _ABSENT)" for key, local in hoisted.items()]
    gen.hoisted = hoisted
    for i, p in enumerate(patterns):
        test = f"obj and {gen.json(p._tree)}" if p.kind == "json" else f"{gen.const(p.matches)}(message, parsed)"
        lines += [f"    if {test}:", f"        add({i})"]
    lines.append("    return out")
    return gen.function("message, parsed=MISSING", "\n".join(lines))


class _DelimitedPattern(Pattern):
    def __init__(self, source: str, slots: list, tests: list):
        super().__init__("delimited", source, slots)
        self._tests = tests

    def matches(self, message: str, parsed: object = MISSING) -> bool:
        return self._assign(_split_fields(message)) is not None

    def match(self, message: str, parsed: object = MISSING) -> Match | None:
        fields = _split_fields(message)
        owners = self._assign(fields)
        if owners is None:
            return None
        extracted = {}
        for position, (owner, text) in enumerate(zip(owners, fields), start=1):
            extracted[f"${owner}" if owner else f"${position}"] = text
        return Match(extracted)

    def _assign(self, fields: list[str]) -> list[str | None] | None:
        """Which slot takes each field (a name, or None for ellipsis/unnamed), trying short ellipses first."""
        slots, preds = self._tree, self._tests
        if _ELLIPSIS not in slots:
            if len(fields) != len(slots):
                return None  # AWS: `[w1=ERROR, w2]` matches "ERROR message", not "ERROR WARN message"
            for field, pred in zip(fields, preds):
                if pred is not None and not pred(field):
                    return None
            return [slot.name for slot in slots]
        owners: list[str | None] = []
        dead: set[tuple[int, int]] = set()

        def fit(i: int, j: int) -> bool:
            if i == len(slots):
                return j == len(fields)
            if (i, j) in dead:
                return False
            if slots[i] is _ELLIPSIS:
                for k in range(j, len(fields) + 1):
                    owners.extend([None] * (k - j))
                    if fit(i + 1, k):
                        return True
                    del owners[j:]
            elif j < len(fields) and (preds[i] is None or preds[i](fields[j])):
                owners.append(slots[i].name)
                if fit(i + 1, j + 1):
                    return True
                owners.pop()
            dead.add((i, j))
            return False

        return owners if fit(0, 0) else None


def _split_fields(message: str) -> list[str]:
    """Space-separated fields; text between `"` `"` or `[` `]` is one field (AWS), without its delimiters."""
    fields, i, n = [], 0, len(message)
    while i < n:
        c = message[i]
        if c in _WS:
            i += 1
            continue
        if c in '"[':
            close = message.find('"' if c == '"' else "]", i + 1)
            if close >= 0:
                fields.append(message[i + 1:close])
                i = close + 1
                continue
        j = i
        while j < n and message[j] not in _WS:
            j += 1
        fields.append(message[i:j])
        i = j
    return fields


@functools.lru_cache(maxsize=4096)
def compile(pattern: str) -> Pattern:
    """Parse and compile a filter pattern once; raises FilterPatternError where AWS would refuse it."""
    if not isinstance(pattern, str):
        raise TypeError(f"a filter pattern is a str, not {type(pattern).__name__}")
    if len(pattern) > MAX_LENGTH:
        raise FilterPatternError(MAX_LENGTH, f"a filter pattern is at most {MAX_LENGTH} characters")
    start = len(pattern) - len(pattern.lstrip(_WS))
    if start == len(pattern):
        return Pattern("all", pattern, None)
    head = pattern[start]
    if head == "{":
        tree = _parse_json(pattern, start)
        return Pattern("json", pattern, tree, _json_matches(tree))
    if head == "[":
        slots = _parse_delimited(pattern, start)
        gen = _Gen()
        tests = [None if slot is _ELLIPSIS or slot.cond is None
                 else gen.function("x", f"    return {gen.field(slot.cond)}") for slot in slots]
        return _DelimitedPattern(pattern, slots, tests)
    if head == "%":
        s = _Scanner(pattern, start)
        val = _regex(s)
        s.ws()
        if s.pos < s.end:
            raise s.fail("a regular expression pattern (%...%) must be the whole pattern")
        gen = _Gen()
        return Pattern("text", pattern, val,
                       gen.function("message, parsed=MISSING", f"    return {gen.text_test('=', val, 'message')}"))
    terms = _parse_text(pattern, start)
    return Pattern("text", pattern, terms, _text_matches(terms))
