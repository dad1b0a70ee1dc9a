"""Lazy, cached explanations give exactly what an eager, uncached diagnosis gives."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtriage import Engine
from mailtriage.engine import CACHE_AFTER_DIAGNOSES
from mailtriage.facts import normalize_facts
from mailtriage.lint import example_facts
from mailtriage.loader import KnowledgeBase
from mailtriage.model import Kind
from rulegen import make_rule
from test_evaluators import TEXTS, condition, fact_sets

EXAMPLES = int(os.environ.get("MAILTRIAGE_HYPOTHESIS_EXAMPLES", "150"))


def eager(engine: Engine, facts: dict[str, Any], lang: str = "en") -> str:
    """Every part read at once, in the order of the contract, as JSON text (key order included)."""
    return json.dumps(engine.diagnose(facts).to_dict(lang), ensure_ascii=False)


def generated_engine(conditions: list[dict[str, Any]], causes: list[dict[str, Any]], cache_size: int) -> Engine:
    rules = {}
    for i, match in enumerate(conditions):
        cause_list = [
            {"id": f"c{j}", "title": f"cause {j}", "likely_when": c, **({"unlikely_when": causes[-1]} if j == 0 else {})}
            for j, c in enumerate(causes)
        ]
        fixes = [{"id": "f", "title": "fix", "addresses": [c["id"] for c in cause_list[:1]], "steps": ["do it"]}] if cause_list else []
        rules[f"r{i}"] = make_rule(f"r{i}", match, kind="specific" if i % 2 else "generic",
                                   **({"generic_level": "detail"} if i % 2 == 0 else {}), causes=cause_list, fixes=fixes)
    return warm(Engine(KnowledgeBase(rules=rules), explanation_cache_size=cache_size))


def warm(engine: Engine) -> Engine:
    """Cache from the first diagnosis on (an engine normally starts caching after a few)."""
    engine._uncached_left = 0
    return engine


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(condition, min_size=1, max_size=8),
    st.lists(condition, max_size=3),
    st.lists(fact_sets(), min_size=1, max_size=10),
    st.integers(1, 4),
)
def test_cached_lazy_diagnoses_equal_uncached_eager_ones(
    conditions: list[dict[str, Any]], causes: list[dict[str, Any]], facts_list: list[dict[str, Any]], cache_size: int
) -> None:
    cached = generated_engine(conditions, causes, cache_size)
    plain = generated_engine(conditions, causes, 0)
    for facts in facts_list * 2:  # the second round hits the cache (or what the bound left of it)
        expected = eager(plain, facts)
        lazy = cached.diagnose(facts)
        reference = plain.diagnose(facts)
        # The best rule without any explanation, then the whole result.
        top = lazy.top_rule
        assert (top.id if top else None) == (reference.matches[0].rule.id if reference.matches else None)
        assert lazy.specific == any(m.rule.kind is Kind.SPECIFIC for m in reference.matches)
        assert json.dumps(lazy.to_dict("en"), ensure_ascii=False) == expected
        assert len(cached._explanations or {}) <= cache_size


def test_the_explanation_cache_is_bounded_and_evicts_the_oldest() -> None:
    engine = generated_engine([{"field": "smtp.reply_code", "at_least": 400}], [], 3)
    for code in range(450, 460):
        assert engine.diagnose({"smtp.reply_code": code}).matches[0].rule.id == "r0"
    assert engine._explanations is not None and len(engine._explanations) == 3
    assert [dict(signature[1])["smtp.reply_code"] for signature in engine._explanations] == [457, 458, 459]


def test_a_one_shot_command_builds_no_cache(engine: Engine) -> None:
    fresh = Engine(engine.kb)
    for _ in range(CACHE_AFTER_DIAGNOSES):
        fresh.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "smtp.text": "Connection refused"})
    assert not fresh._explanations and fresh._text_tests is None
    fresh.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "smtp.text": "Connection refused"})
    assert fresh._explanations is not None and len(fresh._explanations) == 1


def test_same_signature_shares_the_explanation_but_quotes_its_own_facts(engine: Engine) -> None:
    cached = warm(Engine(engine.kb, explanation_cache_size=16))
    first = cached.diagnose({"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.text": "User unknown in virtual mailbox table (alice)"})
    second = cached.diagnose({"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.text": "User unknown in virtual mailbox table (bob)"})
    assert first._explanation is second._explanation and len(cached._explanations or {}) == 1
    assert first.to_dict()["facts"]["smtp.text"].endswith("(alice)")
    quoted = [w["value"] for m in second.to_dict()["matches"] for w in m["why"] if w["field"] == "smtp.text"]
    assert quoted and all(value.endswith("(bob)") for value in quoted)
    # A text whose pattern outcomes differ is a different signature.
    cached.diagnose({"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.text": "mailbox full"})
    assert len(cached._explanations or {}) == 2


@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_bundled_examples_give_the_same_json_cached_and_lazy(engine: Engine, lang: str) -> None:
    cached = warm(Engine(engine.kb, explanation_cache_size=64))
    plain = Engine(engine.kb, explanation_cache_size=0)
    queries = [example_facts(e) for rule in engine.kb.rules.values() for e in (*rule.examples_match, *rule.examples_no_match)]
    queries += [{**q, "smtp.text": text} for q in queries[:60] if "smtp.text" in q for text in TEXTS[:3]]
    for facts in queries + queries[::-1]:
        assert json.dumps(cached.diagnose(facts).to_dict(lang), ensure_ascii=False) == eager(plain, facts, lang)


def test_normalised_facts_are_not_shared_between_diagnoses(engine: Engine) -> None:
    cached = warm(Engine(engine.kb, explanation_cache_size=8))
    first = cached.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316"})
    first.facts["smtp.reply_code"] = 999
    again = cached.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316"})
    assert again.facts == normalize_facts({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316"})


def _diagnose_in_child(queries: list[dict[str, Any]]) -> list[str]:
    from mailtriage.triage import default_engine

    return [json.dumps(default_engine().diagnose(q).to_dict()) for q in queries]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_an_engine_loaded_before_a_fork_answers_the_same_in_the_children() -> None:
    """scan --jobs forks after loading: durable-rules rulesets built before the fork, and those a
    child builds after it, must give the parent's answers."""
    import multiprocessing

    from mailtriage.triage import default_engine

    engine = default_engine()
    queries = [example_facts(e) for rule in engine.kb.rules.values() for e in rule.examples_match]
    before = queries[: len(queries) // 2]
    expected = [json.dumps(Engine(engine.kb, explanation_cache_size=0).diagnose(q).to_dict()) for q in queries]
    for query in before:  # builds the rulesets these keys need, in the parent
        engine.diagnose(query)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_diagnose_in_child, [queries, queries[::-1]])
    assert results[0] == expected
    assert results[1] == expected[::-1]


def _reason_engine() -> Engine:
    """A rule that needs a wording and rules out another: both reasons must read as they held."""
    match = {"all": [
        {"field": "smtp.reply_code", "equals": 550},
        {"field": "smtp.text", "matches": "user unknown|no such user"},
        {"not": {"field": "smtp.text", "matches": "sender address rejected"}},
        {"not": {"field": "smtp.enhanced", "one_of": ["5.7.1", "5.7.26"]}},
    ]}
    return Engine(KnowledgeBase(rules={"unknown-user": make_rule("unknown-user", match)}))


@pytest.mark.parametrize(("lang", "contains", "not_matches", "not_one_of"), [
    ("en", "contains", "does not match", "is none of"),
    ("pt-BR", "contém", "não corresponde a", "não é nenhum de"),
])
def test_why_reads_an_exclusion_as_an_exclusion_and_quotes_the_words_that_matched(
    lang: str, contains: str, not_matches: str, not_one_of: str
) -> None:
    from mailtriage.cli.render import why_line

    facts = {"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.text": "Recipient rejected: User Unknown here"}
    why = _reason_engine().diagnose(facts).to_dict(lang)["matches"][0]["why"]
    by_condition = {reason["condition"]: reason for reason in why}
    text_test = next(r for r in why if r["field"] == "smtp.text" and r["excerpt"] is not None)
    assert text_test["excerpt"] == "User Unknown"  # the text's own spelling, not the pattern's
    exclusions = [r for r in why if r["excerpt"] is None and r["field"] != "smtp.reply_code"]
    assert sorted(r["condition"] for r in exclusions) == sorted([
        f"smtp.text {not_matches} /sender address rejected/", f"smtp.enhanced {not_one_of} 5.7.1, 5.7.26",
    ])
    assert why[-len(exclusions):] == exclusions  # what held comes before what was ruled out
    line = why_line(why, lang)
    assert f'smtp.text {contains} "User Unknown"' in line
    assert f"{not_matches} /sender address rejected/" in line
    assert not any(f"smtp.text {word} /sender" in line for word in ("matches", "corresponde a"))
    assert len(by_condition) == len(why)


def test_why_line_cuts_a_long_pattern_but_json_keeps_it_whole() -> None:
    from mailtriage.cli.render import MAX_TEST_SHOWN, why_line

    long_pattern = "|".join(f"sender rule number {n}" for n in range(20))
    match = {"all": [{"field": "smtp.reply_code", "equals": 550},
                     {"not": {"field": "smtp.text", "matches": long_pattern}}]}
    engine = Engine(KnowledgeBase(rules={"r": make_rule("r", match)}))
    why = engine.diagnose({"smtp.reply_code": 550, "smtp.text": "no"}).to_dict("en")["matches"][0]["why"]
    assert any(long_pattern in r["condition"] for r in why)
    shown = why_line(why, "en").split("; ")
    assert max(len(part) for part in shown) <= MAX_TEST_SHOWN
    assert shown[-1].endswith("…/")


def test_why_line_quotes_overlapping_words_of_one_text_once() -> None:
    from mailtriage.cli.render import why_line

    match = {"all": [{"field": "smtp.reply_code", "equals": 550},
                     {"any": [{"field": "smtp.text", "matches": "not accepted due to domain's DMARC policy"},
                              {"field": "smtp.text", "matches": "DMARC"},
                              {"field": "smtp.text", "matches": "example.org is not accepted"}]}]}
    engine = Engine(KnowledgeBase(rules={"r": make_rule("r", match)}))
    text = "Unauthenticated email from example.org is not accepted due to domain's DMARC policy"
    why = engine.diagnose({"smtp.reply_code": 550, "smtp.text": text}).to_dict("en")["matches"][0]["why"]
    assert len([r for r in why if r["excerpt"]]) == 3  # JSON keeps every test that held
    line = why_line(why, "en")
    assert line.count("smtp.text contains") == 2
    assert "\"not accepted due to domain's DMARC policy\"" in line and '"example.org is not accepted"' in line
    assert '"DMARC"' not in line


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("`[]()<>*_\\!")), min_size=1, max_size=40))
def test_markdown_reports_quote_message_words_as_code_never_as_markup(text: str) -> None:
    """Words quoted from a message in a Markdown report stay literal text: a bounce cannot put a
    link, HTML or emphasis into the report."""
    import html

    import markdown

    from mailtriage.cli.render import markdown_code

    if not text.strip():
        return
    rendered = markdown.markdown(f"smtp.text contains {markdown_code(text)}")
    body = rendered.removeprefix("<p>smtp.text contains <code>").removesuffix("</code></p>")
    assert body != rendered, rendered
    assert "<" not in body
    assert html.unescape(body) == text.strip()
