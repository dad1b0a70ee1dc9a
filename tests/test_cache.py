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
    monkeypatch.setattr(textmatch, "_splits", {})
    second = load_cached_knowledge_base([rules_dir])
    assert sorted(second.rules) == sorted(first.rules)
    patterns = {leaf.value for rule in second.rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"}
    assert patterns and patterns <= set(textmatch._analyses) and patterns <= set(textmatch._splits)
    # The alternatives pattern_plan splits a pattern into are analysed already.
    parts = {part for alternatives in textmatch._splits.values() for part in alternatives or ()}
    assert parts <= set(textmatch._analyses)


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



def test_the_key_is_stable_and_reads_no_rule_contents(rules_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = content_key([rules_dir])

    def no_reading(self: Path) -> bytes:
        raise AssertionError("the key must come from file metadata")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    assert content_key([rules_dir]) == before


def test_a_same_size_edit_with_the_old_modification_time_still_gets_a_new_key(rules_dir: Path) -> None:
    import os

    rule_file = next(rules_dir.rglob("*.yaml"))
    before = content_key([rules_dir])
    info = rule_file.stat()
    text = rule_file.read_bytes()
    rule_file.write_bytes(text.replace(b"a", b"b", 1) if b"a" in text else text + b"")
    os.utime(rule_file, ns=(info.st_atime_ns, info.st_mtime_ns))  # as `cp -p` or an archive would
    assert rule_file.stat().st_size == info.st_size and rule_file.stat().st_mtime_ns == info.st_mtime_ns
    assert content_key([rules_dir]) != before  # the status-change time moved


def test_added_and_removed_rule_files_change_the_key_but_schema_files_do_not(rules_dir: Path) -> None:
    before = content_key([rules_dir])
    (rules_dir / "schema").mkdir(exist_ok=True)
    (rules_dir / "schema" / "extra.yaml").write_text("a: 1\n", encoding="utf-8")
    (rules_dir / "notes.txt").write_text("not a rule\n", encoding="utf-8")
    assert content_key([rules_dir]) == before
    added = rules_dir / "sub" / "new.yaml"
    added.parent.mkdir()
    added.write_text("id: x\n", encoding="utf-8")
    with_new = content_key([rules_dir])
    assert with_new != before
    added.unlink()
    assert content_key([rules_dir]) == before


def test_cached_rules_unpack_their_texts_only_when_read_and_equal_the_parsed_ones(rules_dir: Path, cache_dir: Path) -> None:
    parsed = load_cached_knowledge_base([rules_dir], use_cache=False)
    load_cached_knowledge_base([rules_dir])  # writes the cache
    cached = load_cached_knowledge_base([rules_dir])
    assert sorted(cached.rules) == sorted(parsed.rules)
    for rule_id, rule in cached.rules.items():
        assert "_lazy_blob" in vars(rule) and "raw" not in vars(rule)  # nothing unpacked at load
        original = parsed.rules[rule_id]
        assert rule.title == original.title
        assert rule.text("title", "pt-BR") == original.text("title", "pt-BR")  # unpacks raw and translations
        assert "_lazy_blob" not in vars(rule)
        assert (rule.raw, rule.translations) == (original.raw, original.translations)
        assert rule == original  # compares the examples too
    with pytest.raises(AttributeError):
        _ = next(iter(cached.rules.values())).no_such_field


def test_an_engine_reuses_the_cached_dispatch_index_and_diagnoses_as_one_built_afresh(rules_dir: Path, cache_dir: Path) -> None:
    from mailtriage.engine import Engine
    from mailtriage.loader import KnowledgeBase

    load_cached_knowledge_base([rules_dir])  # writes the cache
    cached = load_cached_knowledge_base([rules_dir])
    assert cached.dispatch_index is not None
    parsed = load_cached_knowledge_base([rules_dir], use_cache=False)
    assert parsed.dispatch_index is None
    examples = [example for rule in parsed.rules.values() for example in rule.examples_match + rule.examples_no_match]
    assert examples
    for backend in ("durable", "python"):
        reused = Engine(cached, backend=backend)  # type: ignore[arg-type]
        assert reused.matcher.index is cached.dispatch_index
        fresh = Engine(parsed, backend=backend)  # type: ignore[arg-type]
        for example in examples:
            if example.reply:
                assert [d.diagnosis.to_dict() for d in reused.diagnose_text(example.reply, example.facts)] == \
                       [d.diagnosis.to_dict() for d in fresh.diagnose_text(example.reply, example.facts)]
            else:
                assert reused.diagnose(example.facts).to_dict() == fresh.diagnose(example.facts).to_dict()
    # A knowledge base whose rules changed after loading never matches with the old index.
    first = next(iter(cached.rules))
    changed = KnowledgeBase(rules={k: v for k, v in cached.rules.items() if k != first}, dispatch_index=cached.dispatch_index)
    assert Engine(changed).matcher.index is not cached.dispatch_index
