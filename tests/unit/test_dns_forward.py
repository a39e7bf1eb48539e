"""The forwarder's inputs: upstreams from resolv.conf and from --upstream, and its cache."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset

from kubeling.dns.forward import Forwarder, parse_upstream, resolv_conf_nameservers


def test_resolv_conf_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch example.org\nnameserver 192.0.2.53\n"
                    "nameserver  2001:db8::53 # second\noptions ndots:2\n")
    assert resolv_conf_nameservers(str(conf)) == ["192.0.2.53", "2001:db8::53"]
    assert resolv_conf_nameservers(str(tmp_path / "missing")) == []


def test_parse_upstream() -> None:
    assert parse_upstream("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_upstream("192.0.2.53:5353") == ("192.0.2.53", 5353)
    assert parse_upstream("[2001:db8::53]:5353") == ("2001:db8::53", 5353)
    assert parse_upstream("2001:db8::53") == ("2001:db8::53", 53)


def test_cache_keeps_positive_answers_with_the_askers_id() -> None:
    fwd = Forwarder([])
    query = dns.message.make_query("www.example.test.", "A")
    resp = dns.message.make_response(query)
    resp.answer.append(dns.rrset.from_text("www.example.test.", 60, "IN", "A", "192.0.2.1"))
    fwd._store(query, resp)
    again = dns.message.make_query("WWW.example.test.", "A")
    hit = fwd.cached(again)
    assert hit is not None and hit.id == again.id
    assert hit.question[0].name.to_text() == "WWW.example.test."
    nx = dns.message.make_query("nope.example.test.", "A")
    nx_resp = dns.message.make_response(nx)
    nx_resp.set_rcode(dns.rcode.NXDOMAIN)
    fwd._store(nx, nx_resp)
    assert fwd.cached(nx) is None
    zero = dns.message.make_query("zero.example.test.", "A")
    zero_resp = dns.message.make_response(zero)
    zero_resp.answer.append(dns.rrset.from_text("zero.example.test.", 0, "IN", "A", "192.0.2.2"))
    fwd._store(zero, zero_resp)
    assert fwd.cached(zero) is None
