"""The ASGI app of `mailtriage serve`: routes that call the library verbs, one to one.

| route | library verb | JSON shape |
|---|---|---|
| POST /v1/diagnose | `diagnose_text` / `diagnose_facts` | `diagnosis_document` (= `diagnose --format json`) |
| POST /v1/scan | `iter_stream_records` + `scan_rows` | JSON Lines rows (= `scan --format jsonl`) + an `end` line |
| GET /v1/rules | `list_rules` + `rule_summary` | = `rules list --format json` |
| GET /v1/rules/{id} | `Rule.to_dict(lang)` | = `rules show --format json` |
| POST /v1/probe | `run_probe` + `Engine.diagnose` | = `probe --format json` |

Engine calls block (durable-rules holds the GIL): they run in a small thread pool so the event
loop keeps accepting and streaming; throughput comes from worker processes (`--workers`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import MailtriageError
from ..textsafe import text_bytes
from .config import Limits, ServiceConfig, token_matches
from .encoding import json_bytes
from .observe import PROBES, count_diagnosis, count_request, metrics_payload
from .problems import (
    PROBLEM_RESPONSES,
    BodyTimeout,
    BodyTooLarge,
    Busy,
    NotFound,
    ProblemError,
    TooManyRecords,
    problem_dict,
    problem_for_exception,
    problem_response,
)
from .scan_stream import JsonLinesResponse, ScanJob

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..engine import Engine
    from .probe_guard import ConcurrencyCap, RateLimiter

log = logging.getLogger("mailtriage.service")

Lang = Literal["en", "pt-BR"]
TextKind = Literal["auto", "reply", "ndr", "log"]
ScanKind = Literal["auto", "mbox", "maildir-tar", "maildir-zip", "log", "message"]
FactValueIn = str | int | float | bool

_REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
_OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs"})
# Inputs up to this size are diagnosed on the event loop; larger ones (messages, log pastes) in
# the engine's thread pool. Measured (benchmarks/bench_service.py, 2 cores): a short reply takes
# about 1 ms to diagnose, and handing it to a thread and back cost 1.5 to 4 ms more, because the
# engine's C extension holds the GIL for the whole match and the loop thread then waits for it;
# inline, a short reply blocks the loop no longer than the GIL would have anyway.
INLINE_MAX_BYTES = 4096


# ---------------------------------------------------------------------------------------------
# Request and response models (the response models document the library's `to_dict` shapes)


class DiagnoseRequest(BaseModel):
    """Facts, or text (a pasted SMTP reply, an NDR/DSN message, MTA log lines), or both: the
    facts then add to or override what the text says."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="A reply, a bounce message or log lines, as pasted.")
    kind: TextKind = Field("auto", description="What `text` is; detected unless given.")
    facts: dict[str, FactValueIn] | None = Field(
        None, description="Facts of the vocabulary (rules/schema/facts.schema.json), e.g. {\"tcp.state\": \"refused\"}."
    )
    lang: Lang | None = Field(None, description="Language of the explanation (overrides the query parameter).")


class ProbeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str | None = Field(None, max_length=255, description="A domain (MX lookup), or host[:port]; must be on the allow list.")
    smart_host: str | None = Field(None, max_length=255, description="Probe this host like a connector's smart host.")
    port: int | None = Field(None, ge=1, le=65535, description="SMTP port (the service allows 25, 465, 587 by default).")
    require_tls: bool = False
    rcpt: str | None = Field(None, max_length=320, description="Also test MAIL FROM:<> / RCPT TO (never DATA).")
    timeout: float | None = Field(None, gt=0, le=60, description="Seconds per step (capped by the service).")
    deadline: float | None = Field(None, gt=0, le=120, description="Seconds for the whole probe (capped by the service).")
    lang: Lang = "en"


class Reason(BaseModel):
    field: str
    condition: str
    value: Any = None
    excerpt: str | None = None  # a text test that held: the words of the text it matched


class CauseOut(BaseModel):
    id: str
    title: str
    detail: str
    likelihood: Literal["likely", "possible", "unlikely"]
    because: list[Reason]


class MatchOut(BaseModel):
    rule: str
    codes: list[str]
    title: str
    summary: str
    kind: str
    generic_level: str | None
    family: str
    status: str
    why: list[Reason]
    causes: list[CauseOut]
    fixes: list[dict[str, Any]]
    references: list[dict[str, Any]]
    language: str


class NextCheckOut(BaseModel):
    field: str
    question: str
    how: str
    separates: list[str]


class NearMissOut(BaseModel):
    rule: str
    title: str
    failed: Reason


class DiagnosisOut(BaseModel):
    facts: dict[str, Any]
    specific: bool
    matches: list[MatchOut]
    next_checks: list[NextCheckOut]
    near_misses: list[NearMissOut]


class RecordOut(DiagnosisOut):
    recipient: str | None


class DiagnosisDocument(DiagnosisOut):
    """`diagnose --format json`: the first record's diagnosis; `records` when there were several."""

    records: list[RecordOut] | None = None


class RuleSummary(BaseModel):
    id: str
    codes: list[str]
    status: str
    kind: str
    family: str
    systems: list[str]
    title: str
    languages: list[str]


class Health(BaseModel):
    status: Literal["ok", "starting", "draining", "failed"]


# ---------------------------------------------------------------------------------------------
# State shared by the requests of one worker process


@dataclass
class ServiceState:
    config: ServiceConfig
    tokens: list[bytes]
    engine: Engine | None = None
    ready: bool = False
    draining: bool = False
    load_error: str | None = None
    engine_limiter: anyio.CapacityLimiter | None = None
    scan_executor: concurrent.futures.ThreadPoolExecutor | None = None
    scans_running: int = 0
    probe_rate: RateLimiter | None = None
    probe_cap: ConcurrencyCap | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def engine_or_busy(self) -> Engine:
        if self.engine is None:
            if self.load_error:
                raise ProblemError(503, "not-ready", "Rules not loaded", "the service could not load its rules")
            raise Busy("the knowledge base is still loading; retry in a moment", retry_after=1)
        return self.engine


_json = json_bytes


def _count_diagnoses(results: list[tuple[str | None, Any]]) -> None:
    for _recipient, diagnosis in results:
        count_diagnosis(diagnosis.matches[0].rule.id if diagnosis.matches else "none")


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole (small) body; the middleware already stops it at the route's upload limit."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# The app


def create_app(config: ServiceConfig | None = None, *, freeze_heap: bool = False) -> ASGIApp:
    """The service for `config` (default: from MAILTRIAGE_SERVE_CONFIG, as worker processes get it).
    `freeze_heap`: once the rules are loaded, move every object alive to the garbage collector's
    permanent generation (`gc.freeze`): the knowledge base lives as long as the process, and the
    collector then stops walking it (measured: 800 ms of collections per 10,000 short replies
    without, 200 ms with). Off for an app embedded in another process, whose heap it is not."""
    config = config or ServiceConfig.from_env()
    config.probe.check()
    state = ServiceState(config=config, tokens=config.tokens())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ..engine import Engine

        limits = config.limits
        state.engine_limiter = anyio.CapacityLimiter(limits.engine_threads)
        state.scan_executor = concurrent.futures.ThreadPoolExecutor(limits.max_concurrent_scans, "scan")
        if config.probe.enabled:
            from .probe_guard import ConcurrencyCap, RateLimiter

            state.probe_rate = RateLimiter(config.probe.rate_per_minute)
            state.probe_cap = ConcurrencyCap(config.probe.max_concurrent)
        _watch_for_shutdown(state)

        async def load() -> None:
            # In the background: the socket is open (healthz answers, readyz says "starting")
            # while the rules load.
            started = time.monotonic()
            try:
                engine = await anyio.to_thread.run_sync(lambda: Engine.load(config.rule_dirs or None))
            except MailtriageError as exc:
                state.load_error = str(exc)
                log.error("cannot load the rules", extra={"fields": {"event": "load-failed", "error": str(exc)}})
                return
            except Exception as exc:  # e.g. a dependency missing: readyz must say failed, not starting forever
                state.load_error = f"{type(exc).__name__}: {exc}"
                log.error("cannot load the rules", exc_info=exc,
                          extra={"fields": {"event": "load-failed", "error": state.load_error}})
                return
            if freeze_heap:
                import gc

                gc.freeze()
            state.engine = engine
            state.ready = True
            log.info("ready", extra={"fields": {"event": "ready", "rules": len(engine.rules),
                                                 "load_seconds": round(time.monotonic() - started, 3),
                                                 "auth": bool(state.tokens), "probe": config.probe.enabled}})

        loader = asyncio.create_task(load())
        try:
            yield
        finally:
            state.draining = True
            loader.cancel()
            state.scan_executor.shutdown(wait=True, cancel_futures=True)
            log.info("stopped", extra={"fields": {"event": "stopped"}})

    app = FastAPI(
        title="mailtriage",
        summary="Explains mail-flow failures: SMTP replies, NDRs/DSNs, MTA logs, live probes.",
        description=(
            "The same library calls and JSON shapes as the `mailtriage` command line "
            "(`diagnose --format json`, `scan --format jsonl`, `rules ... --format json`). "
            "Errors are RFC 9457 problem documents (`application/problem+json`)."
        ),
        version=_version(),
        lifespan=lifespan,
        redoc_url=None,
        docs_url="/docs",
    )
    app.state.service = state
    _install_error_handlers(app)
    _add_routes(app, state)
    return ServiceMiddleware(app, state)


def serve_app() -> ASGIApp:
    """The app as `mailtriage serve` runs it, in each worker process: `create_app` in a process
    that logs only through the service's JSON lines, which use no caller, thread or process
    fields; the logging HOWTO's "Optimization" section gives these switches to skip collecting
    them for every record (one request line per request)."""
    logging._srcfile = None  # no caller lookup: a walk up the stack per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return create_app(freeze_heap=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailtriage")
    except PackageNotFoundError:
        return "0"


def _watch_for_shutdown(state: ServiceState) -> None:
    """Mark the process as draining on SIGTERM/SIGINT (readyz then answers 503), then let the
    server's own handler run: it stops accepting and waits for in-flight requests."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            state.draining = True
            log.info("draining", extra={"fields": {"event": "draining", "signal": number}})
            previous(number, frame)

        with contextlib.suppress(ValueError):  # not the main thread (an embedded server)
            signal.signal(signum, handler)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        return problem_response(problem_for_exception(exc, request.url.path, request.scope.get("state", {}).get("request_id")))

    for exc_class in (ProblemError, MailtriageError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_class, on_problem)


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    limits = state.config.limits

    @app.get("/healthz", tags=["operations"], response_model=Health, summary="Liveness: the process answers.")
    async def healthz() -> Response:
        return Response(_json({"status": "ok"}), media_type="application/json")

    @app.get(
        "/readyz", tags=["operations"], response_model=Health,
        responses={503: {"model": Health, "description": "Still loading the rules, or shutting down."}},
        summary="Readiness: rules loaded and not shutting down.",
    )
    async def readyz() -> Response:
        if state.draining:
            return Response(_json({"status": "draining"}), status_code=503, media_type="application/json")
        if state.load_error:
            return Response(_json({"status": "failed"}), status_code=503, media_type="application/json")
        if not state.ready:
            return Response(_json({"status": "starting"}), status_code=503, media_type="application/json")
        return Response(_json({"status": "ok"}), media_type="application/json")

    @app.get(
        "/metrics", tags=["operations"], summary="Prometheus metrics (text exposition format).",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **PROBLEM_RESPONSES},
        response_class=Response,
    )
    async def metrics() -> Response:
        payload, content_type = metrics_payload()
        return Response(payload, media_type=content_type)

    @app.post(
        "/v1/diagnose",
        tags=["diagnosis"],
        response_model=DiagnosisDocument,
        responses=PROBLEM_RESPONSES,
        summary="Diagnose facts, pasted text (reply, NDR, log lines) or an uploaded message.",
        description=(
            "Send JSON (`text`, `kind`, `facts`, `lang`), or the text itself as `text/plain`, or a "
            "message as `message/rfc822` (an .eml file), or `multipart/form-data` with a `file` "
            "part (and optional `kind`, `lang`, `facts` parts). The answer is "
            "`mailtriage diagnose --format json`'s document."
        ),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _diagnose_request_schema()},
                    "text/plain": {"schema": {"type": "string"}},
                    "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "text": {"type": "string"},
                                "kind": {"type": "string", "enum": ["auto", "reply", "ndr", "log"]},
                                "lang": {"type": "string", "enum": ["en", "pt-BR"]},
                                "facts": {"type": "string", "description": "A JSON object of facts."},
                            },
                        }
                    },
                },
            }
        },
    )
    async def diagnose(
        request: Request,
        lang: Annotated[Lang, Query(description="Language of the explanation.")] = "en",
        kind: Annotated[TextKind, Query(description="What the text is (for text/plain and message bodies).")] = "auto",
    ) -> Response:
        # ServiceMiddleware answers POST /v1/diagnose itself (DiagnoseRoute); this route is what
        # the OpenAPI document describes, and answers the same way for an app mounted without it.
        return await respond_diagnose(state, request, kind, lang)

    @app.post(
        "/v1/scan",
        tags=["diagnosis"],
        summary="Scan an mbox, a maildir archive (tar, tar.gz or zip) or a log: JSON Lines out as records are read.",
        description=(
            "Send the file as the request body (any content type; chunked is fine: the body is read "
            "as it arrives, never held whole). One line per failed recipient with the fields of "
            "`mailtriage scan --format jsonl`, a `{\"source\", \"skipped\"}` line per input not read and "
            "why, and a last line `{\"end\": {\"records\", \"skipped\", \"complete\", \"error\"?}}`; "
            "`complete: false` with an `error` problem when a limit stopped the scan."
        ),
        responses={
            200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}, "description": "JSON Lines"},
            **PROBLEM_RESPONSES,
        },
        response_class=Response,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/mbox": {"schema": {"type": "string", "format": "binary"}},
                    "text/plain": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def scan(
        request: Request,
        kind: Annotated[ScanKind, Query(description="What the body is; sniffed unless given.")] = "auto",
        name: Annotated[str, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                                   description="A label for `source` and `file` in the rows.")] = "upload",
    ) -> Response:
        engine = state.engine_or_busy()
        assert state.scan_executor is not None
        if state.scans_running >= limits.max_concurrent_scans:
            raise Busy(f"{limits.max_concurrent_scans} scans are running; retry later", retry_after=5)
        state.scans_running += 1
        request_id = request.scope.get("state", {}).get("request_id", "")
        job = ScanJob(
            asyncio.get_running_loop(),
            request.stream(),
            engine=engine,
            kind=kind,
            source=name or "upload",
            max_records=limits.max_scan_records,
            deadline=limits.scan_timeout,
            idle_timeout=limits.body_idle_timeout,
            body_error=(BodyTooLarge, BodyTimeout, ProblemError, OSError),
            problem_of=lambda exc: problem_dict(problem_for_exception(exc, "/v1/scan", request_id)),
        )
        response = JsonLinesResponse(job, state.scan_executor, {"cache-control": "no-store"})

        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await response(scope, receive, send)
            finally:
                state.scans_running -= 1

        return _RawResponse(run)

    @app.get(
        "/v1/rules", tags=["rules"], response_model=list[RuleSummary], responses=PROBLEM_RESPONSES,
        summary="List the rules (as `mailtriage rules list --format json`).",
    )
    async def rules_list(
        kind: Annotated[Literal["specific", "generic"] | None, Query()] = None,
        family: Annotated[str | None, Query(max_length=64)] = None,
        system: Annotated[str | None, Query(max_length=64)] = None,
        code: Annotated[str | None, Query(max_length=32, description="e.g. 4.4.316 or 550")] = None,
    ) -> Response:
        from ..triage import list_rules, rule_summary

        engine = state.engine_or_busy()
        selected = list_rules(engine, kind=kind, family=family, system=system, code=code)
        return Response(_json([rule_summary(rule) for rule in selected]), media_type="application/json")

    @app.get(
        "/v1/rules/{rule_id}", tags=["rules"], responses=PROBLEM_RESPONSES,
        summary="One rule in a language (as `mailtriage rules show --format json`).",
        response_model=dict[str, Any],
    )
    async def rules_show(rule_id: str, lang: Annotated[Lang, Query()] = "en") -> Response:
        engine = state.engine_or_busy()
        rule = engine.rules.get(rule_id)
        if rule is None:
            import difflib

            close = difflib.get_close_matches(rule_id, list(engine.rules), n=3)
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            raise NotFound(f"no rule with id {rule_id!r}{hint}")
        return Response(_json(rule.to_dict(lang)), media_type="application/json")

    if state.config.probe.enabled:
        _add_probe_route(app, state)


def _diagnose_request_schema() -> dict[str, Any]:
    """DiagnoseRequest as JSON Schema, with `facts` described by the fact vocabulary itself
    (rules/schema/facts.schema.json: one source of truth for field names, types and values)."""
    from ..resources import schema_path

    with open(schema_path("facts"), encoding="utf-8") as handle:
        vocabulary = json.load(handle)

    def public(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: public(v) for k, v in node.items() if not k.startswith(("x-", "$"))}
        if isinstance(node, list):
            return [public(v) for v in node]
        return node

    facts = public(vocabulary)
    facts["description"] = "Facts of the vocabulary, e.g. {\"tcp.state\": \"refused\"}; they add to or override what the text says."
    return {
        "title": "DiagnoseRequest",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "description": "A reply, a bounce message or log lines, as pasted."},
            "kind": {"type": "string", "enum": ["auto", "reply", "ndr", "log"], "default": "auto",
                     "description": "What `text` is; detected unless given."},
            "facts": facts,
            "lang": {"type": "string", "enum": ["en", "pt-BR"],
                     "description": "Language of the explanation (overrides the query parameter)."},
        },
        "anyOf": [{"required": ["text"]}, {"required": ["facts"]}],
    }


async def respond_diagnose(state: ServiceState, request: Request, kind: str, lang: str) -> Response:
    """POST /v1/diagnose once its query is valid: the body in any of its formats, diagnosed."""
    limits = state.config.limits
    engine = state.engine_or_busy()
    text, facts, text_kind, language = await _diagnose_input(request, limits, kind, lang)
    if text is not None and text.count(b"\n") + 1 > limits.max_lines:
        raise BodyTooLarge(f"the text has more than {limits.max_lines} lines; use /v1/scan for bulk input")

    def work() -> bytes:
        from ..triage import diagnose_facts, diagnose_text, diagnosis_document

        results: list[tuple[str | None, Any]] = []
        if text is not None:
            found = diagnose_text(text, kind=text_kind, facts=facts, engine=engine, source="<request>")
            if not found:
                from ..errors import InputError

                raise InputError("nothing recognisable as an SMTP reply, bounce message or MTA log line", _request_location())
            if len(found) > limits.max_records:
                raise TooManyRecords(
                    f"the text holds {len(found)} records, more than {limits.max_records}; use /v1/scan for bulk input"
                )
            results.extend((r.recipient, r.diagnosis) for r in found)
        else:
            results.append((None, diagnose_facts({"input.kind": "flags", **(facts or {})}, engine)))
        _count_diagnoses(results)
        return _json(diagnosis_document(results, language))

    assert state.engine_limiter is not None
    if text is None or len(text) <= INLINE_MAX_BYTES:
        body = work()  # a short reply: see INLINE_MAX_BYTES
    else:
        body = await anyio.to_thread.run_sync(work, limiter=state.engine_limiter)
    return Response(body, media_type="application/json")


_LANGS = frozenset(get_args(Lang))
_TEXT_KINDS = frozenset(get_args(TextKind))


def _query_choice(request: Request, name: str, choices: frozenset[str], default: str) -> str:
    """A query parameter with FastAPI's semantics for a Literal (the last value given wins) and
    its 422 problem when the value is not one of `choices`."""
    if not request.scope.get("query_string"):
        return default
    value = request.query_params.get(name)
    if value is None:
        return default
    if value not in choices:
        allowed = " or ".join(f"'{c}'" for c in sorted(choices))
        raise ProblemError(422, "invalid-request", "Invalid request", "the request does not fit the API's schema",
                           extra={"errors": [{"loc": ["query", name], "msg": f"Input should be {allowed}",
                                              "type": "literal_error"}]})
    return value


class DiagnoseRoute:
    """POST /v1/diagnose as a plain ASGI app, called by ServiceMiddleware without going through
    FastAPI's routing, dependency solving and exception middlewares: for a short reply those
    cost about as much as the diagnosis itself (benchmarks/bench_service.py). Same code
    (`respond_diagnose`), same answers and problems as the documented route."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            kind = _query_choice(request, "kind", _TEXT_KINDS, "auto")
            lang = _query_choice(request, "lang", _LANGS, "en")
            response = await respond_diagnose(self.state, request, kind, lang)
        except Exception as exc:
            response = problem_response(problem_for_exception(exc, scope["path"], scope["state"].get("request_id")))
        await response(scope, receive, send)


def _request_location() -> Any:
    from ..errors import Location

    return Location("<request>")


async def _diagnose_input(
    request: Request, limits: Limits, kind: str, lang: str
) -> tuple[bytes | None, dict[str, Any] | None, str, str]:
    """(text, facts, kind, lang) from whichever body format the client sent."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8, max_part_size=limits.max_body_bytes)
        text: bytes | None = None
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str):
            text = await upload.read(limits.max_upload_bytes + 1)
            if len(text) > limits.max_upload_bytes:
                raise BodyTooLarge(f"the uploaded file is larger than {limits.max_upload_bytes} bytes")
        elif isinstance(form.get("text"), str):
            text = text_bytes(str(form["text"]))
        facts = None
        raw_facts = form.get("facts")
        if isinstance(raw_facts, str) and raw_facts.strip():
            try:
                parsed = json.loads(raw_facts)
            except ValueError:
                raise ProblemError(422, "invalid-request", "Invalid request", "the `facts` part is not JSON") from None
            if not isinstance(parsed, dict):
                raise ProblemError(422, "invalid-request", "Invalid request", "the `facts` part must be a JSON object")
            facts = parsed
        form_kind, form_lang = form.get("kind"), form.get("lang")
        kind = str(form_kind) if isinstance(form_kind, str) and form_kind else kind
        lang = str(form_lang) if isinstance(form_lang, str) and form_lang else lang
        if kind not in ("auto", "reply", "ndr", "log") or lang not in ("en", "pt-BR"):
            raise ProblemError(422, "invalid-request", "Invalid request", "kind must be auto, reply, ndr or log; lang en or pt-BR")
        if text is None and facts is None:
            raise ProblemError(422, "invalid-request", "Invalid request", "send a `file` or `text` part, or `facts`")
        return text, facts, kind, lang
    if content_type in ("message/rfc822", "application/octet-stream"):
        return await _read_body(request, limits.max_upload_bytes), None, kind, lang
    body = await _read_body(request, limits.max_body_bytes)
    if content_type in ("application/json", ""):
        if not body.strip() and content_type == "":
            raise ProblemError(422, "invalid-request", "Invalid request", "empty request body")
        try:
            parsed_request = DiagnoseRequest.model_validate_json(body)
        except ValueError as exc:
            errors = getattr(exc, "errors", None)
            raise ProblemError(
                422, "invalid-request", "Invalid request", "the JSON body does not fit the DiagnoseRequest schema",
                extra={"errors": _clean_errors(errors() if callable(errors) else [])},
            ) from None
        if parsed_request.text is None and parsed_request.facts is None:
            raise ProblemError(422, "invalid-request", "Invalid request", "give `text`, `facts` or both")
        text = text_bytes(parsed_request.text) if parsed_request.text is not None else None
        return text, parsed_request.facts, parsed_request.kind, parsed_request.lang or lang
    if content_type.startswith("text/"):
        return body, None, kind, lang
    raise ProblemError(415, "unsupported-media-type", "Unsupported media type",
                       f"{content_type!r}: send application/json, text/plain, message/rfc822 or multipart/form-data")


def _clean_errors(errors: list[Any]) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors if isinstance(e, dict)][:20]


def _add_probe_route(app: FastAPI, state: ServiceState) -> None:
    settings = state.config.probe

    @app.post(
        "/v1/probe", tags=["probe"], responses=PROBLEM_RESPONSES, response_model=dict[str, Any],
        summary="Probe an allowed destination (DNS, TCP, SMTP, TLS; never DATA) and diagnose it.",
    )
    async def probe(request: Request, body: ProbeRequest) -> Response:
        from ..probe import ProbeOptions, run_probe
        from .probe_guard import ProbeRefused, check_target_name

        engine = state.engine_or_busy()
        if body.target is None and body.smart_host is None:
            raise ProblemError(422, "invalid-request", "Invalid request", "give `target` or `smart_host`")
        target = check_target_name(body.target, settings.allowed_domains, "target") if body.target else None
        smart_host = check_target_name(body.smart_host, settings.allowed_domains, "smart_host") if body.smart_host else None
        policy = _probe_policy(state)
        for port in [body.port, *_ports_in(target), *_ports_in(smart_host)]:
            if port is not None and port not in policy.allowed_ports:
                PROBES.labels("refused").inc()
                raise ProbeRefused(f"port {port} is not allowed (allowed: {', '.join(map(str, sorted(policy.allowed_ports)))})")
        client = _client_key(request)
        assert state.probe_rate is not None and state.probe_cap is not None
        wait = state.probe_rate.retry_after(client)
        if wait > 0:
            PROBES.labels("rate-limited").inc()
            raise ProblemError(429, "rate-limited", "Too many probes",
                               f"at most {settings.rate_per_minute} probes per minute per client",
                               retry_after=max(1, int(wait + 0.999)))
        if not state.probe_cap.try_enter():
            PROBES.labels("busy").inc()
            raise Busy(f"{settings.max_concurrent} probes are running; retry later", retry_after=5)
        refused: list[str] = []
        options = ProbeOptions(
            target=target,
            smart_host=smart_host,
            port=body.port,
            nameserver=settings.nameserver,
            timeout=min(body.timeout or settings.timeout, settings.timeout, state.config.limits.request_timeout),
            # A probe never outlives its request: the thread running it cannot be killed.
            deadline=max(0.5, min(body.deadline or settings.deadline, settings.deadline,
                                  state.config.limits.request_timeout - 1.0)),
            require_tls=body.require_tls,
            ca_file=settings.ca_file,
            rcpt=body.rcpt,
            ehlo_name=settings.ehlo_name,
        )

        cap = state.probe_cap

        def work() -> bytes:
            # The slot is given back here, when the probe has really ended: a request that timed
            # out (the thread is abandoned, not killed) still holds it until then.
            try:
                result = run_probe(options, connector=policy.connector(refused))
            finally:
                cap.leave()
            if refused:
                raise ProbeRefused("the probe was refused: " + "; ".join(dict.fromkeys(refused)))
            diagnosis = engine.diagnose(result.facts)
            _count_diagnoses([(None, diagnosis)])
            data = result.to_dict()
            data["diagnosis"] = diagnosis.to_dict(body.lang)
            return _json(data)

        try:
            payload = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except ProbeRefused:
            PROBES.labels("refused").inc()
            raise
        PROBES.labels("done").inc()
        return Response(payload, media_type="application/json")


def _probe_policy(state: ServiceState) -> Any:
    import ipaddress

    from .probe_guard import AddressPolicy

    policy = state.extra.get("probe_policy")
    if policy is None:
        settings = state.config.probe
        policy = AddressPolicy(
            allowed_ports=frozenset(settings.allowed_ports),
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks),
        )
        state.extra["probe_policy"] = policy
    return policy


def _ports_in(endpoint: str | None) -> list[int | None]:
    if not endpoint:
        return []
    from ..probe.target import parse_endpoint

    try:
        return [parse_endpoint(endpoint, "target").port]
    except MailtriageError:
        return []


def _client_key(request: Request) -> str:
    token = request.scope.get("state", {}).get("token_id")
    if token:
        return f"token:{token}"
    client = request.client
    return f"ip:{client.host}" if client else "ip:unknown"


class _RawResponse(Response):
    """Hands the ASGI call to a function (the scan stream)."""

    def __init__(self, call: Any) -> None:
        super().__init__()
        self._call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._call(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# The outer middleware: request ids, auth, body limits, time limits, metrics, JSON logs


def route_of(path: str) -> str:
    if path.startswith("/v1/rules/"):
        return "/v1/rules/{rule_id}"
    if path in ("/v1/diagnose", "/v1/scan", "/v1/probe", "/v1/rules", "/healthz", "/readyz", "/metrics",
                "/openapi.json", "/docs"):
        return path
    return "other"


class ServiceMiddleware:
    """Wraps the whole app (outside FastAPI's own error handling), so that every response, even a
    refusal before routing, carries a request id and is counted and logged."""

    def __init__(self, app: FastAPI, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.diagnose = DiagnoseRoute(state)
        self.watchdog = _Watchdog()

    def _body_limit(self, route: str) -> int:
        limits = self.state.config.limits
        if route == "/v1/scan":
            return limits.max_scan_bytes
        if route == "/v1/diagnose":
            return max(limits.max_upload_bytes, limits.max_body_bytes)
        return limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = authorization = ""
        length: str | None = None
        for key, value in scope.get("headers", ()):
            name = key.lower()
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if not (0 < len(request_id) <= 100 and set(request_id) <= _REQUEST_ID_CHARS):
            request_id = os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        route = route_of(path)
        method = scope.get("method", "")
        outcome = {"status": 500, "started": False, "bytes": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["started"] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                outcome["bytes"] += len(message.get("body", b""))
            await send(message)

        async def refuse(problem: ProblemError) -> None:
            response = problem_response(problem_for_exception(problem, path, request_id))
            await response(scope, receive, send_with_id)

        limited: _LimitedReceive | None = None
        try:
            if self.state.tokens and route not in _OPEN_ROUTES:
                token = _bearer(authorization)
                if token is None or not token_matches(token, self.state.tokens):
                    await refuse(ProblemError(401, "unauthorized", "Unauthorized",
                                              "send `Authorization: Bearer TOKEN` with a token this service accepts",
                                              headers={"WWW-Authenticate": 'Bearer realm="mailtriage"'}))
                    return
                import hashlib

                scope["state"]["token_id"] = hashlib.sha256(token).hexdigest()[:16]
            limit = self._body_limit(route)
            if length is not None and (not length.isdecimal() or int(length) > limit):
                await refuse(BodyTooLarge(f"the request body is larger than {limit} bytes"))
                return
            limits = self.state.config.limits
            timeout = limits.scan_timeout + limits.body_idle_timeout if route == "/v1/scan" else limits.request_timeout
            limited = _LimitedReceive(receive, limit, limits.body_idle_timeout, timeout)
            self.watchdog.watch(limited)
            app = self.diagnose if route == "/v1/diagnose" and method == "POST" else self.app
            try:
                cancelling = limited.task.cancelling()
                try:
                    await app(scope, limited, send_with_id)
                except asyncio.CancelledError:
                    if limited.timed_out and limited.task.uncancel() <= cancelling:  # the watchdog's cancel
                        raise TimeoutError from None
                    raise
            except TimeoutError:
                if not outcome["started"]:
                    if not limited.body_done:  # a client trickling its body (slowloris)
                        await refuse(BodyTimeout(f"the request took longer than {timeout:g} s to arrive"))
                    else:
                        await refuse(ProblemError(503, "timeout", "Request took too long",
                                                  f"the request took longer than {timeout:g} s", retry_after=5))
        finally:
            if limited is not None:
                self.watchdog.forget(limited)
            elapsed = time.perf_counter() - started
            status = int(outcome["status"])
            count_request(method, route, status, elapsed)
            if route not in ("/healthz", "/readyz", "/metrics") or status >= 400:
                client = scope.get("client")
                log.info("request", extra={"fields": {
                    "event": "request", "request_id": request_id, "method": method, "path": path,
                    "route": route, "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "response_bytes": outcome["bytes"], "client": client[0] if client else None,
                }})


def _bearer(value: str) -> bytes | None:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return text_bytes(token.strip())


class _LimitedReceive:
    """`receive` that stops a body at `limit` bytes (BodyTooLarge) and a client that pauses more
    than `idle` seconds mid-body (BodyTimeout); it also carries the request's time limit
    (`seconds`), both enforced by the _Watchdog."""

    def __init__(self, receive: Receive, limit: int, idle: float, seconds: float) -> None:
        self.receive = receive
        self.limit = limit
        self.idle = idle
        self.size = 0
        self.body_done = False
        self.task: asyncio.Task[Any] = _current_task()
        self._loop = asyncio.get_running_loop()
        self.deadline = self._loop.time() + seconds
        self.timed_out = False  # the watchdog cancelled the request's task: over its time limit
        self._waiter: asyncio.Task[Any] | None = None
        self._wait_started = 0.0
        self._expired = False  # the watchdog cancelled a receive: the client paused too long

    async def __call__(self) -> Message:
        if self.body_done:
            return await self.receive()
        task = _current_task()
        cancelling = task.cancelling()
        self._waiter = task
        self._wait_started = self._loop.time()
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:  # the cancel was the watchdog's alone
                    raise BodyTimeout(f"the client sent no data for {self.idle:g} s") from None
            raise
        finally:
            self._waiter = None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise BodyTooLarge(f"the request body is larger than {self.limit} bytes")
            if not message.get("more_body", False):
                self.body_done = True
        return message

    def check(self, now: float) -> None:
        """Called by the watchdog: cancel the request over its time limit, or the receive that
        has waited more than `idle` seconds."""
        if self.timed_out:
            return
        if now >= self.deadline:
            self.timed_out = True
            self.task.cancel()
            return
        waiter = self._waiter
        if waiter is not None and not self._expired and now - self._wait_started >= self.idle:
            self._expired = True
            waiter.cancel()


def _current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None  # ASGI calls run in tasks
    return task


class _Watchdog:
    """The time limits of every request in flight, checked by one timer every TICK seconds
    while any request is in flight, instead of timers made and cancelled for each request
    and each receive (`asyncio.timeout`: about 20 us each on the 2-core benchmark machine,
    against 0.2 us to add and drop a set member). Limits are then kept to within TICK."""

    TICK = 0.1

    def __init__(self) -> None:
        self.watched: set[_LimitedReceive] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, request: _LimitedReceive) -> None:
        self.watched.add(request)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.TICK, self._sweep)

    def forget(self, request: _LimitedReceive) -> None:
        self.watched.discard(request)

    def _sweep(self) -> None:
        self._timer = None
        if not self.watched:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for request in list(self.watched):
            request.check(now)
        self._timer = loop.call_later(self.TICK, self._sweep)
