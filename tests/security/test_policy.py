"""Policy evaluation: globs, deny wins, default deny, approval, actors narrowed by their code's creators."""

from __future__ import annotations

import pytest

import wippy_agents.security as security
from wippy_agents.errors import PermissionDenied, ValidationError
from wippy_agents.registry import Entry, EntryId, Registry
from wippy_agents.security import Actor, Policy, Security, as_actor, evaluate, glob_match


def policy(pid: str, *rules: dict) -> Policy:
    return Policy.from_data(pid, {"rules": list(rules)})


def allow(actions, resources, **kw):
    return {"effect": "allow", "actions": actions, "resources": resources, **kw}


def deny(actions, resources):
    return {"effect": "deny", "actions": actions, "resources": resources}


@pytest.mark.parametrize("value,pattern,expected", [
    ("app.tools:x", "app.tools:*", True),
    ("app.tools:x", "app.*", True),
    ("app.toolsx:y", "app.tools:*", False),
    ("registry.write", "registry.*", True),
    ("registry.write", "registry.read", False),
    ("api.example.com", "*.example.com", True),
    ("example.com", "*.example.com", False),
    ("App.tools:x", "app.tools:*", False),  # case-sensitive
    ("a[1]:x", "a[1]:*", True),  # '[' is literal, never a character class
    ("ab", "a?", True),
])
def test_glob_matching(value, pattern, expected):
    assert glob_match(value, pattern) is expected


def test_default_deny_when_no_rule_matches():
    d = evaluate([policy("p", allow(["tool.call"], ["app.tools:*"]))], "registry.write", "app.tools:x")
    assert not d.allowed and "default deny" in d.reason


def test_deny_wins_over_any_allow_in_any_policy():
    p1 = policy("p1", allow(["*"], ["*"]))
    p2 = policy("p2", deny(["lua.module"], ["http"]))
    assert not evaluate([p1, p2], "lua.module", "http").allowed
    assert evaluate([p1, p2], "lua.module", "json").allowed
    d = evaluate([p2, p1], "lua.module", "http")
    assert d.rule is not None and d.rule.policy == "p2" and "p2 rule 1" in d.reason


def test_an_ask_rule_is_not_bypassed_by_a_broader_allow():
    p = policy("p", allow(["registry.write"], ["*"]), allow(["registry.write"], ["app.review:*"], approval="ask"))
    assert evaluate([p], "registry.write", "app.review:x").approval
    assert not evaluate([p], "registry.write", "app.other:x").approval


@pytest.mark.parametrize("rule,message", [
    ({"effect": "maybe", "actions": ["a"], "resources": ["r"]}, "effect must be allow or deny"),
    ({"effect": "allow", "actions": [], "resources": ["r"]}, "'actions' must be a non-empty list"),
    ({"effect": "allow", "actions": ["a"], "resources": "r"}, "'resources' must be a non-empty list"),
    ({"effect": "allow", "actions": ["a"], "resources": ["r"], "approval": "later"}, "approval must be ask or none"),
])
def test_malformed_rules_are_named(rule, message):
    with pytest.raises(ValidationError, match=f"policy 'app.s:p' rule 1: {message}"):
        Policy.from_data("app.s:p", {"rules": [rule]})


def test_actor_labels_and_what_they_may_hand_on():
    a = Actor.agent("app.agents:x", ["p1", "p2"], task_id="t9")
    assert a.label == "agent:app.agents:x/t9"
    assert a.held_policies() == {"p1", "p2"}
    assert a.restricted(["p2", "p3"]).held_policies() == {"p2"}
    cli = Actor.owner("cli")
    assert cli.unrestricted and cli.held_policies() is None
    narrowed = cli.restricted(["p1"])
    assert not narrowed.unrestricted and narrowed.held_policies() == {"p1"}
    assert not cli.without(["registry.write"]).unrestricted


def test_plain_values_become_actors_but_an_agent_string_is_never_an_owner():
    assert as_actor(None).unrestricted
    assert as_actor("watcher").kind == "watcher" and as_actor("watcher").unrestricted
    assert as_actor("cli:root").kind == "cli"
    lost = as_actor("agent:app.agents:a")
    assert not lost.is_owner and lost.policies == ()
    assert not as_actor("lua").is_owner


def _registry(*entries: Entry) -> Registry:
    return Registry(None, builtins=entries)


def _policy_entry(pid: str, *rules: dict) -> Entry:
    return Entry(id=EntryId(pid), kind="security.policy", meta={}, data={"rules": list(rules)})


async def test_security_checks_every_policy_set_of_a_narrowed_actor():
    reg = _registry(_policy_entry("s:wide", allow(["*"], ["*"])),
                    _policy_entry("s:narrow", allow(["registry.read"], ["*"])))
    sec = Security(reg)
    wide = Actor.agent("a:w", ["s:wide"])
    assert sec.check(wide, "registry.write", "x:y").allowed
    limited = wide.restricted(["s:narrow"])
    d = sec.check(limited, "registry.write", "x:y")
    assert not d.allowed and "policies of the code's creator ['s:narrow']" in d.reason
    assert sec.check(limited, "registry.read", "x:y").allowed
    assert not sec.check(Actor.agent("a:none"), "registry.read", "x:y").allowed
    assert not sec.check(Actor.agent("a:ghost", ["s:missing"]), "registry.read", "x:y").allowed
    with pytest.raises(PermissionDenied, match=r"agent:a:w may not registry.write 'x:y': registry.write is not "
                                               r"available here"):
        await sec.enforce(wide.without(["registry.write"]), "registry.write", "x:y")


async def test_without_a_store_denials_still_raise():
    sec = Security(_registry())
    with pytest.raises(PermissionDenied, match="holds no policies"):
        await sec.enforce(Actor.agent("a:b"), "tool.call", "app.tools:x")


def test_an_agents_bare_policy_names_mean_its_namespace():
    sec = Security(_registry())
    actor = sec.agent_actor(agent_id="app.agents:a", policies=["local", "app.security:p"], task_id="t")
    assert actor.policies == ("app.agents:local", "app.security:p") and actor.label == "agent:app.agents:a/t"


async def test_a_decision_is_reused_within_a_registry_version_and_a_changed_policy_applies_at_the_next_check():
    reg = _registry()
    cs = reg.changeset(author="test")
    cs.put(_policy_entry("s:p", allow(["tool.call"], ["app.tools:*"])))
    await reg.apply(cs)
    sec = Security(reg)
    actor = Actor.agent("a:x", ["s:p"])
    first = sec.check(actor, "tool.call", "app.tools:x")
    assert first.allowed and sec.check(actor, "tool.call", "app.tools:x") is first
    assert not sec.check(actor, "tool.call", "other:y").allowed  # another resource: its own decision
    cs = reg.changeset(author="person")
    cs.put(_policy_entry("s:p", allow(["tool.call"], ["app.tools:*"]), deny(["tool.call"], ["app.tools:x"])))
    await reg.apply(cs)
    assert not sec.check(actor, "tool.call", "app.tools:x").allowed
    assert sec.check(actor, "tool.call", "app.tools:z").allowed
    assert not sec.check(actor.without(["tool.call"]), "tool.call", "app.tools:z").allowed  # actors differ


def test_an_explicit_resource_is_allowed_only_by_a_rule_that_names_it():
    named = policy("s:named", allow(["http.request"], ["127.0.0.1"]))
    globbed = policy("s:glob", allow(["http.*"], ["*", "127.0.0.*", "127.0.0.?"]))
    assert evaluate([named], "http.request", "127.0.0.1", explicit=True).allowed
    d = evaluate([globbed], "http.request", "127.0.0.1", explicit=True)
    assert not d.allowed and "only a glob allows it (s:glob rule 1" in d.reason
    assert evaluate([globbed], "http.request", "127.0.0.1").allowed  # not explicit: the glob counts
    fenced = policy("s:fenced", allow(["http.request"], ["127.0.0.1"]), deny(["http.request"], ["127.*"]))
    assert "denied by s:fenced rule 2" in evaluate([fenced], "http.request", "127.0.0.1", explicit=True).reason


def test_an_explicit_resource_is_never_covered_by_an_owners_default():
    reg = _registry(_policy_entry("s:named", allow(["http.request"], ["db.internal"])))
    sec = Security(reg)
    owner = Actor.owner("cli")
    assert sec.check(owner, "http.request", "db.internal").allowed
    d = sec.check(owner, "http.request", "db.internal", explicit=True)
    assert not d.allowed and "must be named by a policy rule" in d.reason
    assert sec.check(owner.restricted(["s:named"], source="the policies: of a:f"), "http.request", "db.internal",
                     explicit=True).allowed


def test_an_explicit_resource_must_be_named_by_every_policy_set():
    reg = _registry(_policy_entry("s:named", allow(["http.request"], ["db.internal"])),
                    _policy_entry("s:wide", allow(["*"], ["*"])))
    sec = Security(reg)
    code = Actor.agent("a:w", ["s:wide"]).restricted(["s:named"], source="the policies: of a:f")
    d = sec.check(code, "http.request", "db.internal", explicit=True)
    assert not d.allowed and "only a glob allows it (s:wide rule 1" in d.reason
    both = Actor.agent("a:n", ["s:named"]).restricted(["s:named", "s:wide"], source="the policies: of a:f")
    assert sec.check(both, "http.request", "db.internal", explicit=True).allowed


async def test_a_url_whose_host_resolves_to_an_internal_address_is_explicit_only():
    reg = _registry(_policy_entry("s:web", allow(["http.request"], ["*.example.com", "db.example.com"])))
    sec = Security(reg)
    web = Actor.agent("a:web", ["s:web"])
    await sec.enforce_url(web, "https://api.example.com/x", addresses=["93.184.216.34"])
    with pytest.raises(PermissionDenied, match=r"'api.example.com' is or resolves to an internal address "
                                               r"\(10.1.2.3\).*only a glob allows it"):
        await sec.enforce_url(web, "https://api.example.com/x", addresses=["93.184.216.34", "10.1.2.3"])
    await sec.enforce_url(web, "https://db.example.com/x", addresses=["10.1.2.3"])  # named: allowed
    for literal in ("http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(PermissionDenied, match="internal address"):
            await sec.enforce_url(Actor.owner("cli"), literal)


def test_code_policies_narrow_the_actor_with_bare_names_in_the_entrys_namespace():
    lib = Entry(id=EntryId("app.lib:l"), kind="library.lua", meta={}, data={"source": "return {}",
                                                                             "policies": ["p2"]})
    reg = _registry(lib)
    sec = Security(reg)
    entry = {"id": "app.code:f", "kind": "function.lua", "meta": {},
             "data": {"source": "", "policies": ["p1"], "imports": {"l": "app.lib:l"}}}
    actor = sec.run_as(Actor.owner("cli"), entry)
    assert set(actor.limits) == {("app.code:p1",), ("app.lib:p2",)} and actor.is_owner and not actor.unrestricted
    agent = {"id": "app.agents:a", "kind": "agent", "meta": {}, "data": {"policies": ["p1"]}}
    assert sec.run_as(Actor.owner("cli"), agent).unrestricted  # an agent's policies are its own, not a limit


def test_an_internal_address_literal_is_explicit_only_for_every_check():
    reg = _registry(_policy_entry("s:named", allow(["http.request"], ["10.0.0.5"])),
                    _policy_entry("s:wide", allow(["*"], ["*"])))
    sec = Security(reg)
    assert not sec.check(Actor.owner("cli"), "http.request", "127.0.0.1").allowed  # security.can says so too
    assert not sec.check(Actor.agent("a:w", ["s:wide"]), "http.request", "10.0.0.5").allowed
    assert sec.check(Actor.agent("a:n", ["s:named"]), "http.request", "10.0.0.5").allowed
    assert sec.check(Actor.agent("a:w", ["s:wide"]), "http.request", "93.184.216.34").allowed
    assert sec.check(Actor.owner("cli"), "registry.read", "127.0.0.1").allowed  # only http.request
