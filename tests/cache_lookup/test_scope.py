"""Scope, exact key, plan and validation: the pure rules of what may be served."""

from __future__ import annotations

from pathlib import Path

import yaml

from semnexus_cache_lookup.config import CacheSettings, RequestRules
from semnexus_cache_lookup.policy import ThresholdDecisions, plan_for
from semnexus_cache_lookup.validation import problems
from semnexus_shared.events import CacheMode, CachePolicy, Role
from semnexus_shared.scope import exact_key, prompt_of, request_key, scope_of

from .conftest import make_request

RULES = RequestRules()
REPLY = {"responses"}


def test_identical_requests_share_the_key_and_whitespace_does_not_matter() -> None:
    """Two requests that differ only in request id and spacing have one exact key."""
    a = make_request("How do I  reset my password? ", request_id="a")
    b = make_request("How do I reset my\npassword?", request_id="b")
    assert request_key(a) == request_key(b)
    assert len(request_key(a)) == 64


def test_every_scope_field_changes_the_key() -> None:
    """Tenant, alias, system prompt, earlier turn, tools and sampling each change scope."""
    base = make_request()
    variants = [
        make_request(tenant="globex"),
        make_request(alias="smart"),
        make_request(system="You are a pirate."),
        make_request(history=[(Role.USER, "hi"), (Role.ASSISTANT, "hello")]),
        make_request(tools='[{"name": "lookup"}]'),
        make_request(temperature=0.2),
    ]
    scopes = {scope_of(v) for v in variants}
    assert scope_of(base) not in scopes
    assert len(scopes) == len(variants)
    assert request_key(base) not in {request_key(v) for v in variants}


def test_tools_json_is_canonical() -> None:
    """Tools differing only in key order and spacing are one scope."""
    a = make_request(tools='{"a": 1, "b": [1, 2]}')
    b = make_request(tools='{"b":[1,2],"a":1}')
    assert scope_of(a) == scope_of(b)


def test_only_the_last_user_turn_is_the_prompt() -> None:
    """Earlier turns go into the history hash, the last user turn is the prompt."""
    request = make_request("second", history=[(Role.USER, "first"), (Role.ASSISTANT, "ok")])
    assert prompt_of(request) == "second"
    assert exact_key(scope_of(request), "second") == request_key(request).decode()


def test_plan_follows_mode_and_temperature_ceiling() -> None:
    """use/only_exact/refresh/bypass plan as documented; hot or omitted temperature bypasses."""
    cache = CacheSettings()
    use = plan_for(make_request(), cache)
    assert (use.exact, use.semantic, use.store) == (True, True, True)
    only = plan_for(make_request(policy=CachePolicy(mode=CacheMode.ONLY_EXACT)), cache)
    assert (only.exact, only.semantic, only.store) == (True, False, True)
    refresh = plan_for(make_request(policy=CachePolicy(mode=CacheMode.REFRESH)), cache)
    assert (refresh.exact, refresh.semantic, refresh.store) == (False, False, True)
    bypass = plan_for(make_request(policy=CachePolicy(mode=CacheMode.BYPASS)), cache)
    assert not bypass.cacheable
    assert plan_for(make_request(temperature=0.3), cache).cacheable
    assert not plan_for(make_request(temperature=0.7), cache).cacheable
    omitted = plan_for(make_request(temperature=None), cache)
    assert not omitted.cacheable
    assert "1" in omitted.reason


def test_min_similarity_raises_never_lowers_the_floor() -> None:
    """A request's min_similarity above the floor raises it; below, the floor stays."""
    decisions = ThresholdDecisions(0.9)
    assert decisions.for_tenant("acme", 0.95).min_similarity == 0.95  # type: ignore[attr-defined]
    assert decisions.for_tenant("acme", 0.1).min_similarity == 0.9  # type: ignore[attr-defined]


def test_valid_request_has_no_problems() -> None:
    """The default test request passes validation."""
    assert problems(make_request(), RULES, REPLY) == []


def test_invalid_requests_name_what_is_wrong() -> None:
    """Each broken rule is reported in words an app developer can act on."""
    cases = {
        "unknown model alias": make_request(alias="gpt-9"),
        "temperature 3.0 outside": make_request(temperature=3.0),
        "at most 32000 allowed": make_request("x" * 32_001),
        "tools is not valid JSON": make_request(tools="{not json"),
        "reply topic 'elsewhere'": make_request(reply_topic="elsewhere"),
        "tenant_id has characters": make_request(tenant='acme" or tenant_id != "'),
        "last user message is empty": make_request("   "),
    }
    for expected, request in cases.items():
        found = "; ".join(problems(request, RULES, REPLY))
        assert expected in found, (expected, found)
    too_many = make_request(history=[(Role.USER, "x")] * 300)
    assert "messages, at most 256" in "; ".join(problems(too_many, RULES, REPLY))


def test_known_model_aliases_match_the_provider_configuration() -> None:
    """The aliases cache-lookup accepts are exactly those infra/providers.yaml routes."""
    providers = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "infra" / "providers.yaml").read_text()
    )
    assert set(RequestRules().model_aliases) == set(providers["aliases"])
