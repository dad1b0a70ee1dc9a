"""A cache of the loaded knowledge base, keyed by the rules' content.

Parsing YAML and validating schemas costs far more than a diagnosis; the CLI should start in a
blink. The first load after any change validates everything and pickles the result; later loads
read the pickle. Only error-free knowledge bases are cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from pathlib import Path

from .loader import KnowledgeBase, load_knowledge_base, rule_files
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
    digest = hashlib.sha256(f"{_FORMAT}|{sys.version_info[:2]}".encode())
    from . import model

    digest.update(Path(model.__file__).read_bytes())
    for name in ("rule", "facts", "translation"):
        digest.update(schema_path(name).read_bytes())
    for group in dirs:
        digest.update(f"\0group:{group.resolve()}".encode())
        for file in rule_files([group]):
            digest.update(f"\0{file}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:32]


def load_cached_knowledge_base(dirs: list[Path], use_cache: bool = True) -> KnowledgeBase:
    if not use_cache:
        return load_knowledge_base(dirs)
    target = cache_file(dirs)
    cached = read_cache_file(target)
    if cached is not None:
        return cached
    kb = load_knowledge_base(dirs)
    if not kb.errors:
        with contextlib.suppress(OSError):  # a read-only home only costs speed
            write_cache_file(kb, target)
    return kb


def cache_file(dirs: list[Path]) -> Path:
    """Where the cache of the knowledge base in `dirs` lives (it may not exist yet)."""
    return cache_dir() / f"kb-{content_key(dirs)}.pickle"


def read_cache_file(path: Path | str) -> KnowledgeBase | None:
    """The knowledge base in a cache file (priming the pattern analyses), or None if unusable."""
    try:
        with open(path, "rb") as handle:
            kb, analyses = pickle.load(handle)
        if isinstance(kb, KnowledgeBase) and isinstance(analyses, dict):
            prime_word_analyses(analyses)
            return kb
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    return None


def write_cache_file(kb: KnowledgeBase, path: Path) -> None:
    """Write the cache atomically (a reader never sees half a file); raises OSError."""
    import tempfile  # only when writing: a warm start never needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as temporary:
        pickle.dump((kb, _pattern_analyses(kb)), temporary, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary.name, path)


def _pattern_analyses(kb: KnowledgeBase) -> dict[str, WordAnalysis]:
    """The word analysis of every text pattern in the rules, so a warm start parses none."""
    patterns = {leaf.value for rule in kb.rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"}
    return word_analyses(sorted(patterns))
