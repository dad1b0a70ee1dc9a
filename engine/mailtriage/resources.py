"""Where the bundled knowledge base and its schemas live, in a checkout and in an installed wheel."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_RULE_FILE_BYTES = 512 * 1024

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_rules_dir() -> Path:
    """The bundled rules: `mailtriage/_rules` in a wheel, `rules/` at the top of a checkout."""
    installed = _PACKAGE_DIR / "_rules"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent.parent / "rules"


def schema_path(name: str) -> Path:
    """Path of one of the bundled JSON Schemas (`rule`, `facts`, `translation`)."""
    return bundled_rules_dir() / "schema" / f"{name}.schema.json"


class FileTooLarge(OSError):
    """A file over the size cap: refused before it is read (or hashed) whole."""


class NotARegularFile(OSError):
    """A FIFO, device or folder where a file was expected: reading it could block forever."""


def read_capped(path: str | os.PathLike[str], limit: int = MAX_RULE_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; raises FileTooLarge, NotARegularFile
    or OSError. Opened without blocking, so that a FIFO named like a rule file cannot hang us,
    and sized before reading, so that a 3 GB sparse file costs nothing."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{os.fspath(path)} is not a regular file")
        if info.st_size > limit:
            raise FileTooLarge(f"file is larger than {limit} bytes ({info.st_size})")
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise FileTooLarge(f"file is larger than {limit} bytes")
    return raw
