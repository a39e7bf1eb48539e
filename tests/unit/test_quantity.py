"""Quantities parse, compare and print as Kubernetes' resource.Quantity."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.quantity import ERR_FORMAT, ERR_SUFFIX, Quantity, parse_quantity


@pytest.mark.parametrize(("text", "canonical"), [
    ("0.5", "500m"), ("1000m", "1"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"),
    ("1.1Gi", "1181116006400m"), ("1e3", "1e3"), ("1.5e3", "1500"), ("1.5k", "1500"),
    ("12000", "12k"), ("100m", "100m"), ("0.5Ki", "512"), ("1Ki", "1Ki"), ("2048", "2048"),
    ("-1.5", "-1500m"), ("0.1n", "1n"), ("0", "0"), ("-0", "0"), ("+1", "1"), (".5", "500m"),
    ("0.0001m", "100n"), ("5Ei", "5Ei"), ("1E", "1E"), ("250M", "250M"), ("128974848", "128974848"),
])
def test_canonical_form(text: str, canonical: str) -> None:
    assert parse_quantity(text).canonical() == canonical


@pytest.mark.parametrize(("text", "value", "milli"), [
    ("1.5", 2, 1500), ("100m", 1, 100), ("-1.5", -2, -1500), ("1Gi", 1073741824, 1073741824000),
    ("0.1n", 1, 1),
])
def test_value_rounds_away_from_zero(text: str, value: int, milli: int) -> None:
    q = parse_quantity(text)
    assert (q.value(), q.milli_value()) == (value, milli)


@pytest.mark.parametrize(("text", "message"), [
    ("", ERR_FORMAT), ("1Q", ERR_FORMAT), ("a", ERR_FORMAT), ("1.2.3", ERR_FORMAT),
    ("1 Gi", ERR_FORMAT), ("1ee", ERR_SUFFIX), ("1mi", ERR_SUFFIX), ("1e", ERR_SUFFIX),
])
def test_errors_carry_kubernetes_wording(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_quantity(text)
    assert str(e.value) == message


def test_regex_in_message() -> None:
    assert "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" in ERR_FORMAT


def test_arithmetic_and_comparison_are_exact() -> None:
    total = parse_quantity("100m") + parse_quantity("200m") + parse_quantity("0.7")
    assert total == parse_quantity("1")
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1Ki") == parse_quantity("1024")
    assert (parse_quantity("2") - parse_quantity("500m")).canonical() == "1500m"
    assert sorted([parse_quantity("1"), parse_quantity("10m")])[0].canonical() == "10m"


def test_numbers_are_accepted() -> None:
    assert parse_quantity(2).canonical() == "2"
    assert parse_quantity(1.5).canonical() == "1500m"
    assert parse_quantity(0.25).milli_value() == 250
    with pytest.raises(ValueError):
        parse_quantity(True)


@given(st.integers(min_value=-(10**15), max_value=10**15),
       st.sampled_from(["", "m", "k", "M", "Ki", "Mi", "Gi", "n"]))
def test_canonical_round_trips(n: int, suffix: str) -> None:
    q = parse_quantity(f"{n}{suffix}")
    again = parse_quantity(q.canonical())
    assert again == q
    assert again.canonical() == q.canonical()


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_milli_sum_is_exact(a: int, b: int) -> None:
    assert (Quantity.from_milli(a) + Quantity.from_milli(b)).milli_value() == a + b
