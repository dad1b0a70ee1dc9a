"""What the bundled rules promise an admin: commands in every Exchange Online, Postfix and Exim rule,
no queue retry asked of Exchange Online, the seed article's Fix now reason, translated captions."""

from __future__ import annotations

import re

import pytest

from conftest import RULES as RULES_DIR
from mailtriage.engine import Engine
from mailtriage.loader import load_knowledge_base
from mailtriage.model import Rule, Status

RULES = load_knowledge_base([RULES_DIR]).rules
# Verbs of the cmdlets the rules use; an unknown verb is most likely a typo or an invented cmdlet.
POWERSHELL_VERBS = {"Get", "Set", "New", "Remove", "Add", "Enable", "Disable", "Test", "Resolve", "Invoke", "Start"}


def _rules_of(system: str) -> list[Rule]:
    return [r for r in RULES.values() if r.systems == [system] and r.status is not Status.DEPRECATED]


@pytest.mark.parametrize(("system", "shell"), [("exchange-online", "powershell"), ("postfix", "sh"), ("exim", "sh")])
def test_every_rule_of_an_admin_run_system_gives_commands_in_its_shell(system: str, shell: str) -> None:
    rules = _rules_of(system)
    assert len(rules) >= 5
    lacking = [r.id for r in rules if not any(c.shell == shell for f in r.fixes for c in f.commands)]
    assert not lacking


def test_powershell_commands_start_with_a_known_cmdlet_verb() -> None:
    odd = []
    for rule in RULES.values():
        for fix in rule.fixes:
            for command in fix.commands:
                if command.shell == "powershell":
                    verb = re.match(r"([A-Z][a-z]+)-[A-Z][A-Za-z0-9]+\b", command.run)
                    if verb is None or verb.group(1) not in POWERSHELL_VERBS:
                        odd.append(f"{rule.id}/{fix.id}: {command.run}")
    assert not odd


def test_exchange_online_fixes_never_ask_to_retry_the_queue() -> None:
    # Exchange Online retries by itself for 24 hours; its admins have no way to force a retry.
    asking = [
        f"{rule.id}/{fix.id}"
        for rule in _rules_of("exchange-online")
        for fix in rule.fixes
        for text in (*fix.steps, *(c.run for c in fix.commands))
        if re.search(r"retry the queue|Retry-Queue|force (a|the) retry", text, re.I)
    ]
    assert not asking


def test_connection_refused_keeps_the_fix_now_reason_in_both_languages() -> None:
    rule = RULES["exo-connector-connection-refused"]
    detail = "causes.on-premises-retired.detail"
    assert "invalid-recipient quota" in rule.text(detail) and "Fix now" in rule.text(detail)
    assert "cota de destinatários inválidos" in rule.text(detail, "pt-BR") and "Corrigir agora" in rule.text(detail, "pt-BR")
    retire = next(f for f in rule.fixes if f.id == "retire-connector")
    runs = [c.run for c in retire.commands]
    assert any(run.startswith("Set-OutboundConnector") and "-Enabled $false" in run for run in runs)
    assert "Set-AcceptedDomain -Identity contoso.com -DomainType Authoritative" in runs


def test_every_example_caption_has_a_current_portuguese_translation() -> None:
    untranslated = []
    captions = 0
    for rule in RULES.values():
        missing, stale = rule.translation_state("pt-BR")
        untranslated += [f"{rule.id}:{key}" for key in (*missing, *stale) if key.startswith("examples.")]
        for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match)):
            for index, example in enumerate(examples):
                if example.note:
                    captions += 1
                    assert rule.note(kind, index) == example.note
    assert captions > 200
    assert not untranslated


def test_why_lines_are_in_the_diagnosis_language(engine: Engine) -> None:
    diagnosis = engine.diagnose({"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online"})
    english = diagnosis.to_dict("en")["matches"][0]
    portuguese = diagnosis.to_dict("pt-BR")["matches"][0]
    assert english["rule"] == portuguese["rule"] == "exo-connector-connection-refused"
    assert any(" is one of " in why["condition"] for why in english["why"])
    assert any(" é um de " in why["condition"] for why in portuguese["why"])
    assert not any(" is one of " in why["condition"] for why in portuguese["why"])
    # The fixes carry who does them and the commands to run, in both languages alike.
    fixes = {fix["id"]: fix for fix in portuguese["fixes"]}
    assert fixes["retire-connector"]["audience"] == "admin"
    assert {"shell": "powershell", "run": "Set-AcceptedDomain -Identity contoso.com -DomainType Authoritative"} in fixes["retire-connector"]["commands"]



def test_every_example_reply_pasted_as_a_user_pastes_it_gets_the_rule_it_claims(engine: Engine) -> None:
    # lint reads an example's reply with read_reply; a user's paste goes through parse_input, which may
    # read the same text as a log line or a message. Both must give the example's verdict.
    from mailtriage.triage import diagnose_text

    checked = 0
    wrong = []
    for rule in RULES.values():
        if rule.status is Status.DEPRECATED:
            continue  # never matched by design; lint checks its examples against the rule itself
        for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match)):
            for index, example in enumerate(examples):
                if example.reply is None:
                    continue
                checked += 1
                results = diagnose_text(example.reply, facts=dict(example.facts) or None, engine=engine)
                matched = bool(results) and rule.id in {m.rule.id for m in results[0].diagnosis.matches}
                if matched != (kind == "match"):
                    wrong.append(f"{rule.id} {kind}[{index}]: {example.reply[:90]!r}")
    assert checked > 800
    assert not wrong, "\n".join(wrong)
