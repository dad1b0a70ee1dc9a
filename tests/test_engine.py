"""The engine: durable-rules traps handled, ranking, causes steered by facts, next checks, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mailtriage import Engine
from mailtriage.durable import DurableMatcher
from mailtriage.errors import FactError
from mailtriage.facts import normalize_facts
from mailtriage.loader import KnowledgeBase
from mailtriage.matching import PythonMatcher, naive_match
from rulegen import make_rule


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def test_rules_whose_first_conditions_all_differ_do_not_hang() -> None:
    # 700 distinct first conditions under one node hang durable-rules at 512; partitions avoid it.
    rules = [
        make_rule(f"r{i}", {"all": [{"field": "smtp.remote_port", "equals": 1000 + i}, {"field": "smtp.reply_code", "at_least": 400}]})
        for i in range(700)
    ]
    matcher = DurableMatcher(rules)
    assert matcher.match(normalize_facts({"smtp.remote_port": 1650, "smtp.reply_code": 450})) == {"r650"}
    assert matcher.match(normalize_facts({"smtp.remote_port": 1650, "smtp.reply_code": 250})) == set()


def test_many_rules_under_one_dispatch_key_are_chunked() -> None:
    # 600 rules sharing a key: more than 511 children under one node would hang; chunks of 250 do not.
    rules = [
        make_rule(f"r{i}", {"all": [{"field": "smtp.enhanced", "equals": "5.7.1"}, {"field": "smtp.remote_port", "equals": i + 1}]})
        for i in range(600)
    ]
    matcher = DurableMatcher(rules)
    assert len(matcher.rulesets[("smtp.enhanced", "5.7.1")]) == 3
    assert matcher.match(normalize_facts({"smtp.enhanced": "5.7.1", "smtp.remote_port": 599})) == {"r598"}


def test_a_ruleset_never_needs_more_properties_than_a_fact_can_hold() -> None:
    # A fact holds at most 252 properties (error 302 beyond); 240 distinct patterns under one key
    # would need 240 regex flags in one fact, so the key's branches are split by property count.
    rules = [
        make_rule(f"r{i}", {"all": [{"field": "smtp.enhanced", "equals": "5.7.1"}, {"field": "smtp.text", "matches": f"code{i}x"}]})
        for i in range(240)
    ]
    matcher = DurableMatcher(rules)
    assert len(matcher.rulesets[("smtp.enhanced", "5.7.1")]) == 2
    facts = normalize_facts({"smtp.enhanced": "5.7.1", "smtp.text": "rejected: code17x and code230x"})
    assert matcher.match(facts) == {"r17", "r230"} == naive_match(rules, facts)
    assert matcher.fallbacks == 0


def test_a_ruleset_is_asserted_only_if_a_branch_can_still_match_its_text() -> None:
    rules = [
        make_rule("relay", {"all": [{"field": "smtp.enhanced", "equals": "5.7.1"}, {"field": "smtp.text", "matches": "relay"}]}),
        make_rule("spam", {"all": [{"field": "smtp.enhanced", "equals": "5.7.1"}, {"field": "smtp.text", "matches": "spam"}]}),
        make_rule("any-5.7.1", {"all": [{"field": "smtp.enhanced", "equals": "5.7.0"}, {"not": {"field": "smtp.text", "matches": "spam"}}]}),
    ]
    matcher = DurableMatcher(rules)
    assert matcher.match(normalize_facts({"smtp.enhanced": "5.7.1", "smtp.text": "mailbox full"})) == set()
    assert (matcher.asserts, matcher.gated) == (0, 1)  # both branches need a text that is not there
    assert matcher.match(normalize_facts({"smtp.enhanced": "5.7.1", "smtp.text": "relay denied"})) == {"relay"}
    assert (matcher.asserts, matcher.gated) == (1, 1)
    # A branch needing no text (a `not` is no gate) keeps its ruleset asserted.
    assert matcher.match(normalize_facts({"smtp.enhanced": "5.7.0", "smtp.text": "mailbox full"})) == {"any-5.7.1"}
    assert (matcher.asserts, matcher.gated) == (2, 1)


def test_a_query_matching_nothing_is_safe_and_repeatable() -> None:
    # delete_state after a query that matched nothing crashes durable-rules; we never call it.
    matcher = DurableMatcher([make_rule("r", {"field": "tcp.state", "equals": "refused"})])
    for _ in range(2000):
        assert matcher.match(normalize_facts({"tcp.state": "timeout"})) == set()
    assert matcher.match(normalize_facts({"tcp.state": "refused"})) == {"r"}


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("timeout", "timeoutish"),  # durable's .*X.* misses texts continuing after a bordered word
        ("test", "testes"),
        (r"\d{3} \d\.\d\.\d", "got 550 5.7.1 back"),  # backslash classes are literals in its dialect
        ("^mailbox", "Mailbox full"),  # ^ is a literal there, an anchor here
        ("(?:quota|full)", "over QUOTA"),
    ],
)
def test_regexes_are_evaluated_by_python_not_the_engine_dialect(pattern: str, text: str) -> None:
    rules = [make_rule("r", {"all": [{"field": "smtp.reply_code", "equals": 550}, {"field": "smtp.text", "matches": pattern}]})]
    facts = normalize_facts({"smtp.reply_code": 550, "smtp.text": text})
    assert DurableMatcher(rules).match(facts) == {"r"} == PythonMatcher(rules).match(facts)


def test_sixty_five_matching_siblings_fall_back_to_python() -> None:
    # durable-rules fails with error 303 when more than 64 sibling conditions match one fact.
    rules = [
        make_rule(f"r{i}", {"all": [{"field": "smtp.reply_code", "equals": 550}, {"field": "smtp.remote_port", "at_least": i}]})
        for i in range(80)
    ]
    matcher = DurableMatcher(rules)
    facts = normalize_facts({"smtp.reply_code": 550, "smtp.remote_port": 200})
    assert matcher.match(facts) == {f"r{i}" for i in range(80)} == naive_match(rules, facts)
    assert matcher.fallbacks == 1  # the engine did raise 303, and Python answered instead


def test_negation_of_a_missing_field_matches_in_both_evaluators() -> None:
    rules = [make_rule("r", {"all": [{"field": "smtp.reply_code", "equals": 450}, {"not": {"field": "tcp.state", "equals": "refused"}}]})]
    for raw, expected in [({"smtp.reply_code": 450}, {"r"}), ({"smtp.reply_code": 450, "tcp.state": "refused"}, set()), ({"smtp.reply_code": 450, "tcp.state": "timeout"}, {"r"})]:
        facts = normalize_facts(raw)
        assert DurableMatcher(rules).match(facts) == expected == PythonMatcher(rules).match(facts)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"smtp.reply_code": "abc"}, "smtp.reply_code"),
        ({"tcp.state": "sleepy"}, "not one of"),
        ({"no.such": 1}, "unknown fact field"),
        ({"smtp.enhanced": "4.4"}, "not well formed"),
        ({"smtp.reply_code": 99}, "below"),
    ],
)
def test_bad_facts_are_rejected_with_the_field_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(FactError, match=message):
        normalize_facts(raw)


def test_types_are_normalised_before_matching() -> None:
    facts = normalize_facts({"smtp.reply_code": "450", "smtp.enhanced": "4.04.316", "context.migrated_to_cloud": "yes", "tcp.state": "REFUSED"})
    assert facts["smtp.reply_code"] == 450 and facts["smtp.enhanced"] == "4.4.316"
    assert facts["context.migrated_to_cloud"] is True and facts["tcp.state"] == "refused"
    assert facts["smtp.enhanced_generic"] == "X.4.316" and facts["smtp.enhanced_subject"] == "X.4" and facts["smtp.enhanced_class"] == 4


def test_specific_rules_rank_before_generic_ones() -> None:
    rules = [
        make_rule("generic-class", {"field": "smtp.enhanced_class", "equals": 4}, kind="generic", generic_level="class"),
        make_rule("generic-detail", {"field": "smtp.enhanced_generic", "equals": "X.4.316"}, kind="generic", generic_level="detail"),
        make_rule("specific", {"all": [{"field": "smtp.enhanced", "equals": "4.4.316"}, {"field": "context.system", "equals": "exchange-online"}]}),
    ]
    engine = Engine(KnowledgeBase(rules={r.id: r for r in rules}))
    result = engine.diagnose({"smtp.enhanced": "4.4.316", "context.system": "exchange-online"})
    assert [m.rule.id for m in result.matches] == ["specific", "generic-detail", "generic-class"]
    assert result.specific
    generic_only = engine.diagnose({"smtp.enhanced": "4.4.316"})
    assert [m.rule.id for m in generic_only.matches] == ["generic-detail", "generic-class"]
    assert not generic_only.specific


def test_causes_are_steered_by_facts_and_ruled_out_causes_stay_visible(engine: Engine) -> None:
    migrated = engine.diagnose({"tcp.state": "refused", "context.direction": "outbound-connector", "context.migrated_to_cloud": True})
    top = migrated.matches[0]
    assert top.rule.id == "exo-connector-connection-refused"
    assert top.causes[0].cause.id == "on-premises-retired"
    assert top.causes[0].likelihood.value == "likely"
    unlikely = [c.cause.id for c in top.causes if c.likelihood.value == "unlikely"]
    assert "firewall-blocks-microsoft-365" in unlikely
    assert top.fixes[0].id == "retire-connector"

    still_on_premises = engine.diagnose({"tcp.state": "refused", "context.direction": "outbound-connector", "context.migrated_to_cloud": False})
    assert still_on_premises.matches[0].causes[0].cause.id == "firewall-blocks-microsoft-365"


def test_next_checks_ask_for_the_facts_that_separate_causes(engine: Engine) -> None:
    result = engine.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online"})
    fields = [check.field for check in result.next_checks]
    assert "context.migrated_to_cloud" in fields and "context.destination" in fields
    data = result.to_dict("pt-BR")
    assert all(check["question"] and check["how"] for check in data["next_checks"])
    known = engine.diagnose({"smtp.enhanced": "4.4.316", "context.system": "exchange-online", "context.migrated_to_cloud": True})
    assert "context.migrated_to_cloud" not in [check.field for check in known.next_checks]


def test_json_shape_is_the_documented_contract(engine: Engine) -> None:
    data = engine.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online"}).to_dict()
    assert {"facts", "matches", "next_checks"} <= set(data)
    match = data["matches"][0]
    assert {"rule", "codes", "title", "causes", "fixes", "why"} <= set(match)
    assert match["rule"] == "exo-connector-connection-refused" and "450 4.4.316" in match["codes"]
    assert all({"field", "condition", "value"} <= set(w) for w in match["why"])


def test_eight_threads_get_the_same_answers_as_one(engine: Engine) -> None:
    queries = [
        {"tcp.state": "refused", "context.direction": "outbound-connector"},
        {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online"},
        {"tcp.state": "timeout", "context.direction": "outbound-internet"},
        {"smtp.reply_code": 550, "smtp.enhanced": "5.4.316", "smtp.text": "Message expired, connection refused"},
    ]
    expected = [[m.rule.id for m in engine.diagnose(q).matches] for q in queries]
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(300):
            index = (i + offset) % len(queries)
            got = [m.rule.id for m in engine.diagnose(queries[index]).matches]
            if got != expected[index]:
                failures.append(f"query {index}: {got}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


NEAR_MISS_RULES = [
    make_rule(
        "exo-refused",
        {"all": [{"field": "smtp.enhanced", "equals": "4.4.316"}, {"field": "context.system", "equals": "exchange-online"}, {"field": "smtp.text", "matches": "refused"}]},
    ),
    make_rule(
        "exo-refused-tcp-refused",
        {
            "all": [
                {"field": "smtp.enhanced", "equals": "4.4.316"},
                {"field": "context.system", "equals": "exchange-online"},
                {"field": "tcp.state", "equals": "refused"},
                {"field": "smtp.text", "matches": "refused"},
            ]
        },
    ),
    make_rule("fallback", {"all": [{"field": "smtp.enhanced", "equals": "4.4.316"}, {"not": {"field": "smtp.text", "matches": "refused"}}, {"field": "smtp.reply_code", "equals": 450}]}),
    make_rule("generic-detail", {"all": [{"field": "smtp.enhanced_generic", "equals": "X.4.316"}, {"field": "context.system", "equals": "exchange-online"}, {"field": "smtp.reply_code", "equals": 450}]}, kind="generic", generic_level="detail"),
]


@pytest.mark.parametrize("backend", ["durable", "python"])
@pytest.mark.parametrize(
    ("facts", "near"),
    [
        # Code, TCP result and wording fit, the reporter does not: the best lead comes first.
        (
            {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "postfix", "tcp.state": "refused", "smtp.text": "Connection refused"},
            [("exo-refused-tcp-refused", "context.system"), ("exo-refused", "context.system")],
        ),
        # Only the wording differs: not a near miss (the reader cannot change what the server said).
        ({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online", "smtp.text": "timed out"}, []),
        # Two conditions fail: not near.
        ({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "postfix", "tcp.state": "timeout", "smtp.text": "Connection refused"}, [("exo-refused", "context.system")]),
        # One reply code away from the fallback rule: a different error, not an almost-match.
        ({"smtp.reply_code": 451, "smtp.enhanced": "4.4.316", "context.system": "exchange-online", "smtp.text": "timed out"}, []),
        # The TCP result is unknown: a question for next checks, not a near miss.
        ({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online", "smtp.text": "Connection refused"}, []),
    ],
)
def test_near_misses_name_the_one_fact_that_failed(backend: str, facts: dict[str, Any], near: list[tuple[str, str]]) -> None:
    engine = Engine(KnowledgeBase(rules={r.id: r for r in NEAR_MISS_RULES}), backend=backend)  # type: ignore[arg-type]
    result = engine.diagnose(facts)
    assert [(n.rule.id, n.failed.field) for n in result.near_misses] == near
    assert all(n.rule.id not in {m.rule.id for m in result.matches} for n in result.near_misses)
    data = result.to_dict()
    assert [n["rule"] for n in data["near_misses"]] == [rule for rule, _field in near]


def test_the_fact_that_would_decide_a_candidate_is_asked_for() -> None:
    engine = Engine(KnowledgeBase(rules={r.id: r for r in NEAR_MISS_RULES}))
    result = engine.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online", "smtp.text": "Connection refused"})
    assert "exo-refused" in {m.rule.id for m in result.matches}
    assert [c.field for c in result.next_checks][:1] == ["tcp.state"]
    assert result.next_checks[0].separates == ["exo-refused-tcp-refused"]
