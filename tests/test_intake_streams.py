"""Stream intake (what `POST /v1/scan` reads): the same records as the file scan whatever the
chunking, bounded lines, archive members accounted for, and no exception on hostile bytes."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.intake import IntakeRecord, SkippedInput
from mailtriage.intake.paths import iter_path_records
from mailtriage.intake.streams import iter_lines, iter_stream_records, sniff_stream_kind

DATA = Path(__file__).resolve().parent / "data" / "intake"
MBOX = (DATA / "bounces.mbox").read_bytes()


def _chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    out, start = [], 0
    for size in sizes:
        if start >= len(data):
            break
        out.append(data[start : start + size])
        start += size
    if start < len(data):
        out.append(data[start:])
    return out


def _summary(items: list[IntakeRecord | SkippedInput]) -> list[tuple[str, ...]]:
    return [
        (item.source.rsplit("#", 1)[-1], item.recipient or "", str(item.facts.get("smtp.enhanced")))
        if isinstance(item, IntakeRecord) else ("skipped", item.reason)
        for item in items
    ]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=40))
def test_mbox_stream_gives_the_file_scan_records_whatever_the_chunking(sizes: list[int]) -> None:
    streamed = list(iter_stream_records(_chunked(MBOX, sizes), source="box"))
    from_file = list(iter_path_records([str(DATA / "bounces.mbox")]))
    assert _summary(streamed) == _summary(from_file)
    assert any(isinstance(item, IntakeRecord) for item in streamed)


def test_lines_are_cut_at_the_cap_and_keep_every_byte() -> None:
    data = b"short\n" + b"x" * 25 + b"\nend"
    lines = list(iter_lines([data[:7], data[7:20], data[20:]], max_line=10))
    assert b"".join(lines) == data
    assert max(len(line) for line in lines) <= 10
    assert lines[0] == b"short\n" and lines[-1] == b"end"


def test_kinds_are_sniffed_from_the_first_bytes() -> None:
    assert sniff_stream_kind(MBOX[:300]) == "mbox"
    assert sniff_stream_kind(b"PK\x03\x04rest") == "maildir-zip"
    assert sniff_stream_kind(b"\x1f\x8b\x08rest") == "maildir-tar"
    assert sniff_stream_kind((DATA / "postfix.log").read_bytes()) == "log"
    assert sniff_stream_kind((DATA / "dsn-rfc3464.eml").read_bytes()) == "message"


def test_tar_members_that_are_not_regular_files_are_skipped_with_a_reason() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(DATA / "dsn-rfc3464.eml", arcname="Maildir/new/1.eml")
        link = tarfile.TarInfo("Maildir/new/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    items = list(iter_stream_records([buffer.getvalue()], source="up"))
    assert any(isinstance(i, IntakeRecord) and i.source == "up/Maildir/new/1.eml" for i in items)
    assert SkippedInput("up/Maildir/new/link", "not a regular file (link or device) in the archive") in items


def test_a_zip_that_expands_past_the_cap_stops_with_a_reason() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.eml", (DATA / "dsn-rfc3464.eml").read_bytes())
        archive.writestr("bomb.txt", b"0" * 2_000_000)
    items = list(iter_stream_records([buffer.getvalue()], source="z", max_expanded=100_000))
    assert any(isinstance(i, IntakeRecord) for i in items)
    assert any(isinstance(i, SkippedInput) and i.source == "z/bomb.txt" and "expands to more than" in i.reason for i in items)


def test_a_cut_archive_is_reported_not_raised() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(DATA / "maildir", arcname="Maildir")
    data = buffer.getvalue()
    # Wherever the cut falls (inside a member, on a 512-byte block boundary of the tar inside the
    # gzip stream, before the end blocks), the last item says the archive was cut: nothing is lost
    # silently. The gzip trailer's last bytes (CRC and size) carry no data and are left out.
    for cut in range(len(data) // 4, len(data) - 12, 23):
        items = list(iter_stream_records([data[:cut]], kind="maildir-tar", source="t"))
        assert isinstance(items[-1], SkippedInput) and "cut short or damaged" in items[-1].reason, cut
    whole = list(iter_stream_records([data], kind="maildir-tar", source="t"))
    assert not any(isinstance(item, SkippedInput) and "cut short" in item.reason for item in whole)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=8), st.sampled_from(["auto", "mbox", "maildir-tar", "maildir-zip", "log", "message"]))
def test_hostile_bytes_never_raise(chunks: list[bytes], kind: str) -> None:
    items = list(iter_stream_records(chunks, kind=kind, source="fuzz", max_expanded=1_000_000))
    assert all(isinstance(item, IntakeRecord | SkippedInput) for item in items)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([b"From x\n", b"\x1f\x8b\x08\x00", b"PK\x03\x04", b""]))
def test_hostile_bytes_behind_a_real_magic_never_raise(tail: bytes, magic: bytes) -> None:
    list(iter_stream_records([magic + tail], source="fuzz", max_expanded=1_000_000))
