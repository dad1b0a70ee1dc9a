"""Walk files, folders, mbox files, maildirs and log files and read each input's records.

Nothing here raises for a bad input: unreadable, empty, binary or oversized inputs come back as
SkippedInput with a reason, so a bulk scan reports them instead of dying on them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import MailtriageError
from . import IntakeRecord, SkippedInput, detect_kind, parse_input
from .logs import parse_log_lines
from .ndr import MAX_MESSAGE_BYTES, parse_message
from .trace import parse_trace_stream, sniff_trace

SNIFF_BYTES = 65_536
MAX_REPLY_FILE_BYTES = 1_000_000
MAX_MBOX_MESSAGES = 1_000_000


def is_binary(head: bytes) -> bool:
    """Text files have no NUL bytes and few control characters."""
    if not head:
        return False
    if b"\x00" in head[:8192]:
        return True
    sample = head[:8192]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13, 27))
    return controls > len(sample) * 0.1


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _files_under(path: Path) -> Iterator[Path]:
    if is_maildir(path):
        for sub in ("new", "cur"):
            yield from sorted(p for p in (path / sub).iterdir() if p.is_file() and not p.name.startswith("."))
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        root_path = Path(root)
        if root_path != path and is_maildir(root_path):
            dirs[:] = []
            yield from _files_under(root_path)
            continue
        for name in sorted(files):
            if not name.startswith("."):
                yield root_path / name


def _iter_mbox(lines: Iterable[bytes], name: str) -> Iterator[IntakeRecord | SkippedInput]:
    """Split an mbox at `From ` lines that follow a blank line (or open the file); cap each message."""
    count = 0
    found = False

    def flush(chunks: list[bytes], truncated: bool) -> Iterator[IntakeRecord | SkippedInput]:
        nonlocal found
        data = b"".join(chunks)
        if not data.strip():
            return
        source = f"{name}#{count}"
        records = parse_message(data, source=source)
        for record in records:
            if truncated:
                record.extra["truncated"] = True
            found = True
            yield record

    chunks: list[bytes] = []
    size = 0
    truncated = False
    previous_blank = True
    for line in lines:
        if line.startswith(b"From ") and previous_blank:
            if count:
                yield from flush(chunks, truncated)
            count += 1
            if count > MAX_MBOX_MESSAGES:
                yield SkippedInput(name, f"more than {MAX_MBOX_MESSAGES} messages; the rest not read")
                return
            chunks, size, truncated = [], 0, False
            previous_blank = False
            continue
        previous_blank = not line.strip()
        if size + len(line) > MAX_MESSAGE_BYTES:
            truncated = True
            continue
        chunks.append(line)
        size += len(line)
    if count:
        yield from flush(chunks, truncated)
    if not found:
        yield SkippedInput(name, f"mbox with {count} message(s), none of them a bounce")


def _iter_file(path: Path) -> Iterator[IntakeRecord | SkippedInput]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        yield SkippedInput(str(path), f"cannot read: {exc.strerror or exc}")
        return

    def reopen() -> BinaryIO:
        return open(path, "rb")  # the caller closes it

    yield from _iter_content(head, size, str(path), reopen)


def iter_bytes_records(data: bytes, source: str) -> Iterator[IntakeRecord | SkippedInput]:
    """The records of one file's content already in memory (Spark's binaryFile rows), read exactly as
    a scan reads the file itself; `source` names it in the records."""
    yield from _iter_content(data[:SNIFF_BYTES], len(data), source, lambda: io.BytesIO(data))


def _iter_content(
    head: bytes, size: int, name: str, reopen: Callable[[], BinaryIO]
) -> Iterator[IntakeRecord | SkippedInput]:
    """Records of one input, given its first bytes, its size and a way to read it from the start."""
    if not head.strip():
        yield SkippedInput(name, "empty file")
        return
    try:
        # Before the binary test: the admin centre's trace downloads are UTF-16 (NUL bytes).
        if sniff_trace(head):
            yield from parse_trace_stream(reopen, size, name)
            return
    except OSError as exc:
        yield SkippedInput(name, f"cannot read: {exc.strerror or exc}")
        return
    if is_binary(head):
        yield SkippedInput(name, "binary data, not a message or log")
        return
    try:
        if head.startswith(b"From "):
            with reopen() as handle:
                yield from _iter_mbox(handle, name)
            return
        kind = detect_kind(head)
        if kind == "log":
            # The same newline and decoding rules as open(path, encoding=..., errors=...).
            with io.TextIOWrapper(reopen(), encoding="utf-8", errors="replace") as text:
                yield from parse_log_lines((line.rstrip("\n") for line in text), source=name)
            return
        if kind == "ndr":
            with reopen() as handle:
                data = handle.read(MAX_MESSAGE_BYTES + 1)
            records = parse_message(data, source=name)
            truncated = size > MAX_MESSAGE_BYTES
            for record in records:
                if truncated:
                    record.extra["truncated"] = True
                yield record
            if not records:
                note = f" (only the first {MAX_MESSAGE_BYTES // 1_048_576} MB read)" if truncated else ""
                yield SkippedInput(name, "not a bounce or delay notice" + note)
            return
        if size > MAX_REPLY_FILE_BYTES:
            yield SkippedInput(name, f"{size} bytes of text that is neither a message nor a log")
            return
        with reopen() as handle:
            records = parse_input(handle.read(), kind="reply", source=name)
        yield from records
        if not records:
            yield SkippedInput(name, "no SMTP error found in the text")
    except OSError as exc:
        yield SkippedInput(name, f"cannot read: {exc.strerror or exc}")
    except MailtriageError as exc:
        yield SkippedInput(name, str(exc))
    except RecursionError:
        # The standard library's MIME code recurses once per nesting level.
        yield SkippedInput(name, "MIME structure nested too deeply to read")


def iter_path_records(paths: Iterable[str]) -> Iterator[IntakeRecord | SkippedInput]:
    """Records (or skip notes) for every file under the given paths, in a stable order."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for file in _files_under(path):
                yield from _iter_file(file)
        elif path.exists():
            yield from _iter_file(path)
        else:
            yield SkippedInput(name, "no such file or directory")


def iter_files(paths: Iterable[str]) -> Iterator[str]:
    """The files a scan of `paths` reads, for splitting the work between processes."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for file in _files_under(path):
                yield str(file)
        else:
            yield name
