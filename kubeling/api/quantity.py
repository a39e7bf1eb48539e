"""Resource quantities ("500m", "1.5Gi", "1e3") with Kubernetes' exact semantics.

Requests, limits, capacities and quotas are compared and summed everywhere
(scheduler fit, quota, limit ranges, tables), so the arithmetic must be exact
and the text must round-trip as Kubernetes prints it. A :class:`Quantity`
holds an integer count of nano-units plus the format it was written in
(decimal SI, binary SI or decimal exponent); parsing rounds any finer
precision up, away from zero, as resource.ParseQuantity does.
"""

from __future__ import annotations

from fractions import Fraction
from functools import total_ordering

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{_REGEX}'"
ERR_SUFFIX = "unable to parse quantity's suffix"

_NANO = 10**9
_MAX_INT64 = 2**63 - 1
_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")

_DEC_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
               "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIX.items()}
_BIN_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_BY_EXP = {0: "", **{v: k for k, v in _BIN_SUFFIX.items()}}


def _split(text: str) -> tuple[bool, str, str, str, str]:
    """Sign, numeral (as written, sign included), integer digits, fraction digits, suffix."""
    positive = True
    pos, end = 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] == "+"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return positive, text, num, "", ""
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return positive, text, num, denom, ""
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(ERR_FORMAT)
    return positive, value, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix; raises ValueError for an unknown one."""
    if suffix in _DEC_SUFFIX:
        return 10, _DEC_SUFFIX[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIX:
        return 2, _BIN_SUFFIX[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        digits = rest[1:] if rest[0] in "+-" else rest
        if digits and all(c in _DIGITS for c in digits):
            return 10, int(rest), DECIMAL_EXPONENT
    raise ValueError(ERR_SUFFIX)


def _ceil_away(value: Fraction) -> int:
    """Round to an integer away from zero."""
    n, d = value.numerator, value.denominator
    if n >= 0:
        return -((-n) // d)
    return n // d


@total_ordering
class Quantity:
    """An exact quantity: ``nanos`` nano-units, remembered ``format`` for printing."""

    __slots__ = ("format", "nanos")

    def __init__(self, nanos: int = 0, fmt: str = DECIMAL_SI) -> None:
        self.nanos = nanos
        self.format = fmt

    @classmethod
    def parse(cls, value: str | int | float | Quantity) -> Quantity:
        return parse_quantity(value)

    @classmethod
    def from_milli(cls, milli: int, fmt: str = DECIMAL_SI) -> Quantity:
        return cls(milli * 10**6, fmt)

    @classmethod
    def from_int(cls, value: int, fmt: str = DECIMAL_SI) -> Quantity:
        return cls(value * _NANO, fmt)

    def as_fraction(self) -> Fraction:
        return Fraction(self.nanos, _NANO)

    def value(self) -> int:
        """The value in whole units, rounded away from zero (Quantity.Value)."""
        return _ceil_away(Fraction(self.nanos, _NANO))

    def milli_value(self) -> int:
        """The value in milli-units, rounded away from zero (Quantity.MilliValue)."""
        return _ceil_away(Fraction(self.nanos, 10**6))

    def is_zero(self) -> bool:
        return self.nanos == 0

    def sign(self) -> int:
        return (self.nanos > 0) - (self.nanos < 0)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos + other.nanos, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, self.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.nanos, self.format)

    def __mul__(self, factor: int) -> Quantity:
        return Quantity(self.nanos * factor, self.format)

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.nanos == other.nanos
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __repr__(self) -> str:
        return f"Quantity({self.canonical()!r})"

    def __str__(self) -> str:
        return self.canonical()

    def canonical(self) -> str:
        """The string Kubernetes serializes this quantity as."""
        if self.nanos == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI:
            if -1024 * _NANO < self.nanos < 1024 * _NANO or self.nanos % _NANO:
                fmt = DECIMAL_SI
            else:
                return self._binary()
        return self._decimal(fmt)

    def _binary(self) -> str:
        sign = "-" if self.nanos < 0 else ""
        amount = abs(self.nanos) // _NANO
        exp = 0
        while amount % 1024 == 0 and exp < 60:
            amount //= 1024
            exp += 10
        return f"{sign}{amount}{_BIN_BY_EXP[exp]}"

    def _decimal(self, fmt: str) -> str:
        sign = "-" if self.nanos < 0 else ""
        amount = abs(self.nanos)
        exp = -9
        while amount % 10 == 0:
            amount //= 10
            exp += 1
        shift = exp % 3
        amount *= 10**shift
        exp -= shift
        if fmt == DECIMAL_EXPONENT:
            return f"{sign}{amount}" + (f"e{exp}" if exp else "")
        if exp > 18:
            amount *= 10 ** (exp - 18)
            exp = 18
        return f"{sign}{amount}{_DEC_BY_EXP[exp]}"


def parse_quantity(value: str | int | float | Quantity) -> Quantity:
    """Parse as resource.ParseQuantity; ValueError carries Kubernetes' message."""
    if isinstance(value, Quantity):
        return Quantity(value.nanos, value.format)
    if isinstance(value, bool):
        raise ValueError(ERR_FORMAT)
    if isinstance(value, int):
        return Quantity(value * _NANO, DECIMAL_SI)
    if isinstance(value, float):
        value = repr(value)
    text = value
    if not isinstance(text, str) or not text:
        raise ValueError(ERR_FORMAT)
    positive, numeral, num, denom, suffix = _split(text)
    base, exponent, fmt = _interpret(suffix)
    digits = numeral.lstrip("+-")
    if digits in ("", "."):
        digits = "0"
    whole, _, frac = digits.partition(".")
    amount = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    if base == 10:
        amount *= Fraction(10) ** exponent
    else:
        amount *= 2**exponent
    nanos = _ceil_away(amount * _NANO)
    if fmt == BINARY_SI and nanos > _MAX_INT64 * _NANO:
        nanos = _MAX_INT64 * _NANO
    if fmt == BINARY_SI and 0 < nanos < _NANO:
        fmt = DECIMAL_SI
    return Quantity(-nanos if not positive else nanos, fmt)


def canonical(value: str | int | float | Quantity) -> str:
    """Shorthand: the canonical text of a quantity given in any accepted form."""
    return parse_quantity(value).canonical()
