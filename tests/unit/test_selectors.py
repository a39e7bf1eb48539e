"""Label selectors parse as labels.Parse, match as Kubernetes does and print back."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.api.errors import StatusError
from kubeling.api.selectors import (
    format_label_selector,
    parse_label_selector,
    selector_from_map,
    selector_from_object,
)


@pytest.mark.parametrize(("text", "shown"), [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b,c!=d", "a==b,c!=d"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    (" env in ( prod , dev ) ", "env in (dev,prod)"),
    ("!a", "!a"),
    ("b,a", "a,b"),
    ("in in (in)", "in in (in)"),
    ("a=", "a="),
    ("example.com/tier=web", "example.com/tier=web"),
    ("a>3", "a>3"),
])
def test_parse_and_round_trip(text: str, shown: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == shown
    assert parse_label_selector(str(sel)) == sel


@pytest.mark.parametrize(("text", "message"), [
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a in", "unable to parse requirement: found '' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a !! b", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("-a", 'unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of '
     "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
     "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
    ("a=b@", 'unable to parse requirement: values[0][a]: Invalid value: "b@": a valid label '
     "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
     "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
     "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
])
def test_errors_are_bad_requests_worded_as_kubernetes(text: str, message: str) -> None:
    with pytest.raises(StatusError) as e:
        parse_label_selector(text)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a in (x,y)", {"a": "y"}, True),
    ("a notin (x,y)", {"a": "z"}, True),
    ("a notin (x,y)", {}, True),
    ("a notin (x,y)", {"a": "x"}, False),
    ("a", {"a": ""}, True),
    ("a", {"b": "1"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": "1"}, False),
    ("a=", {"a": ""}, True),
    ("a>3", {"a": "4"}, True),
    ("a>3", {"a": "x"}, False),
    ("app=web,tier in (fe,be),!legacy", {"app": "web", "tier": "be"}, True),
    ("app=web,tier in (fe,be),!legacy", {"app": "web", "tier": "be", "legacy": "1"}, False),
    ("", {"anything": "x"}, True),
])
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_matches_none_labels() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


def test_selector_from_object() -> None:
    nothing = selector_from_object(None)
    assert not nothing.matches({}) and not nothing.empty
    everything = selector_from_object({})
    assert everything.matches({"x": "y"}) and everything.empty
    sel = selector_from_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]})
    assert str(sel) == "app=web,!legacy,tier in (be,fe)"
    assert sel.matches({"app": "web", "tier": "fe"})
    assert not sel.matches({"app": "web", "tier": "db"})


def test_selector_from_object_errors() -> None:
    with pytest.raises(ValueError, match='"Bogus" is not a valid label selector operator'):
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})
    with pytest.raises(ValueError, match="values set can't be empty"):
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "X"}]}) == (
        "<error>")
    assert format_label_selector({}) == "<none>"


def test_selector_from_map() -> None:
    assert selector_from_map(None).empty
    sel = selector_from_map({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})


_keys = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_values = st.from_regex(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?", fullmatch=True)


@given(st.dictionaries(_keys, _values, max_size=5), st.dictionaries(_keys, _values, max_size=5))
def test_equality_selector_text_round_trip(want: dict[str, str], labels: dict[str, str]) -> None:
    sel = selector_from_map(want)
    parsed = parse_label_selector(str(sel))
    assert parsed.matches(labels) == sel.matches(labels) == all(
        labels.get(k) == v for k, v in want.items())
