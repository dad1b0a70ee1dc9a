"""Follow growing MTA logs and folders where traces or NDRs land; alert when an incident starts,
grows past a threshold, or ends.

One alert per incident and state change: `started` (its first failure, or the first after it
ended), `grew` (its failures reached the threshold), `ended` (no failure for the quiet period).
Read positions and incident states live in a small SQLite file, so a restart goes on where it
stopped and never alerts twice for the same state. A rotated log (new inode, or a file shorter than
the position read) is read from its start.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import MailtriageError
from ..textsafe import json_text, visible
from .group import IncidentGrouper

if TYPE_CHECKING:
    from ..engine import Engine
    from ..intake import IntakeRecord

MAX_READ_PER_POLL = 64 * 1024 * 1024  # a huge backlog is read over several polls
MAX_LINE = 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (path TEXT PRIMARY KEY, inode INTEGER, offset INTEGER);
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, records INTEGER NOT NULL,
    last_record REAL NOT NULL, grew INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class Alert:
    event: str  # started | grew | ended
    incident: dict[str, Any]
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)), **self.incident}


AlertSink = Callable[[Alert], None]


def stdout_sink(stream: TextIO | None = None) -> AlertSink:
    def send(alert: Alert) -> None:
        out = stream or sys.stdout
        out.write(json_text(alert.to_dict(), indent=None) + "\n")  # no raw control character
        out.flush()

    return send


def webhook_sink(url: str, timeout: float = 5.0, on_error: Callable[[str], None] | None = None) -> AlertSink:
    """POST each alert as JSON. A failed delivery is reported, never fatal: the watch goes on."""
    if not url.startswith(("http://", "https://")):
        raise MailtriageError(f"webhook URL must be http:// or https://, not {url!r}")

    def send(alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "mailtriage-watch"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
                response.read(65536)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if on_error is not None:
                on_error(f"webhook {url}: {exc}")

    return send


def command_sink(command: str, timeout: float = 30.0, on_error: Callable[[str], None] | None = None) -> AlertSink:
    """Run a command (no shell) with the alert's JSON on its standard input."""
    argv = shlex.split(command)
    if not argv:
        raise MailtriageError("--exec needs a command")

    def send(alert: Alert) -> None:
        try:
            subprocess.run(argv, input=json.dumps(alert.to_dict(), ensure_ascii=False), text=True, timeout=timeout,
                           check=False, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            if on_error is not None:
                on_error(f"command {argv[0]}: {exc}")

    return send


@dataclass
class _Tracked:
    state: str
    records: int
    last_record: float
    grew: bool


@dataclass
class Watcher:
    """Poll `paths` (files followed like `tail -F`, folders scanned for new files)."""

    paths: list[str]
    engine: Engine
    state_file: str
    sinks: list[AlertSink]
    threshold: int = 50
    quiet_seconds: float = 900.0
    lang: str = "en"
    clock: Callable[[], float] = time.time
    _db: sqlite3.Connection = field(init=False, repr=False)
    _grouper: IncidentGrouper = field(init=False, repr=False)
    _tracked: dict[str, _Tracked] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise MailtriageError("threshold must be at least 1")
        try:
            self._db = sqlite3.connect(self.state_file)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise MailtriageError(f"{self.state_file}: cannot use as watch state ({exc})") from None
        self._grouper = IncidentGrouper(self.engine, lang=self.lang)
        self._tracked = {
            key: _Tracked(state, records, last, bool(grew))
            for key, state, records, last, grew in self._db.execute("SELECT key, state, records, last_record, grew FROM incidents")
        }

    def close(self) -> None:
        self._db.close()

    # -- reading ------------------------------------------------------------------------------

    def _position(self, path: str) -> tuple[int, int] | None:
        row = self._db.execute("SELECT inode, offset FROM positions WHERE path = ?", (path,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def _save_position(self, path: str, inode: int, offset: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO positions (path, inode, offset) VALUES (?, ?, ?)", (path, inode, offset))

    def _read_log(self, path: str, stat: os.stat_result) -> Iterator[IntakeRecord]:
        from ..intake.logs import parse_log_lines

        known = self._position(path)
        offset = 0
        if known is not None and known[0] == stat.st_ino and known[1] <= stat.st_size:
            offset = known[1]  # else: new file, or rotated/truncated: from the start
        if offset >= stat.st_size:
            if known is None or known[0] != stat.st_ino:
                self._save_position(path, stat.st_ino, offset)
            return
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(min(stat.st_size - offset, MAX_READ_PER_POLL))
        end = data.rfind(b"\n")
        if end < 0:  # a partial line: wait for its end (unless it is absurdly long)
            if len(data) < MAX_LINE:
                return
            end = len(data) - 1
        chunk = data[: end + 1]
        lines = chunk.decode("utf-8", "replace").splitlines()
        yield from parse_log_lines(lines, source=f"{path}@{offset}")
        self._save_position(path, stat.st_ino, offset + len(chunk))

    def _read_new_file(self, path: str, stat: os.stat_result) -> Iterator[IntakeRecord]:
        from ..intake import IntakeRecord as Record
        from ..intake import iter_path_records

        known = self._position(path)
        if known is not None and known == (stat.st_ino, stat.st_size):
            return
        for item in iter_path_records([path]):
            if isinstance(item, Record):
                yield item
        self._save_position(path, stat.st_ino, stat.st_size)

    def _records(self) -> Iterator[IntakeRecord]:
        from ..intake import detect_kind

        for name in self.paths:
            path = Path(name)
            try:
                if path.is_dir():
                    for child in sorted(path.iterdir()):
                        if child.is_file() and not child.name.startswith("."):
                            yield from self._read_new_file(str(child), child.stat())
                    continue
                stat = path.stat()
                with open(path, "rb") as handle:
                    head = handle.read(8192)
                if detect_kind(head) == "log" or not head:
                    yield from self._read_log(str(path), stat)
                else:
                    yield from self._read_new_file(str(path), stat)
            except FileNotFoundError:
                continue  # between rotation and the new file: next poll
            except OSError as exc:
                print(visible(f"mailtriage watch: {name}: {exc.strerror or exc}"), file=sys.stderr)

    # -- alerting -----------------------------------------------------------------------------

    def poll(self) -> list[Alert]:
        """Read what is new, update incidents, and return (and send) the alerts it causes."""
        now = self.clock()
        alerts: list[Alert] = []
        touched: dict[str, Any] = {}
        new: dict[str, int] = {}
        for record in self._records():
            incident = self._grouper.add(record)
            touched[incident.key] = incident
            new[incident.key] = new.get(incident.key, 0) + 1
        for key, incident in touched.items():
            tracked = self._tracked.get(key)
            if tracked is None or tracked.state == "ended":
                tracked = _Tracked("active", 0, now, False)
                self._tracked[key] = tracked
                alerts.append(Alert("started", {**incident.to_dict(), "episode_records": new[key]}, now))
            tracked.records += new[key]  # this episode's failures (an ended incident starts afresh)
            tracked.last_record = now
            if not tracked.grew and tracked.records >= self.threshold:
                tracked.grew = True
                alerts.append(Alert("grew", {**incident.to_dict(), "episode_records": tracked.records}, now))
        for key, tracked in self._tracked.items():
            if tracked.state == "active" and key not in touched and now - tracked.last_record >= self.quiet_seconds:
                tracked.state = "ended"
                last = next((i for i in self._grouper.incidents() if i.key == key), None)
                data = last.to_dict() if last else {"key": key}
                alerts.append(Alert("ended", {**data, "episode_records": tracked.records}, now))
        for key, tracked in self._tracked.items():
            self._db.execute(
                "INSERT OR REPLACE INTO incidents (key, state, records, last_record, grew) VALUES (?, ?, ?, ?, ?)",
                (key, tracked.state, tracked.records, tracked.last_record, int(tracked.grew)),
            )
        self._db.commit()  # positions and states together: a crash re-reads, never re-alerts
        for alert in alerts:
            for sink in self.sinks:
                sink(alert)
        return alerts

    def run(self, interval: float = 0.5, stop: Callable[[], bool] = lambda: False) -> None:
        while not stop():
            self.poll()
            time.sleep(interval)
