"""Label selectors: the ``?labelSelector=`` syntax, metav1.LabelSelector, and matching.

Every list, watch, controller and service meets here, so parsing follows
apimachinery's labels.Parse token for token (errors read the same, as 400
BadRequest) and matching is a tight loop over pre-built requirements: it
runs once per object on lists over thousands of objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.api import names
from kubeling.api.errors import bad_request

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"

_BINARY_OPS = "in, notin, =, ==, !=, gt, lt"

# Label keys and values are checked with the same rules (and words) as object metadata.
qualified_name_errors = names.is_qualified_name
dns1123_subdomain_errors = names.is_dns1123_subdomain
label_value_errors = names.is_valid_label_value


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Requirement:
    """One clause: ``key op values``. Values are kept sorted, as the parser sorts them."""

    __slots__ = ("key", "op", "values")

    def __init__(self, key: str, op: str, values: Iterable[str] = ()) -> None:
        self.key = key
        self.op = op
        self.values: tuple[str, ...] = tuple(sorted(set(values)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            v = labels.get(self.key)
            return v is not None and v in self.values
        if op in (NOT_EQUALS, NOT_IN):
            v = labels.get(self.key)
            return v is None or v not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        v = labels.get(self.key)
        if v is None or len(self.values) != 1:
            return False
        try:
            have, want = int(v), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.op
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        sym = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{sym}{joined}"

    def __repr__(self) -> str:
        return f"Requirement({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Requirement) and (self.key, self.op, self.values)
                == (other.key, other.op, other.values))

    def __hash__(self) -> int:
        return hash((self.key, self.op, self.values))


class LabelSelector:
    """An AND of requirements; ``nothing=True`` is labels.Nothing() (matches no object)."""

    __slots__ = ("_equal", "_others", "nothing", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key))
        self.nothing = nothing
        # Equality clauses are the common case (app=web): check them as plain dict lookups.
        self._equal = tuple((r.key, r.values[0]) for r in self.requirements
                            if r.op in (EQUALS, DOUBLE_EQUALS) or (r.op == IN
                                                                   and len(r.values) == 1))
        self._others = tuple(r for r in self.requirements
                             if not (r.op in (EQUALS, DOUBLE_EQUALS)
                                     or (r.op == IN and len(r.values) == 1)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        if labels is None:
            labels = {}
        for key, value in self._equal:
            if labels.get(key) != value:
                return False
        for r in self._others:
            if not r.matches(labels):
                return False
        return True

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have, if the selector pins it (for indexes)."""
        for r in self.requirements:
            if r.key == key:
                if r.op in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self.nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelSelector) and self.nothing == other.nothing
                and self.requirements == other.requirements)

    def __hash__(self) -> int:
        return hash((self.nothing, self.requirements))


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


def new_requirement(key: str, op: str, values: list[str], *, path: str = "") -> Requirement:
    """labels.NewRequirement: validates key, operator arity and values (ValueError)."""
    errors: list[str] = []
    key_path = f"{path}.key" if path else "key"
    values_path = f"{path}.values" if path else "values"
    errs = qualified_name_errors(key)
    if errs:
        errors.append(f"{key_path}: Invalid value: {_go_quote(key)}: {'; '.join(errs)}")
    shown = "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"
    if op in (IN, NOT_IN):
        if not values:
            errors.append(f"{values_path}: Invalid value: {shown}: for 'in', 'notin' "
                          "operators, values set can't be empty")
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errors.append(f"{values_path}: Invalid value: {shown}: exact-match compatibility "
                          "requires one single value")
    elif op in (EXISTS, DOES_NOT_EXIST):
        if values:
            errors.append(f"{values_path}: Invalid value: {shown}: values set must be empty "
                          "for exists and does not exist")
    elif op in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errors.append(f"{values_path}: Invalid value: {shown}: for 'Gt', 'Lt' operators, "
                          "exactly one value is required")
        for i, v in enumerate(values):
            if not re.fullmatch(r"[+-]?[0-9]+", v):
                errors.append(f"{values_path}[{i}]: Invalid value: {_go_quote(v)}: for 'Gt', "
                              "'Lt' operators, the value must be an integer")
    else:
        errors.append(f"{path + '.' if path else ''}operator: Unsupported value: "
                      f"{_go_quote(op)}: supported values: " + ", ".join(
                          _go_quote(o) for o in (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS,
                                                 "gt", "lt", "exists", "!")))
    for i, v in enumerate(values):
        errs = label_value_errors(v)
        if errs:
            errors.append(f"{values_path}[{i}][{key}]: Invalid value: {_go_quote(v)}: "
                          + "; ".join(errs))
    if errors:
        raise ValueError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    return Requirement(key, op, values)


# Tokens of the selector lexer.
_EOS, _ERR, _ID, _OPEN, _CLOSE, _COMMA, _NOT = "eos", "err", "id", "(", ")", ",", "!"
_TOKENS = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": DOUBLE_EQUALS, "=": EQUALS,
           ">": GREATER_THAN, "in": IN, "<": LESS_THAN, "!=": NOT_EQUALS, "notin": NOT_IN,
           "(": _OPEN}
_SPECIAL = frozenset("=!(),><")
_SPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _SPACE:
            pos += 1
        if pos >= end:
            items.append((_EOS, ""))
            return items
        if text[pos] in _SPECIAL:
            buf, last = "", None
            while pos < end and text[pos] in _SPECIAL:
                buf += text[pos]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                elif last is not None:
                    break
                pos += 1
            items.append(last or (_ERR, f"error expected: keyword found '{buf}'"))
        else:
            start = pos
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _SPACE:
                pos += 1
            word = text[start:pos]
            tok = _TOKENS.get(word)
            items.append((tok, word) if tok in (IN, NOT_IN) else (_ID, word))


class _Parser:
    """A recursive-descent parser over the token list, as labels.Parse reads it."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (IN, NOT_IN):
            tok = _ID
        return tok, lit

    def _take(self, values: bool = True) -> tuple[str, str]:
        item = self._peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self._requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                tok, lit = self._take()
                if tok == _EOS:
                    return reqs
                if tok != _COMMA:
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self._peek()
                if tok2 not in (_ID, _NOT):
                    raise ValueError(f"found '{lit2}', expected: identifier after ','")
            elif tok == _EOS:
                return reqs
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        op = ""
        tok, key = self._take()
        if tok == _NOT:
            op = DOES_NOT_EXIST
            tok, key = self._take()
        if tok != _ID:
            raise ValueError(f"found '{key}', expected: identifier")
        errs = qualified_name_errors(key)
        if errs:
            raise ValueError(f"<nil>: Invalid value: {_go_quote(key)}: {'; '.join(errs)}")
        if self._peek()[0] in (_EOS, _COMMA) and op != DOES_NOT_EXIST:
            op = EXISTS
        if op in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, op, [])
        tok, lit = self._take(values=False)
        if tok not in (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN):
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPS}")
        op = tok
        values = self._set_values() if op in (IN, NOT_IN) else self._exact_value()
        return new_requirement(key, op, sorted(values))

    def _set_values(self) -> set[str]:
        tok, lit = self._take()
        if tok != _OPEN:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == _CLOSE:
            self._take()
            return {""}
        if tok not in (_ID, _COMMA):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifiers()
        if self._take()[0] != _CLOSE:
            raise ValueError(f"found '{lit}', expected: ')'")
        return values

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _CLOSE:
                    return values
                if tok2 != _COMMA:
                    raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            elif tok == _COMMA:
                if not values:
                    values.add("")
                tok2 = self._peek()[0]
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek()[0] in (_EOS, _COMMA):
            return {""}
        tok, lit = self._take()
        if tok == _ID:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the query-string syntax; 400 BadRequest worded as labels.Parse on error."""
    try:
        return LabelSelector(_Parser(text).parse())
    except ValueError as e:
        raise bad_request(str(e)) from None


def selector_from_map(labels: Mapping[str, str] | None) -> LabelSelector:
    """An equality selector (ReplicationController, Service); None or {} matches everything."""
    if not labels:
        return EVERYTHING
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


_EXPR_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, {} matches everything.

    Raises ValueError (with apimachinery's wording) for an invalid selector.
    """
    if sel is None:
        return NOTHING
    match_labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    reqs = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in exprs:
        op = _EXPR_OPS.get(expr.get("operator", ""))
        if op is None:
            raise ValueError(f"{_go_quote(str(expr.get('operator', '')))} is not a valid label "
                             "selector operator")
        reqs.append(new_requirement(expr.get("key", ""), op, list(expr.get("values") or [])))
    return LabelSelector(reqs)


def format_label_selector(sel: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector, as tables print selectors: ``<none>`` / ``<error>``."""
    try:
        text = str(selector_from_object(sel))
    except ValueError:
        return "<error>"
    return text or "<none>"


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: ``a=b,c=d`` sorted by key, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
