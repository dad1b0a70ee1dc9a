"""A cache of the loaded knowledge base, keyed by the rules' content.

Parsing YAML and validating schemas costs far more than a diagnosis; the CLI should start in a
blink. The first load after any change validates everything and pickles the result; later loads
read the pickle. Only error-free knowledge bases are cached.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

from .loader import KnowledgeBase, load_knowledge_base
from .model import iter_leaves
from .resources import schema_path
from .textmatch import WordAnalysis, prime_word_analyses, word_analyses

CACHE_ENV = "MAILTRIAGE_CACHE_DIR"
_FORMAT = "2"  # 2: the pickle holds (knowledge base, pattern word analyses)


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mailtriage"


def content_key(dirs: list[Path]) -> str:
    """A key that changes whenever the rules, the schemas or the code that shapes the cache do.

    Checked on every start, so it reads file metadata, not contents (hashing 450 rule files cost
    ~25 ms of a ~280 ms command): path, size, modification and status-change times and inode of
    each file. Any edit, copy, checkout or `touch` changes the status-change time, which no tool
    can set back, so a changed file is never mistaken for the cached one."""
    digest = hashlib.sha256(f"{_FORMAT}|{sys.version_info[:2]}".encode())
    from . import model

    stamps = [_stamp(Path(model.__file__)), *(_stamp(schema_path(name)) for name in ("rule", "facts", "translation"))]
    for group in dirs:
        stamps.append(f"\0group:{group.resolve()}")
        if group.is_file():
            stamps.append(_stamp(group))
        else:
            stamps.extend(sorted(_yaml_stamps(str(group), in_schema=False)))
    digest.update("\n".join(stamps).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


def _stamp(path: Path | str, stat: os.stat_result | None = None) -> str:
    try:
        info = stat or os.stat(path)
    except OSError:
        return f"{path}\0missing"
    return f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ctime_ns}\0{info.st_ino}"


def _yaml_stamps(folder: str, in_schema: bool) -> list[str]:
    """Stamps of the rule files under `folder`, as `loader.rule_files` selects them (YAML files,
    not under a `schema` folder)."""
    stamps = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return [f"{folder}\0unreadable"]
    for entry in entries:
        if entry.is_dir():
            stamps.extend(_yaml_stamps(entry.path, in_schema or entry.name == "schema"))
        elif not in_schema and entry.name.endswith((".yaml", ".yml")):
            try:
                stamps.append(_stamp(entry.path, entry.stat()))
            except OSError:
                stamps.append(f"{entry.path}\0missing")
    return stamps


def load_cached_knowledge_base(dirs: list[Path], use_cache: bool = True) -> KnowledgeBase:
    if not use_cache:
        return load_knowledge_base(dirs)
    key = content_key(dirs)
    target = cache_dir() / f"kb-{key}.pickle"
    try:
        with open(target, "rb") as handle:
            kb, analyses = pickle.load(handle)
        if isinstance(kb, KnowledgeBase) and isinstance(analyses, dict):
            prime_word_analyses(analyses)
            return kb
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    kb = load_knowledge_base(dirs)
    if not kb.errors:
        import tempfile  # only when writing: a warm start never needs it

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=target.parent, delete=False) as temporary:
                pickle.dump((kb, _pattern_analyses(kb)), temporary, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary.name, target)
        except OSError:
            pass  # a read-only home only costs speed
    return kb


def _pattern_analyses(kb: KnowledgeBase) -> dict[str, WordAnalysis]:
    """The word analysis of every text pattern in the rules, so a warm start parses none."""
    patterns = {leaf.value for rule in kb.rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"}
    return word_analyses(sorted(patterns))
