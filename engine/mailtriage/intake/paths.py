"""Walk files, folders, mbox files, maildirs and log files and read each input's records.

Nothing here raises for a bad input: every file is either read (its records, or a note that it
held none) or skipped with a reason, so a bulk scan accounts for every input instead of dying on
one. Folders are walked without recursion; symbolic links to folders are followed once (a loop
or a second route to the same folder is reported, not walked again); FIFOs, sockets and devices
are never opened for reading (a FIFO would block forever).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import INTERNAL_ERROR, MailtriageError
from . import UTF8_BOM, IntakeRecord, SkippedInput, detect_kind, parse_input
from .logs import MAX_LINE_CHARS, parse_log_lines
from .ndr import MAX_MESSAGE_BYTES, non_failure_kind, parse_message
from .trace import parse_trace, parse_trace_file, parse_trace_stream, sniff_trace

SNIFF_BYTES = 65_536
MAX_REPLY_FILE_BYTES = 1_000_000
MAX_MBOX_MESSAGES = 1_000_000
MAX_TRACE_STDIN_BYTES = 64 * 1024 * 1024  # a file is streamed; standard input is held, so capped
MAX_LOG_LINE_BYTES = MAX_LINE_CHARS * 4  # a longer line is cut there; the rest is never held

# Magic numbers of archives and other binary formats that may hold no NUL in their first bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip archive"),
    (b"PK\x05\x06", "zip archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"(\xb5/\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "7-zip archive"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"%PDF-", "PDF document"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"\x7fELF", "executable"),
    (b"MZ", "Windows executable"),
    (b"\xd0\xcf\x11\xe0", "Office document (OLE)"),
)


# Control bytes that text does not hold (tab, newlines, form feed and escape are text).
_CONTROL_BYTES = bytes(byte for byte in range(32) if byte not in (9, 10, 12, 13, 27))


def binary_kind(head: bytes) -> str | None:
    """What binary data `head` is ("zip archive", "binary data"), or None for text."""
    if not head:
        return None
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    sample = head[:8192]
    # A stray NUL or a few (a tool's padding at the end of a saved message) leave text text;
    # binary formats and UTF-16 have them throughout.
    if sample.count(b"\x00") > 2 + len(sample) // 1024:
        return "binary data"
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))  # C speed, not a byte loop
    if controls > len(sample) * 0.05:
        return "binary data"
    # Text in a legacy 8-bit encoding has a few invalid UTF-8 bytes; compressed or random data
    # has them everywhere.
    undecodable = sample.decode("utf-8", "replace").count("\ufffd")
    if undecodable > len(sample) * 0.1:
        return "binary data"
    return None


def looks_like_mbox(head: bytes) -> bool:
    """An mbox starts with a `From ` line, perhaps after a byte-order mark or blank lines."""
    return head.removeprefix(UTF8_BOM).lstrip(b"\r\n").startswith(b"From ")


def is_binary(head: bytes) -> bool:
    return binary_kind(head) is not None


def is_maildir(path: Path) -> bool:
    try:
        return (path / "cur").is_dir() and (path / "new").is_dir()
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    return f"cannot read: {exc.strerror or exc}"


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def walk(paths: Iterable[str]) -> Iterator[Path | SkippedInput]:
    """Every file a scan of `paths` reads, and a SkippedInput for every entry it does not, with
    the reason, in a stable order."""
    visited: set[tuple[int, int]] = set()  # folders walked, by (device, inode)
    for name in paths:
        if name == "":
            yield SkippedInput(name, "empty path")
            continue
        path = Path(name)
        try:
            info = path.stat()
        except FileNotFoundError:
            dangling = path.is_symlink()
            yield SkippedInput(name, "dangling symbolic link" if dangling else "no such file or directory")
            continue
        except OSError as exc:
            yield SkippedInput(name, _reason(exc))
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_folder(path, visited)
        elif stat.S_ISREG(info.st_mode):
            yield path
        else:
            yield SkippedInput(name, f"{_file_type(info.st_mode)}, not read")


def _walk_folder(top: Path, visited: set[tuple[int, int]]) -> Iterator[Path | SkippedInput]:
    """Depth-first, sorted, with an explicit stack: deep trees cannot exhaust Python's stack."""
    stack: list[Path] = [top]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError as exc:
            yield SkippedInput(str(folder), _reason(exc))
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            yield SkippedInput(str(folder), "folder already scanned (a symbolic link loop or a second link to it)")
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            yield SkippedInput(str(folder), f"cannot list folder: {exc.strerror or exc}")
            continue
        maildir = is_maildir(folder)
        subfolders: list[Path] = []
        for entry in entries:
            entry_path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symbolic links
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                yield SkippedInput(entry.path, _reason(exc))
                continue
            hidden = entry.name.startswith(".")
            if is_dir:
                if maildir and entry.name == "tmp":
                    # Messages still being written by the delivery agent: not finished mail.
                    waiting = _count_entries(entry_path)
                    if waiting:
                        yield SkippedInput(entry.path, f"maildir tmp/ folder: {waiting} message(s) still being delivered")
                elif hidden and not is_maildir(entry_path):
                    yield SkippedInput(entry.path, "hidden folder (not a maildir)")
                else:
                    # Maildir++ keeps each folder (.Bounces, .Sent) as a hidden maildir.
                    subfolders.append(entry_path)
                continue
            if hidden:
                yield SkippedInput(entry.path, "hidden file")
            elif maildir and not is_file:
                yield SkippedInput(entry.path, _not_a_file(entry_path))
            elif maildir:
                # A maildir's own files (dovecot-uidlist, subscriptions...) are not messages.
                yield SkippedInput(entry.path, "maildir control file (not a message)")
            elif is_file:
                yield entry_path
            else:
                yield SkippedInput(entry.path, _not_a_file(entry_path))
        stack.extend(reversed(subfolders))


def _count_entries(folder: Path) -> int:
    try:
        with os.scandir(folder) as listing:
            return sum(1 for entry in listing if not entry.name.startswith("."))
    except OSError:
        return 1  # unknown: still worth a note


def _not_a_file(path: Path) -> str:
    try:
        return f"{_file_type(path.stat().st_mode)}, not read"
    except FileNotFoundError:
        return "dangling symbolic link"
    except OSError as exc:
        return _reason(exc)


def _open_regular(path: Path) -> tuple[BinaryIO, int]:
    """Open a regular file without blocking (a FIFO swapped in after the walk must not hang
    us); returns the handle and the size. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, f"{_file_type(info.st_mode)}, not read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _log_lines(handle: BinaryIO) -> Iterator[str]:
    """Lines of a log, each cut at MAX_LOG_LINE_BYTES: memory stays bounded whatever the file."""
    while True:
        line = handle.readline(MAX_LOG_LINE_BYTES)
        if not line:
            return
        if not line.endswith(b"\n"):
            # Skip the rest of an over-long line without keeping it.
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = handle.readline(MAX_LOG_LINE_BYTES)
        yield line.rstrip(b"\r\n").decode("utf-8", "replace")


def iter_log_stream(handle: BinaryIO, source: str) -> Iterator[IntakeRecord | SkippedInput]:
    """Records of a log read line by line from `handle`, or one note if it held none."""
    found = False
    lines = 0

    def counted() -> Iterator[str]:
        nonlocal lines
        for line in _log_lines(handle):
            lines += 1
            yield line

    for record in parse_log_lines(counted(), source=source):
        found = True
        yield record
    if not found:
        yield SkippedInput(source, f"log read ({lines} line(s)): no failed or delayed delivery", read=True)


def _iter_mbox(path: str, handle: BinaryIO) -> Iterator[IntakeRecord | SkippedInput]:
    """The records of an mbox file: its lines, read at most a message's cap at a time."""
    yield from mbox_records(iter(lambda: handle.readline(MAX_MESSAGE_BYTES), b""), path)


def mbox_records(lines: Iterable[bytes], path: str) -> Iterator[IntakeRecord | SkippedInput]:
    """Split an mbox at `From ` lines that follow a blank line (or open it); cap each message.
    Sources are `PATH#N` (N counts messages from 1). The one splitter for files, standard input
    and uploads (`streams`)."""
    count = 0
    found = False
    cut = 0

    def flush(chunks: list[bytes], truncated: bool) -> Iterator[IntakeRecord | SkippedInput]:
        nonlocal found
        data = b"".join(chunks)
        if not data.strip():
            return
        source = f"{path}#{count}"
        try:
            records = parse_message(data, source=source)
        except MailtriageError as exc:
            yield SkippedInput(path, f"message {count}: {exc.message}", read=True)
            return
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
        if not count:
            line = line.removeprefix(UTF8_BOM)  # before the first From line
        if line.startswith(b"From ") and previous_blank:
            if count:
                yield from flush(chunks, truncated)
            count += 1
            if count > MAX_MBOX_MESSAGES:
                yield SkippedInput(path, f"more than {MAX_MBOX_MESSAGES} messages; the rest not read", read=True)
                return
            chunks, size, truncated = [], 0, False
            previous_blank = False
            continue
        previous_blank = not line.strip()
        if size + len(line) > MAX_MESSAGE_BYTES:
            if not truncated:
                cut += 1
            truncated = True
            continue
        chunks.append(line)
        size += len(line)
    if count:
        yield from flush(chunks, truncated)
    if not found:
        note = f"; {cut} message(s) cut at {MAX_MESSAGE_BYTES // 1_048_576} MB" if cut else ""
        yield SkippedInput(path, f"mbox with {count} message(s), none of them a bounce{note}", read=True)


def _not_a_failure(data: bytes) -> str:
    """Why a message gave no record: what it is instead, when that is recognisable."""
    kind = non_failure_kind(data)
    if kind == "complaint":
        return "a complaint (feedback-loop report), not a delivery failure"
    if kind == "auto-reply":
        return "an automatic reply (RFC 3834), not a delivery failure"
    if kind == "delivered":
        return "a delivery report whose every recipient was delivered (or found deliverable), not a failure"
    return "not a bounce or delay notice"


class _Rewound:
    """A stream whose first bytes were already read (to sniff the kind), served again first:
    standard input cannot seek."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        data = self._head.read(size)
        if size < 0:
            return data + self._rest.read()
        if len(data) < size:
            data += self._rest.read(size - len(data))
        return data

    def readline(self, limit: int = -1) -> bytes:
        line = self._head.readline(limit)
        if line.endswith(b"\n") or (limit > 0 and len(line) >= limit):
            return line
        return line + self._rest.readline(limit - len(line) if limit > 0 else -1)


def iter_stream_records(
    handle: BinaryIO, source: str, kind: str = "auto", size: int | None = None,
    reopen: Callable[[], BinaryIO] | None = None,
) -> Iterator[IntakeRecord | SkippedInput]:
    """Records of one input read from `handle` (a file, or standard input when `size` is None),
    in bounded memory: logs line by line, a message or a reply up to its cap, an mbox message by
    message. Records cut at the cap carry `extra["truncated"]`; an input with no record gives one
    SkippedInput saying why (and that it was cut, if it was). A trace export of known `size` is
    read again from the start through `reopen` (default: the file named `source`)."""
    head = handle.read(SNIFF_BYTES)
    if not head.strip():
        yield SkippedInput(source, ("empty file" if size is not None else "empty input") if not head else "only blank space")
        return
    if kind == "auto" and sniff_trace(head):
        # Before the binary test: the admin centre's trace downloads are UTF-16 (NUL bytes).
        if size is not None and reopen is not None:
            yield from parse_trace_stream(reopen, size, source)
        elif size is not None:
            yield from parse_trace_file(source)  # CSV streamed from the file
        else:
            data = _Rewound(head, handle).read(MAX_TRACE_STDIN_BYTES + 1)
            if len(data) > MAX_TRACE_STDIN_BYTES:
                yield SkippedInput(source, f"trace cut at {MAX_TRACE_STDIN_BYTES // 1_048_576} MB on standard input; "
                                   "give the file instead", read=True)
            yield from parse_trace(data[:MAX_TRACE_STDIN_BYTES], source=source)
        return
    binary = binary_kind(head)
    if binary is not None:
        yield SkippedInput(source, f"{binary}, not a message or log")
        return
    stream = _Rewound(head, handle)
    if kind == "auto" and looks_like_mbox(head):
        yield from _iter_mbox(source, stream)  # type: ignore[arg-type]
        return
    if kind == "auto":
        kind = detect_kind(head)
    if kind == "log":
        yield from iter_log_stream(stream, source)  # type: ignore[arg-type]
        return
    limit = MAX_MESSAGE_BYTES if kind == "ndr" else MAX_REPLY_FILE_BYTES
    if kind != "ndr" and size is not None and size > MAX_REPLY_FILE_BYTES:
        yield SkippedInput(source, f"{size} bytes of text that is neither a message nor a log")
        return
    data = stream.read(limit + 1)
    truncated = len(data) > limit
    cut = f" (only the first {limit // 1_048_576 or 1} MB read)" if truncated else ""
    if kind == "ndr":
        records = parse_message(data[:limit], source=source)
    else:
        records = parse_input(data[:limit], kind="reply", source=source)
    for record in records:
        if truncated:
            record.extra["truncated"] = True
        yield record
    if not records:
        reason = _not_a_failure(data[:limit]) if kind == "ndr" else "no SMTP error found in the text"
        yield SkippedInput(source, reason + cut, read=True)


def _iter_file(path: Path, kind: str = "auto") -> Iterator[IntakeRecord | SkippedInput]:
    try:
        handle, size = _open_regular(path)
    except OSError as exc:
        yield SkippedInput(str(path), exc.strerror if exc.errno == 0 and exc.strerror else _reason(exc))
        return
    with handle:
        yield from iter_stream_records(handle, str(path), kind, size)


def read_file(path: Path, kind: str = "auto") -> Iterator[IntakeRecord | SkippedInput]:
    """Records of one file, or notes saying why there are none. Never raises for the input: an
    unexpected error while reading one file becomes a note (with "internal error") so that
    the other files are still read."""
    yield from _accounted(_iter_file(path, kind), str(path))


def iter_bytes_records(data: bytes, source: str) -> Iterator[IntakeRecord | SkippedInput]:
    """The records of one file's content already in memory (Spark's binaryFile rows), read and
    accounted for exactly as `read_file` reads the file itself; `source` names it."""
    items = iter_stream_records(io.BytesIO(data), source, "auto", len(data), reopen=lambda: io.BytesIO(data))
    yield from _accounted(items, source)


def _accounted(items: Iterator[IntakeRecord | SkippedInput], source: str) -> Iterator[IntakeRecord | SkippedInput]:
    try:
        yield from items
    except OSError as exc:
        yield SkippedInput(source, _reason(exc))
    except MailtriageError as exc:
        yield SkippedInput(source, exc.message, read=True)
    except (RecursionError, MemoryError) as exc:
        yield SkippedInput(source, f"too complex to read ({type(exc).__name__})", read=True)
    except Exception as exc:  # one broken input must not end a bulk scan
        yield SkippedInput(source, f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"[:300], read=True)


def iter_path_records(paths: Iterable[str]) -> Iterator[IntakeRecord | SkippedInput]:
    """Records (or notes) for every file under the given paths, in a stable order."""
    for item in walk(paths):
        if isinstance(item, SkippedInput):
            yield item
        else:
            yield from read_file(item)


def iter_files(paths: Iterable[str]) -> Iterator[str]:
    """The files a scan of `paths` reads, for splitting the work between processes (the entries
    it skips come from `walk`)."""
    for item in walk(paths):
        if not isinstance(item, SkippedInput):
            yield str(item)
