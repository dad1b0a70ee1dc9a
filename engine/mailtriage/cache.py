"""A cache of the loaded knowledge base, keyed by the rules' content.

Parsing YAML and validating schemas costs far more than a diagnosis; the CLI should start in a
blink. The first load after any change validates everything and pickles the result; later loads
read the pickle. Only error-free knowledge bases are cached.

Unpickling runs code named by the file, so a cache file is read only when nobody else could
have written it: the cache folder must belong to the user with no access for anyone else (0700;
a folder that is not is ignored, never used), and every file carries a keyed hash (BLAKE2b) with
a per-user secret kept in that folder (0600), checked before anything is unpickled. There is no
relative fallback: without a home folder the cache lives in a per-user folder under the system's
temporary folder, with the same checks.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import stat
import sys
from pathlib import Path

from .loader import KnowledgeBase, load_knowledge_base
from .model import iter_leaves
from .resources import schema_path
from .textmatch import WordAnalysis, plan_alternatives, prime_word_analyses, word_analyses
from .textsafe import text_bytes

CACHE_ENV = "MAILTRIAGE_CACHE_DIR"
_FORMAT = "5"  # 5: Leaf.negated; 4: keyed-hash header + pickle of (knowledge base, pattern word analyses, pattern splits)
_MAGIC = b"mailtriage-kb-4\n"
_KEY_FILE = "secret.key"
_KEY_BYTES = 32
_MAC_BYTES = 32


def cache_dir() -> Path | None:
    """The cache folder, always absolute; None when there is no safe place to name."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "mailtriage"
    home = _home()
    if home is not None:
        return home / ".cache" / "mailtriage"
    if hasattr(os, "getuid"):
        import tempfile

        return Path(tempfile.gettempdir()) / f"mailtriage-{os.getuid()}"
    return None


def _home() -> Path | None:
    """The user's home folder if it is known and absolute (`~` is never taken literally)."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return Path(home)
    if hasattr(os, "getuid"):
        import pwd

        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:  # a uid without a passwd entry, as containers often run
            return None
        return Path(home) if os.path.isabs(home) else None
    return None


def private_dir(create: bool) -> Path | None:
    """The cache folder if it is safe to trust: a real folder (not a symlink) owned by this user
    that no one else can enter. Created 0700 when missing and `create`. None otherwise."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        if not create:
            return None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700)
            info = os.lstat(folder)
        except OSError:
            return None
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    if hasattr(os, "getuid"):
        if info.st_uid != os.getuid():
            return None
        if info.st_mode & 0o022:
            return None  # others could have written into it: never trust it
        if info.st_mode & 0o077:
            # Ours and writable by us alone (an older version made it 0755): close it.
            try:
                os.chmod(folder, 0o700)
            except OSError:
                return None
    return folder


def _open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """A descriptor for `path` that is a regular file of ours, readable by us alone (no symlink
    followed). Raises OSError otherwise."""
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077)):
            raise PermissionError(f"{path}: not a private file of this user")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _secret(folder: Path, create: bool) -> bytes | None:
    """This user's cache secret (created on first write), or None."""
    path = folder / _KEY_FILE
    try:
        fd = _open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        if not create:
            return None
        try:
            fd = _open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except OSError:
            return None
        with os.fdopen(fd, "wb") as handle:
            key = os.urandom(_KEY_BYTES)
            handle.write(key)
        return key
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        key = handle.read(_KEY_BYTES + 1)
    return key if len(key) == _KEY_BYTES else None


def _mac(key: bytes, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=key, digest_size=_MAC_BYTES).digest()


def content_key(dirs: list[Path]) -> str:
    """A key that changes whenever the rules, the schemas or the code that shapes the cache do.

    Checked on every start, so it reads file metadata, not contents (hashing 450 rule files cost
    ~25 ms of a ~280 ms command): path, size, modification and status-change times and inode of
    each file. Any edit, copy, checkout or `touch` changes the status-change time, which no tool
    can set back, so a changed file is never mistaken for the cached one."""
    digest = hashlib.sha256(f"{_FORMAT}|{sys.version_info[:2]}".encode())
    # The modules whose objects are pickled (rules, the dispatch index, word finders) or shape them.
    here = Path(__file__).parent
    stamps = [*(_stamp(here / f"{name}.py") for name in ("model", "loader", "matching", "textmatch", "facts")),
              *(_stamp(schema_path(name)) for name in ("rule", "facts", "translation"))]
    for group in dirs:
        stamps.append(f"\0group:{group.resolve()}")
        if group.is_file():
            stamps.append(_stamp(group))
        else:
            stamps.extend(sorted(_yaml_stamps(str(group), in_schema=False)))
    digest.update(text_bytes("\n".join(stamps)))
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
    cached = _read(key)
    if cached is not None:
        return cached
    kb = load_knowledge_base(dirs)
    if not kb.errors:
        _write(key, kb)
    return kb


def _read(key: str) -> KnowledgeBase | None:
    """The cached knowledge base, if the file is ours and its keyed hash checks out."""
    folder = private_dir(create=False)
    if folder is None:
        return None
    secret = _secret(folder, create=False)
    if secret is None:
        return None
    try:
        fd = _open_private(folder / f"kb-{key}.pickle", os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return unseal_knowledge_base(data, secret)


def _write(key: str, kb: KnowledgeBase) -> None:
    folder = private_dir(create=True)
    if folder is None:
        return  # no safe place: only costs speed
    secret = _secret(folder, create=True)
    if secret is None:
        return
    import tempfile  # only when writing: a warm start never needs it

    data = seal_knowledge_base(kb, secret)
    try:
        with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False) as temporary:  # created 0600
            temporary.write(data)
        os.replace(temporary.name, folder / f"kb-{key}.pickle")
    except OSError:
        pass  # a read-only home only costs speed


def seal_knowledge_base(kb: KnowledgeBase, key: bytes) -> bytes:
    """A cache file's bytes for `kb`: a header with a keyed hash under `key`, then the pickle.
    Also how a Spark job ships the compiled rules to its workers, under a key of its own."""
    from .matching import DispatchIndex
    from .model import Status

    # The dispatch index of the active rules travels with them (building it was most of Engine()).
    kb.dispatch_index = DispatchIndex(r for r in kb.rules.values() if r.status is not Status.DEPRECATED)
    payload = pickle.dumps((kb, *_pattern_analyses(kb)), protocol=pickle.HIGHEST_PROTOCOL)
    return _MAGIC + _mac(key, payload) + payload


def unseal_knowledge_base(data: bytes, key: bytes) -> KnowledgeBase | None:
    """The knowledge base in `seal_knowledge_base` bytes (priming the pattern analyses), or None;
    nothing is unpickled unless the keyed hash under `key` checks out."""
    header = len(_MAGIC) + _MAC_BYTES
    if not data.startswith(_MAGIC) or len(data) <= header:
        return None
    payload = data[header:]
    if not hmac.compare_digest(data[len(_MAGIC):header], _mac(key, payload)):
        return None  # not written by us with this secret: never unpickled
    try:
        kb, analyses, splits = pickle.loads(payload)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None  # ours, but from an incompatible version of the code
    if isinstance(kb, KnowledgeBase) and isinstance(analyses, dict) and isinstance(splits, dict):
        prime_word_analyses(analyses, splits)
        return kb
    return None


def _pattern_analyses(kb: KnowledgeBase) -> tuple[dict[str, WordAnalysis], dict[str, list[str] | None]]:
    """The word analysis of every text pattern in the rules and of its top-level alternatives, and
    how each is split, so that a warm start (or a scan building its PatternSet) parses none."""
    patterns = sorted({leaf.value for rule in kb.rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"})
    splits = {pattern: plan_alternatives(pattern) for pattern in patterns}
    parts = {part for alternatives in splits.values() for part in alternatives or ()}
    return word_analyses(sorted(set(patterns) | parts)), splits
