"""The knowledge-base cache: written once per rules content, read afterwards, never trusted blindly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import DATA
from mailtriage import cache, textmatch
from mailtriage.cache import content_key, load_cached_knowledge_base
from mailtriage.model import iter_leaves


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DATA / "lint" / "valid", target)
    return target


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MAILTRIAGE_CACHE_DIR", str(folder))
    return folder


def test_the_second_load_reads_the_pickle_and_primes_the_pattern_analyses(
    rules_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_cached_knowledge_base([rules_dir])
    assert not first.errors
    assert [p.name for p in cache_dir.glob("kb-*")] == [f"kb-{content_key([rules_dir])}.pickle"]

    def must_not_parse(dirs: list[Path]) -> None:
        raise AssertionError("the cached knowledge base should have been used")

    monkeypatch.setattr(cache, "load_knowledge_base", must_not_parse)
    monkeypatch.setattr(textmatch, "_analyses", {})
    second = load_cached_knowledge_base([rules_dir])
    assert sorted(second.rules) == sorted(first.rules)
    patterns = {leaf.value for rule in second.rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"}
    assert patterns and patterns <= set(textmatch._analyses)


def test_a_changed_rule_gets_a_new_key(rules_dir: Path) -> None:
    before = content_key([rules_dir])
    rule_file = next(rules_dir.rglob("*.yaml"))
    rule_file.write_text(rule_file.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert content_key([rules_dir]) != before


@pytest.mark.parametrize("content", [b"", b"not a pickle", b"\x80\x05K\x01."])  # empty, garbage, a bare int
def test_a_damaged_cache_file_is_ignored_and_rewritten(rules_dir: Path, cache_dir: Path, content: bytes) -> None:
    cache_dir.mkdir()
    target = cache_dir / f"kb-{content_key([rules_dir])}.pickle"
    target.write_bytes(content)
    kb = load_cached_knowledge_base([rules_dir])
    assert kb.rules and not kb.errors
    assert target.read_bytes() != content

