"""`POST /v1/scan`: the request body streamed into the scan, the rows streamed out as JSON Lines.

A worker thread runs the library's `iter_stream_records` + `scan_rows` over the body. It *pulls*
each chunk from the event loop when it needs one, so the body is read only as fast as it is
scanned (uvicorn stops reading the socket meanwhile), and pushes rows into a small bounded queue
that the response drains: memory stays flat whatever the upload's size. Rows waiting while the
worker asks for more input are sent first, so a record goes out as soon as it has been read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .observe import DIAGNOSES, SCAN_ROWS
from .problems import TooManyRecords

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from ..engine import Engine

_END = b""
_FLUSH_ROWS = 64
_FLUSH_SECONDS = 0.05
_PUT_POLL = 0.5  # seconds between checks for a cancelled stream while the queue is full


class ScanStopped(Exception):
    """The client went away, or the stream was cancelled: stop without another row."""


class ScanLimit(Exception):
    """A limit ended the scan; `problem` is the last line sent."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", ""))
        self.problem = problem


class ScanJob:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        body: AsyncIterator[bytes],
        *,
        engine: Engine,
        kind: str,
        source: str,
        max_records: int,
        deadline: float,
        idle_timeout: float,
        body_error: type[Exception] | tuple[type[Exception], ...],
        problem_of: Any,
    ) -> None:
        self.loop = loop
        self.body = body
        self.engine = engine
        self.kind = kind
        self.source = source
        self.max_records = max_records
        self.deadline = time.monotonic() + deadline
        self.deadline_seconds = deadline
        self.idle_timeout = idle_timeout
        self.body_error = body_error
        self.problem_of = problem_of  # exception -> problem dict, for errors raised by the body
        self.out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
        self.stopped = threading.Event()
        self._pending: list[bytes] = []
        self._flushed_at = 0.0  # the first row goes out at once
        self.records = 0
        self.skipped = 0

    # -- worker thread side ---------------------------------------------------------------------

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        while True:
            try:
                return future.result(_PUT_POLL if timeout is None else min(_PUT_POLL, timeout))
            except concurrent.futures.TimeoutError:
                if self.stopped.is_set():
                    future.cancel()
                    raise ScanStopped from None
                if timeout is not None:
                    timeout -= _PUT_POLL
                    if timeout <= 0:
                        future.cancel()
                        raise

    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self._call(self.out.put(data))

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise ScanLimit(self.problem_of(TimeoutError(f"the scan took longer than {self.deadline_seconds:g} s")))

    async def _next_chunk(self) -> bytes:
        return await self.body.__anext__()

    def _chunks(self) -> Iterator[bytes]:
        while True:
            self._flush()  # whatever was read so far goes out before waiting for more input
            self._check_deadline()
            try:
                chunk = self._call(self._next_chunk(), timeout=self.idle_timeout + 1.0)
            except StopAsyncIteration:
                return
            except concurrent.futures.TimeoutError:
                raise ScanLimit(self.problem_of(TimeoutError(f"no data for {self.idle_timeout:g} s"))) from None
            if chunk:
                yield chunk

    def run(self) -> None:
        from ..intake.streams import iter_stream_records
        from ..triage import scan_rows

        try:
            items = iter_stream_records(self._chunks(), self.kind, self.source)
            for row in scan_rows(items, self.engine):
                if "skipped" in row:
                    self.skipped += 1
                    SCAN_ROWS.labels("skipped").inc()
                else:
                    self.records += 1
                    SCAN_ROWS.labels("record").inc()
                    DIAGNOSES.labels(row["rule"] or "none").inc()
                    if self.records > self.max_records:
                        raise ScanLimit(self.problem_of(TooManyRecords(f"more than {self.max_records} records in one scan")))
                self._pending.append(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                # A chunk can hold dozens of messages: send what is ready every _FLUSH_SECONDS
                # too, not only when the next chunk is needed.
                if len(self._pending) >= _FLUSH_ROWS or time.monotonic() - self._flushed_at > _FLUSH_SECONDS:
                    self._flush()
                    self._check_deadline()
            self._pending.append(self._end_line(None))
        except ScanStopped:
            return
        except ScanLimit as exc:
            self._pending.append(self._end_line(exc.problem))
        except self.body_error as exc:
            self._pending.append(self._end_line(self.problem_of(exc)))
        except Exception as exc:  # a bug must end the stream with a line that says so
            self._pending.append(self._end_line(self.problem_of(exc)))
        try:
            self._flush()
            self._call(self.out.put(_END))
        except ScanStopped:
            return

    def _end_line(self, problem: dict[str, Any] | None) -> bytes:
        end: dict[str, Any] = {"records": self.records, "skipped": self.skipped, "complete": problem is None}
        if problem is not None:
            end["error"] = problem
        return json.dumps({"end": end}, ensure_ascii=False).encode() + b"\n"

    # -- event loop side ------------------------------------------------------------------------

    async def send_rows(self, send: Send) -> None:
        while True:
            data = await self.out.get()
            if data == _END:
                return
            await send({"type": "http.response.body", "body": data, "more_body": True})


class JsonLinesResponse:
    """An ASGI response that streams a ScanJob's rows. Unlike Starlette's StreamingResponse it
    never reads `receive` itself (under ASGI spec 2.3 that one listens for a disconnect by
    consuming messages, which would eat the request body the scan is still reading)."""

    media_type = "application/x-ndjson"

    def __init__(self, job: ScanJob, executor: concurrent.futures.Executor, headers: dict[str, str]) -> None:
        self.job = job
        self.executor = executor
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.media_type.encode())]
        headers.extend((k.lower().encode(), v.encode()) for k, v in self.headers.items())
        worker = self.job.loop.run_in_executor(self.executor, self.job.run)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await self.job.send_rows(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.job.stopped.set()
            await asyncio.shield(worker)
