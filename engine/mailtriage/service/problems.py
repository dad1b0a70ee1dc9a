"""RFC 9457 problem details: every error the service answers is one of these
(`application/problem+json`), with the request id and, for the library's errors, where."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from ..errors import MailtriageError

PROBLEM_TYPE = "urn:mailtriage:problem:"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("mailtriage.service")


class ProblemError(Exception):
    """An error that is answered as a problem document with `status`."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)
        self.extra = dict(extra or {})


class BodyTooLarge(ProblemError):
    # The rest of the body is not read: the connection is not reused.
    def __init__(self, detail: str) -> None:
        super().__init__(413, "too-large", "Request too large", detail, headers={"Connection": "close"})


class BodyTimeout(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(408, "body-timeout", "Request body too slow", detail, headers={"Connection": "close"})


class TooManyRecords(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "too-many-records", "Too many records", detail)


class Busy(ProblemError):
    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(503, "busy", "Service busy", detail, retry_after=retry_after)


class NotFound(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(404, "not-found", "Not found", detail)


@dataclass
class Problem:
    status: int
    slug: str
    title: str
    detail: str
    instance: str
    request_id: str | None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def problem_for_exception(exc: BaseException, instance: str, request_id: str | None) -> Problem:
    """The problem document for any exception the app lets out; unknown ones are logged and become
    a 500 without their text (it could hold internals)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    if isinstance(exc, ProblemError):
        return Problem(exc.status, exc.slug, exc.title, exc.detail, instance, request_id, exc.headers, exc.extra)
    if isinstance(exc, MailtriageError):
        from .probe_guard import ProbeRefused

        extra: dict[str, Any] = {}
        if exc.location is not None:
            extra["location"] = {"path": exc.location.path, "line": exc.location.line, "column": exc.location.column}
        if isinstance(exc, ProbeRefused):
            return Problem(403, "probe-refused", "Probe refused", exc.message, instance, request_id, extra=extra)
        slug = type(exc).__name__.removesuffix("Error").lower() or "mailtriage"
        return Problem(400, f"{slug}-error", "Bad input", exc.message, instance, request_id, extra=extra)
    if isinstance(exc, RequestValidationError):
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")),
             "type": str(error.get("type", ""))}
            for error in exc.errors()[:20]
        ]
        return Problem(422, "invalid-request", "Invalid request", "the request does not fit the API's schema",
                       instance, request_id, extra={"errors": errors})
    if isinstance(exc, HTTPException):
        titles = {404: "Not found", 405: "Method not allowed", 400: "Bad request", 413: "Request too large"}
        return Problem(exc.status_code, f"http-{exc.status_code}", titles.get(exc.status_code, "HTTP error"),
                       str(exc.detail), instance, request_id, dict(exc.headers or {}))
    if isinstance(exc, TimeoutError):
        return Problem(503, "timeout", "Request took too long", str(exc) or "time limit reached", instance, request_id)
    if isinstance(exc, OSError):
        return Problem(400, "client-disconnected", "Client went away", "the request body ended early", instance, request_id)
    log.error("internal error", exc_info=exc, extra={"fields": {"event": "internal-error", "request_id": request_id}})
    return Problem(500, "internal", "Internal error", "an internal error occurred; it has been logged", instance, request_id)


def problem_dict(problem: Problem) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": PROBLEM_TYPE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": problem.instance,
    }
    if problem.request_id:
        data["request_id"] = problem.request_id
    data.update(problem.extra)
    return data


def problem_response(problem: Problem) -> Response:
    body = json.dumps(problem_dict(problem), ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "location": {"type": "object"},
        "errors": {"type": "array"},
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}}


# The error answers every route can give (documented once, so the OpenAPI document is complete).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Bad input: the library's MailtriageError, with its location."),
    401: _problem("Missing or wrong bearer token (when the service requires one)."),
    403: _problem("Probe refused by the service's policy."),
    404: _problem("No such rule."),
    408: _problem("The client paused too long while sending the body."),
    413: _problem("Body, upload, lines or records over the service's limits."),
    415: _problem("A body format the route does not take."),
    422: _problem("The request does not fit the schema."),
    429: _problem("Rate limit reached (probe)."),
    503: _problem("Busy, still loading, or over the time limit; see Retry-After."),
}
