"""The registry and provider knowledge: IANA generic rules, Gmail, Outlook.com and Yahoo rules.

These checks hold the knowledge to its contract until (and besides) `mailtriage lint`: every IANA
code has its generic rule, every rule validates and carries a complete, current pt-BR translation,
every example reply parses, and provider rules never key on an enhanced code alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mailtriage.engine import Engine
from mailtriage.facts import normalize_facts
from mailtriage.i18n import source_hash, translatable_strings
from mailtriage.intake.reply import parse_reply, read_reply

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
OWN_DIRS = ("iana", "gmail", "outlook-com", "yahoo")

# The enumerated codes of the IANA registry (RFC 5248 sub-registry 3), as X.subject.detail.
IANA_DETAIL_CODES = (
    ["X.0.0"]
    + [f"X.1.{n}" for n in range(11)]
    + [f"X.2.{n}" for n in range(5)]
    + [f"X.3.{n}" for n in range(7)]
    + [f"X.4.{n}" for n in range(8)]
    + [f"X.5.{n}" for n in range(7)]
    + [f"X.6.{n}" for n in range(11)]
    + [f"X.7.{n}" for n in range(31)]
)
PROVIDER_FIELDS = {"context.system", "context.remote_provider"}
CODE_FIELDS = {"smtp.enhanced", "smtp.enhanced_generic", "smtp.enhanced_subject", "smtp.enhanced_class"}


def rule_files() -> list[Path]:
    return sorted(
        path
        for folder in OWN_DIRS
        for path in (RULES_DIR / folder).glob("*.yaml")
        if not path.name.endswith(".pt-BR.yaml")
    )


@cache
def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@cache
def schema(name: str) -> dict[str, Any]:
    data = json.loads((RULES_DIR / "schema" / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rules_by_id() -> dict[str, dict[str, Any]]:
    return {load(path)["id"]: load(path) for path in rule_files()}


def leaves(condition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("all", "any"):
        if key in condition:
            for item in condition[key]:
                yield from leaves(item)
            return
    if "not" in condition:
        yield from leaves(condition["not"])
        return
    yield condition


def branches(match: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(match["any"]) if "any" in match else [match]


def example_facts(example: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if "reply" in example:
        raw.update(read_reply(example["reply"], known=dict(example.get("facts", {})))[0])
    raw.update(example.get("facts", {}))
    return dict(normalize_facts(raw))


ALL_FILES = rule_files()
IDS = [path.relative_to(RULES_DIR).as_posix() for path in ALL_FILES]


def test_every_iana_code_has_one_generic_rule() -> None:
    rules = rules_by_id()
    for code in IANA_DETAIL_CODES:
        _, subject, detail = code.split(".")
        rule = rules.get(f"iana-x-{subject}-{detail}")
        assert rule is not None, code
        assert (rule["kind"], rule["generic_level"], rule["codes"]) == ("generic", "detail", [code])
        assert rule["match"] == {"field": "smtp.enhanced_generic", "equals": code}
    for digit in (2, 4, 5):
        assert rules[f"iana-class-{digit}"]["match"] == {"field": "smtp.enhanced_class", "equals": digit}
    for subject_number in range(8):
        rule = rules[f"iana-subject-x-{subject_number}"]
        assert rule["match"] == {"field": "smtp.enhanced_subject", "equals": f"X.{subject_number}"}
    generic = [rule for rule in rules.values() if rule["id"].startswith("iana-")]
    assert len(generic) == 3 + 8 + 81


def test_deprecated_code_is_explained_and_points_to_the_code_that_replaced_it(engine: Engine) -> None:
    # IANA deprecated X.6.10 as a duplicate of X.6.8. The code is deprecated, not its explanation:
    # a rule marked deprecated is never matched, so a 5.6.10 reply would get only subject X.6's meaning.
    rules = rules_by_id()
    assert rules["iana-x-6-10"]["status"] == "stable"
    assert "iana-x-6-8" in rules["iana-x-6-10"]["see_also"]
    facts = normalize_facts(read_reply("553 5.6.10 UTF-8 string reply is required, but not permitted")[0])
    assert engine.diagnose(facts).matches[0].rule.id == "iana-x-6-10"


@given(
    st.sampled_from([2, 4, 5]),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=999),
)
def test_any_enhanced_code_gets_a_generic_explanation(klass: int, subject: int, detail: int) -> None:
    facts = normalize_facts({"smtp.enhanced": f"{klass}.{subject}.{detail}"})
    generic = [rule for rule in rules_by_id().values() if rule["kind"] == "generic"]
    # Generic rules are single equality leaves, so their match can be checked directly.
    matched = {
        rule["generic_level"]
        for rule in generic
        if facts.get(rule["match"]["field"]) == rule["match"]["equals"]
    }
    assert "class" in matched
    assert ("subject" in matched) == (subject <= 7)
    assert ("detail" in matched) == (f"X.{subject}.{detail}" in IANA_DETAIL_CODES)


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_rule_is_valid_and_consistent(path: Path) -> None:
    rule = load(path)
    jsonschema.validate(rule, schema("rule"))
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=../schema/rule.schema.json")
    for leaf in leaves(rule["match"]):
        if "matches" in leaf:
            re.compile(leaf["matches"])
    cause_ids = {cause["id"] for cause in rule.get("causes", [])}
    for fix in rule.get("fixes", []):
        assert set(fix.get("addresses", [])) <= cause_ids, fix["id"]
    for example in rule["examples"]["match"] + rule["examples"]["no_match"]:
        if "expect_top_cause" in example:
            assert example["expect_top_cause"] in cause_ids
    known = set(rules_by_id())
    for other in [*rule.get("see_also", []), rule.get("replaced_by") or rule["id"]]:
        assert other in known, other


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_translation_is_complete_and_current(path: Path) -> None:
    rule = load(path)
    translation_path = path.with_name(path.name[: -len(".yaml")] + ".pt-BR.yaml")
    translation = yaml.safe_load(translation_path.read_text(encoding="utf-8"))
    jsonschema.validate(translation, schema("translation"))
    assert (translation["rule"], translation["lang"]) == (rule["id"], "pt-BR")
    english = translatable_strings(rule)
    assert set(translation["strings"]) == set(english)
    for key, text in english.items():
        entry = translation["strings"][key]
        assert entry["source"] == source_hash(text), key
        assert "TODO" not in entry["text"] and entry["text"] != text, key


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_examples_parse_and_carry_a_reply(path: Path) -> None:
    rule = load(path)
    for example in rule["examples"]["match"] + rule["examples"]["no_match"]:
        if "reply" in example:
            assert parse_reply(example["reply"]), example["reply"]
        example_facts(example)  # raises FactError on a bad fact
    # Success replies (2.x.x) are not read from pasted text, so their examples give facts instead.
    if not rule["codes"][0].startswith("2") and rule["codes"][0] not in {"X.1.5", "X.1.9", "X.3.6", "X.6.4"}:
        assert any("reply" in example for example in rule["examples"]["match"])
    assert any("reply" in example for example in rule["examples"]["no_match"])
    if rule["kind"] == "generic" and rule["generic_level"] == "detail":
        code = rule["codes"][0]
        for example in rule["examples"]["match"]:
            assert example_facts(example)["smtp.enhanced_generic"] == code
        for example in rule["examples"]["no_match"]:
            assert example_facts(example).get("smtp.enhanced_generic") != code


@pytest.mark.parametrize("path", [p for p in ALL_FILES if load(p)["kind"] == "specific"],
                         ids=[i for p, i in zip(ALL_FILES, IDS, strict=True) if load(p)["kind"] == "specific"])
def test_specific_rules_never_key_on_a_code_alone(path: Path) -> None:
    rule = load(path)
    for branch in branches(rule["match"]):
        fields = {leaf["field"] for leaf in leaves(branch)}
        if fields & CODE_FIELDS:
            assert fields & PROVIDER_FIELDS or "smtp.text" in fields, branch


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(use_cache=False)


SPECIFIC = [p for p in ALL_FILES if load(p)["kind"] == "specific"]


@pytest.mark.parametrize("path", SPECIFIC, ids=[p.relative_to(RULES_DIR).as_posix() for p in SPECIFIC])
def test_provider_rule_is_the_top_answer_for_its_examples(engine: Engine, path: Path) -> None:
    rule = load(path)
    for example in rule["examples"]["match"]:
        diagnosis = engine.diagnose(example_facts(example))
        assert diagnosis.specific
        assert diagnosis.matches[0].rule.id == rule["id"], (example, [m.rule.id for m in diagnosis.matches])
        if "expect_top_cause" in example:
            assert diagnosis.matches[0].causes[0].cause.id == example["expect_top_cause"]
    for example in rule["examples"]["no_match"]:
        ids = [m.rule.id for m in engine.diagnose(example_facts(example)).matches]
        assert rule["id"] not in ids, example


@pytest.mark.parametrize(
    ("reply", "facts", "expected"),
    [
        # The same enhanced code means different things at Gmail and in the IANA registry.
        ("550 5.7.27 Sender address has null MX", {}, "iana-x-7-27"),
        ("550 5.7.27 This message was blocked because it didn't pass SPF authentication. - gsmtp", {},
         "gmail-bulk-spf-failed"),
        ("550 5.7.29 ARC validation failure", {}, "iana-x-7-29"),
        ("550 5.7.29 Blocked", {"context.remote_provider": "gmail"}, "gmail-bulk-not-tls"),
        ("550 5.7.30 REQUIRETLS support required", {}, "iana-x-7-30"),
        ("421 4.7.30 Rate limited", {"context.remote_provider": "gmail"}, "gmail-bulk-dkim-failed"),
        # One Gmail code, several meanings: the text decides.
        ("421 4.7.0 TLS required for RCPT domain, closing connection. - gsmtp", {}, "gmail-tls-required-for-domain"),
        ("421 4.7.0 IP not in whitelist for RCPT domain, closing connection. - gsmtp", {}, "gmail-ip-not-in-allowlist"),
        ("550 5.2.1 The email account that you tried to reach is inactive. - gsmtp", {}, "gmail-account-disabled"),
        # Without any sign of the provider, no provider rule answers: the cross-MTA rule does.
        ("550 5.1.1 User unknown", {}, "common-recipient-unknown"),
        ("550 5.1.1 Blocked", {}, "iana-x-1-1"),
        ("421 RP-001 (BAY004-MC1F23) Unfortunately, some messages weren't sent.", {}, "outlook-com-rate-limited"),
    ],
)
def test_provider_codes_do_not_leak_into_registry_meanings(
    engine: Engine, reply: str, facts: dict[str, Any], expected: str
) -> None:
    diagnosis = engine.diagnose({**read_reply(reply, known=facts)[0], **facts})
    assert diagnosis.matches[0].rule.id == expected


@given(
    st.sampled_from([4, 5]),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=999),
)
def test_engine_explains_any_failure_code_generically(engine: Engine, klass: int, subject: int, detail: int) -> None:
    diagnosis = engine.diagnose({"smtp.reply_code": 450 if klass == 4 else 550, "smtp.enhanced": f"{klass}.{subject}.{detail}"})
    ids = {m.rule.id for m in diagnosis.matches}
    assert f"iana-class-{klass}" in ids
    assert (f"iana-subject-x-{subject}" in ids) == (subject <= 7)


def test_translation_is_what_the_engine_renders(engine: Engine) -> None:
    diagnosis = engine.diagnose(parse_reply("550 5.1.1 <jo@example.com>: Recipient address rejected: User unknown"))
    rendered = {match["rule"]: match["title"] for match in diagnosis.to_dict(lang="pt-BR")["matches"]}
    translation = yaml.safe_load((RULES_DIR / "iana" / "x-1-1.pt-BR.yaml").read_text(encoding="utf-8"))
    assert rendered["iana-x-1-1"] == translation["strings"]["title"]["text"]

