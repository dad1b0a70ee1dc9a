"""Loading engines again and again keeps memory bounded (issue 17, item 10): durable-rules
rulesets are shared by content between engines instead of being built (and leaked) per load."""

from __future__ import annotations

import threading

from mailtriage.engine import Engine

QUERY = {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "smtp.text": "Connection refused",
         "context.system": "exchange-online"}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_forty_loads_keep_memory_bounded() -> None:
    first = Engine.load()
    first.matcher.build_all()  # every ruleset: the worst case, ~57 MB per load before sharing
    expected = {m.rule.id for m in first.diagnose(QUERY).matches}
    before = rss_mb()
    for _ in range(40):
        engine = Engine.load()
        engine.matcher.build_all()
        assert {m.rule.id for m in engine.diagnose(QUERY).matches} == expected
        del engine
    growth = rss_mb() - before
    assert growth < 150, f"RSS grew {growth:.0f} MB over 40 loads"  # it grew ~2,000 MB before


def test_threads_loading_in_a_loop_agree() -> None:
    expected = {m.rule.id for m in Engine.load().diagnose(QUERY).matches}
    assert "exo-connector-connection-refused" in expected
    failures: list[str] = []

    def work() -> None:
        try:
            for _ in range(4):
                engine = Engine.load()
                for _ in range(20):
                    found = {m.rule.id for m in engine.diagnose(QUERY).matches}
                    if found != expected:
                        failures.append(f"{sorted(found)} != {sorted(expected)}")
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
