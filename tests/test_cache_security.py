"""A cache file someone else could have written is never unpickled: planted pickles never run,
folders of another user or open to others are refused, and there is no relative fallback."""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from conftest import DATA
from mailtriage import cache
from mailtriage.cache import cache_dir, content_key, load_cached_knowledge_base


class RunsCode:
    """Unpickling this creates the marker file (what a planted cache file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DATA / "lint" / "valid", target)
    return target


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "cache"
    monkeypatch.setenv("MAILTRIAGE_CACHE_DIR", str(target))
    return target


def plant(folder: Path, key: str, marker: Path, header: bytes = b"") -> Path:
    target = folder / f"kb-{key}.pickle"
    target.write_bytes(header + pickle.dumps(RunsCode(marker)))
    target.chmod(0o600)
    return target


def test_the_planted_pickle_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsCode(marker)))  # what the old cache did with a planted file
    assert marker.exists()


@pytest.mark.parametrize("with_forged_header", [False, True])
def test_a_planted_cache_file_is_never_unpickled(rules_dir: Path, folder: Path, tmp_path: Path, with_forged_header: bool) -> None:
    load_cached_knowledge_base([rules_dir])  # creates the folder, the secret and a good file
    marker = tmp_path / "ran"
    # A forged header: the right magic and a MAC made with a guessed (all-zero) secret.
    header = b""
    if with_forged_header:
        payload = pickle.dumps(RunsCode(marker))
        header = cache._MAGIC + cache._mac(bytes(cache._KEY_BYTES), payload)
    plant(folder, content_key([rules_dir]), marker, header)
    kb = load_cached_knowledge_base([rules_dir])
    assert kb.rules and not kb.errors
    assert not marker.exists()


def test_the_cache_folder_and_secret_are_private(rules_dir: Path, folder: Path) -> None:
    load_cached_knowledge_base([rules_dir])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / cache._KEY_FILE).stat().st_mode) == 0o600
    files = list(folder.glob("kb-*.pickle"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_a_folder_others_can_write_is_never_used(rules_dir: Path, folder: Path, tmp_path: Path) -> None:
    folder.mkdir()
    folder.chmod(0o777)
    marker = tmp_path / "ran"
    (folder / cache._KEY_FILE).write_bytes(bytes(cache._KEY_BYTES))  # a secret someone chose
    (folder / cache._KEY_FILE).chmod(0o600)
    payload = pickle.dumps(RunsCode(marker))
    target = folder / f"kb-{content_key([rules_dir])}.pickle"
    target.write_bytes(cache._MAGIC + cache._mac(bytes(cache._KEY_BYTES), payload) + payload)
    target.chmod(0o600)
    kb = load_cached_knowledge_base([rules_dir])
    assert kb.rules and not kb.errors
    assert not marker.exists()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777  # left alone, not adopted
    assert sorted(p.name for p in folder.iterdir()) == sorted([cache._KEY_FILE, target.name])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_folder_of_another_user_is_never_used(rules_dir: Path, folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    folder.mkdir(mode=0o700)
    secret = bytes(range(cache._KEY_BYTES))
    (folder / cache._KEY_FILE).write_bytes(secret)
    payload = pickle.dumps(RunsCode(marker))
    target = folder / f"kb-{content_key([rules_dir])}.pickle"
    target.write_bytes(cache._MAGIC + cache._mac(secret, payload) + payload)
    for path in (folder, folder / cache._KEY_FILE, target):
        os.chown(path, 65534, 65534)
    kb = load_cached_knowledge_base([rules_dir])
    assert kb.rules and not kb.errors
    assert not marker.exists()


def test_a_cache_file_that_is_a_symlink_is_not_followed(rules_dir: Path, folder: Path, tmp_path: Path) -> None:
    load_cached_knowledge_base([rules_dir])
    marker = tmp_path / "ran"
    elsewhere = tmp_path / "elsewhere.pickle"
    elsewhere.write_bytes(pickle.dumps(RunsCode(marker)))
    target = folder / f"kb-{content_key([rules_dir])}.pickle"
    target.unlink()
    target.symlink_to(elsewhere)
    assert load_cached_knowledge_base([rules_dir]).rules
    assert not marker.exists()


def test_no_relative_fallback_without_home_or_passwd_entry(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HOME unset and a uid with no passwd entry: never `./~/.cache` under the working folder."""
    work = tmp_path / "work"
    planted = work / "~" / ".cache" / "mailtriage"
    planted.mkdir(parents=True, mode=0o700)
    marker = tmp_path / "ran"
    plant(planted, content_key([rules_dir]), marker)
    monkeypatch.chdir(work)
    for name in ("HOME", "XDG_CACHE_HOME", "MAILTRIAGE_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    where = cache_dir()
    assert where is not None and where.is_absolute()
    assert where == temporary / f"mailtriage-{os.getuid()}"
    kb = load_cached_knowledge_base([rules_dir])
    assert kb.rules and not marker.exists()
    assert stat.S_IMODE(where.stat().st_mode) == 0o700 and list(where.glob("kb-*.pickle"))
    assert sorted(p.name for p in planted.iterdir()) == [f"kb-{content_key([rules_dir])}.pickle"]  # untouched


def test_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MAILTRIAGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "mailtriage"
