"""The deployment's job gets the ingress token's digest beside the spec, never the token."""

from __future__ import annotations

from agent_runtime.jobs import with_token_digest
from agent_runtime.spec import parse_spec

WITH_INGRESS = "name: x\ningress: {port: 0}\nagents:\n  - {name: a, import: 'm:A'}\n"
DIGEST = "ab" * 32


def test_the_digest_from_the_environment_fills_an_ingress_without_one():
    spec = with_token_digest(parse_spec(WITH_INGRESS), DIGEST)
    assert spec.ingress is not None and spec.ingress.token_sha256 == DIGEST


def test_a_digest_in_the_spec_wins_and_no_ingress_stays_none():
    own = "cd" * 32
    text = WITH_INGRESS.replace("{port: 0}", f"{{port: 0, token_sha256: {own}}}")
    assert with_token_digest(parse_spec(text), DIGEST).ingress.token_sha256 == own
    plain = parse_spec("name: x\nagents:\n  - {name: a, import: 'm:A'}\n")
    assert with_token_digest(plain, DIGEST).ingress is None
