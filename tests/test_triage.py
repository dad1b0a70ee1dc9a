"""The library verbs (`mailtriage.triage`): the same powers as the CLI, without it."""

from __future__ import annotations

import mailtriage
from mailtriage import Engine, diagnose_text, scan_rows
from mailtriage.intake import IntakeRecord, SkippedInput
from mailtriage.triage import SCAN_ROW_FIELDS


def test_engine_without_arguments_loads_the_bundled_rules() -> None:
    assert "exo-connector-connection-refused" in Engine().rules


def test_diagnose_text_gives_one_diagnosis_per_record(engine: Engine) -> None:
    found = diagnose_text("450 4.4.316 Connection refused", facts={"context.system": "exchange-online"}, engine=engine)
    assert len(found) == 1
    top = found[0].diagnosis.top
    assert top is not None and top.rule.id == "exo-connector-connection-refused"
    assert found[0].to_dict()["kind"] == "reply"


def test_diagnose_text_reads_log_lines_as_records(engine: Engine) -> None:
    log = (
        "Mar  1 10:00:00 mx postfix/smtp[1]: A1: to=<a@one.example>, relay=none, delay=3, status=deferred "
        "(connect to mx.one.example[192.0.2.1]:25: Connection refused)\n"
        "Mar  1 10:00:01 mx postfix/smtp[1]: B2: to=<b@two.example>, relay=mx.two.example[192.0.2.2]:25, "
        "status=bounced (host mx.two.example[192.0.2.2] said: 550 5.1.1 <b@two.example>: User unknown)\n"
    )
    found = engine.diagnose_text(log)
    assert [r.recipient for r in found] == ["a@one.example", "b@two.example"]
    assert all(r.record.kind == "log" for r in found)


def test_diagnose_text_returns_nothing_for_unrecognisable_text(engine: Engine) -> None:
    assert diagnose_text("hello there", engine=engine) == []


def test_caller_facts_override_what_was_read(engine: Engine) -> None:
    found = engine.diagnose_text("450 4.4.316 Connection refused", {"context.system": "postfix"})
    assert found[0].diagnosis.facts["context.system"] == "postfix"


def test_scan_rows_keep_the_contract_and_account_for_skips(engine: Engine) -> None:
    record = IntakeRecord(facts={"smtp.reply_code": 550, "smtp.enhanced": "5.1.1"}, kind="reply", source="box.mbox#3")
    rows = list(scan_rows([record, SkippedInput("x.bin", "binary file")], engine))
    assert set(SCAN_ROW_FIELDS) <= set(rows[0])
    assert rows[0]["file"] == "box.mbox" and rows[0]["status"] == "5.1.1" and rows[0]["rule"]
    assert rows[1] == {"source": "x.bin", "skipped": "binary file", "read": False}


def test_public_api_is_exported() -> None:
    for name in mailtriage.__all__:
        assert getattr(mailtriage, name) is not None
