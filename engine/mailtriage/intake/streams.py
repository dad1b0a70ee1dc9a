"""Records from a byte stream read once, in order: an upload or a pipe holding an mbox, a tar of a
maildir (plain or gzip), a zip of one, MTA log lines, or a single message.

What `iter_path_records` does for files, for bytes that arrive in chunks: at most one message
(capped at MAX_MESSAGE_BYTES) and one line (capped at MAX_LINE_BYTES) are held at a time, so a
client can send gigabytes and the reader's memory stays flat. A zip keeps its index at the end,
so it alone is spooled to a temporary file first (the caller caps the bytes it may send).

Nothing here raises for bad content: unreadable members, binary data or non-bounces come back as
SkippedInput with a reason. Errors of the stream itself (the caller's limits, a disconnect) raise
from the chunk iterator and pass through.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol

from ..errors import MailtriageError
from . import IntakeRecord, SkippedInput, detect_kind, parse_input
from .logs import parse_log_lines
from .ndr import MAX_MESSAGE_BYTES, parse_message

STREAM_KINDS = ("auto", "mbox", "maildir-tar", "maildir-zip", "log", "message")
MAX_LINE_BYTES = 64 * 1024  # a longer "line" is cut into pieces of this size
MAX_MBOX_MESSAGES = 1_000_000
MAX_REPLY_BYTES = 1_000_000
SNIFF_BYTES = 65_536
_TAR_MAGIC_OFFSET = 257

Item = IntakeRecord | SkippedInput


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks: Iterable[bytes], head: bytes = b"") -> None:
        self._chunks = iter(chunks)
        self._buffer = head

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def iter_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines (with their newline) of a chunked stream; a line longer than `max_line` comes out in
    pieces, so that no single line can hold the memory."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = pending + chunk if pending else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            while end + 1 - start > max_line:
                yield data[start : start + max_line]
                start += max_line
            yield data[start : end + 1]
            start = end + 1
        pending = data[start:]
        while len(pending) > max_line:
            yield pending[:max_line]
            pending = pending[max_line:]
    if pending:
        yield pending


def iter_mbox_messages(lines: Iterable[bytes], source: str) -> Iterator[Item]:
    """The records of an mbox read as lines (see `paths.mbox_records`, the one splitter)."""
    from .paths import mbox_records

    yield from mbox_records(lines, source)


def _looks_like_mbox(head: bytes) -> bool:
    from .paths import looks_like_mbox

    return looks_like_mbox(head)


def _is_binary(head: bytes) -> bool:
    from .paths import is_binary

    return is_binary(head)


def _read_capped(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the rest of the stream, and whether more followed (which is drained)."""
    parts: list[bytes] = []
    size = 0
    more = False
    for chunk in chunks:
        if size >= limit:
            more = True
            continue  # drain: the stream must be read to its end
        parts.append(chunk[: limit - size])
        more = more or len(chunk) > limit - size
        size += len(parts[-1])
    return b"".join(parts), more


def _iter_text_stream(head: bytes, rest: Iterator[bytes], source: str) -> Iterator[Item]:
    """One file's content (not an archive): mbox, log lines, one message or a pasted reply."""
    if not head.strip():
        for _ in rest:
            pass
        yield SkippedInput(source, "empty file")
        return
    if _is_binary(head):
        for _ in rest:
            pass
        yield SkippedInput(source, "binary data, not a message or log")
        return
    chunks = _prepend(head, rest)
    try:
        if _looks_like_mbox(head):
            yield from iter_mbox_messages(iter_lines(chunks), source)
            return
        kind = detect_kind(head)
        if kind == "log":
            lines = (line.decode("utf-8", "replace").rstrip("\r\n") for line in iter_lines(chunks))
            yield from parse_log_lines(lines, source=source)
            return
        if kind == "ndr":
            data, truncated = _read_capped(chunks, MAX_MESSAGE_BYTES)
            records = parse_message(data, source=source)
            for record in records:
                if truncated:
                    record.extra["truncated"] = True
                yield record
            if not records:
                note = f" (only the first {MAX_MESSAGE_BYTES // 1_048_576} MB read)" if truncated else ""
                yield SkippedInput(source, "not a bounce or delay notice" + note)
            return
        data, more = _read_capped(chunks, MAX_REPLY_BYTES)
        if more:
            yield SkippedInput(source, f"more than {MAX_REPLY_BYTES} bytes of text that is neither a message nor a log")
            return
        records = parse_input(data, kind="reply", source=source)
        yield from records
        if not records:
            yield SkippedInput(source, "no SMTP error found in the text")
    except MailtriageError as exc:
        yield SkippedInput(source, str(exc))


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _sniff(chunks: Iterator[bytes], size: int = SNIFF_BYTES) -> bytes:
    """At least `size` bytes from the start (fewer at the end of the stream)."""
    parts: list[bytes] = []
    total = 0
    while total < size:
        chunk = next(chunks, None)
        if chunk is None:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _member_chunks(handle: Readable, block: int = 65_536) -> Iterator[bytes]:
    while True:
        data = handle.read(block)
        if not data:
            return
        yield data


def _iter_member(handle: Readable, source: str) -> Iterator[Item]:
    chunks = _member_chunks(handle)
    head = _sniff(chunks)
    yield from _iter_text_stream(head, chunks, source)


def _hidden(name: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in name.split("/"))


def iter_tar_records(reader: IO[bytes], source: str) -> Iterator[Item]:
    """Every regular file of a tar stream (plain or compressed), read in stream mode: no
    extraction to disk, member names are only labels."""
    try:
        archive = tarfile.open(fileobj=reader, mode="r|*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield SkippedInput(source, f"not a readable tar archive ({exc})")
        return
    members = 0
    try:
        with archive:
            for member in archive:
                label = f"{source}/{member.name}"
                if member.isdir():
                    continue
                members += 1
                if not member.isfile():
                    yield SkippedInput(label, "not a regular file (link or device) in the archive")
                    continue
                if _hidden(member.name):
                    yield SkippedInput(label, "hidden file")
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    yield SkippedInput(label, "cannot read this archive member")
                    continue
                yield from _iter_member(handle, label)
            if not _compressed_stream_complete(archive):
                yield SkippedInput(source, f"tar archive cut short or damaged after {members} member(s) "
                                           "(the compressed stream ends before its end marker)")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        yield SkippedInput(source, f"tar archive cut short or damaged after {members} member(s) ({exc})")


_TAIL_LIMIT = 1 << 20


def _compressed_stream_complete(archive: tarfile.TarFile) -> bool:
    """False when a compressed tar stream stopped before its end-of-stream marker. tarfile's stream
    mode ends quietly when a cut falls on a 512-byte block boundary, so the decompressor is asked:
    the rest (end padding, at most 1 MiB read) is drained first. Uncompressed streams: True."""
    stream = archive.fileobj
    decompressor = getattr(stream, "cmp", None)
    if stream is None or decompressor is None or not hasattr(decompressor, "eof"):
        return True
    drained = 0
    while not decompressor.eof and drained < _TAIL_LIMIT:
        chunk = stream.read(65536)
        if not chunk:
            break
        drained += len(chunk)
    return bool(decompressor.eof) or drained >= _TAIL_LIMIT


def iter_zip_records(spooled: IO[bytes], source: str, max_expanded: int) -> Iterator[Item]:
    """Every regular file of a zip archive (seekable file), each read with the usual caps; stops
    when the expanded bytes pass `max_expanded` (a zip bomb)."""
    try:
        archive = zipfile.ZipFile(spooled)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield SkippedInput(source, f"not a readable zip archive ({exc})")
        return
    expanded = 0
    with archive:
        for info in archive.infolist():
            label = f"{source}/{info.filename}"
            if info.is_dir():
                continue
            if _hidden(info.filename):
                yield SkippedInput(label, "hidden file")
                continue
            if expanded + info.file_size > max_expanded:
                yield SkippedInput(label, f"the archive expands to more than {max_expanded} bytes; the rest not read")
                return
            expanded += info.file_size
            try:
                with archive.open(info) as handle:
                    yield from _iter_member(_Capped(handle, info.file_size), label)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError, EOFError) as exc:
                yield SkippedInput(label, f"cannot read this archive member ({exc})")


class _Capped:
    """Reads at most `limit` bytes: a member's declared size is all it may expand to."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        self._handle = handle
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(want)
        self._left -= len(data)
        return data


def sniff_stream_kind(head: bytes) -> str:
    """The STREAM_KINDS value the first bytes of an upload look like."""
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return "maildir-zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "maildir-tar"
    if head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "maildir-tar"
    if _looks_like_mbox(head):
        return "mbox"
    kind = detect_kind(head) if head.strip() else "message"
    return "log" if kind == "log" else "message"


def iter_stream_records(
    chunks: Iterable[bytes],
    kind: str = "auto",
    source: str = "<upload>",
    *,
    max_expanded: int = 4 * 1024**3,
    spool: Callable[[], IO[bytes]] | None = None,
) -> Iterator[Item]:
    """Records (and skip notes) of a stream of `kind` (see STREAM_KINDS; "auto" sniffs it).

    "message" also takes a pasted reply. Raises MailtriageError for an unknown kind.
    """
    if kind not in STREAM_KINDS:
        raise MailtriageError(f"unknown stream kind {kind!r}; use one of: {', '.join(STREAM_KINDS)}")
    stream = iter(chunks)
    # Decide on the first bytes that arrive (a streamed mbox must not wait for 64 KB before its
    # first record); text that is neither an mbox nor an archive needs a longer look.
    head = _sniff(stream, _TAR_MAGIC_OFFSET + 8)
    if kind == "auto":
        kind = sniff_stream_kind(head)
        if kind in ("log", "message"):
            head += _sniff(stream, SNIFF_BYTES - len(head))
            kind = sniff_stream_kind(head)
    elif kind in ("log", "message"):
        head += _sniff(stream, SNIFF_BYTES - len(head))
    if kind == "maildir-tar":
        yield from iter_tar_records(io.BufferedReader(ChunkReader(stream, head)), source)
        return
    if kind == "maildir-zip":
        with (spool or tempfile.TemporaryFile)() as handle:
            handle.write(head)
            for chunk in stream:
                handle.write(chunk)
            handle.seek(0)
            yield from iter_zip_records(handle, source, max_expanded)
        return
    if kind == "mbox":
        yield from iter_mbox_messages(iter_lines(_prepend(head, stream)), source)
        return
    if kind == "log":
        lines = (line.decode("utf-8", "replace").rstrip("\r\n") for line in iter_lines(_prepend(head, stream)))
        yield from parse_log_lines(lines, source=source)
        return
    yield from _iter_text_stream(head, stream, source)
