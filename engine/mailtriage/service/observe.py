"""Prometheus metrics and structured JSON logs of the service.

Metrics live in the process's default registry. With several worker processes, set
PROMETHEUS_MULTIPROC_DIR (`mailtriage serve --workers N` does it) and `/metrics` adds up every
worker's values; otherwise it shows this process's.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from .encoding import json_text

REQUESTS = Counter(
    "mailtriage_http_requests_total", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "mailtriage_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DIAGNOSES = Counter(
    "mailtriage_diagnoses_total",
    "Diagnoses made (diagnose and scan), by the top rule (`none` when no rule matched).",
    ["rule"],
)
SCAN_ROWS = Counter("mailtriage_scan_rows_total", "Rows streamed by /v1/scan, by kind (record or skipped).", ["kind"])
PROBES = Counter("mailtriage_probes_total", "Probe requests, by outcome.", ["outcome"])

# `labels()` checks and locks on every call (about 8 us); the children are kept here instead.
# Every label value comes from a small fixed set (methods outside METHODS count as "other",
# statuses are three digits, routes are `route_of`'s, rules are the knowledge base's), so the
# caches stay small whatever clients send.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_diagnosis_children: dict[str, Any] = {}


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method if method in METHODS else "other", route, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (REQUESTS.labels(key[0], route, str(status)), LATENCY.labels(route))
    children[0].inc()
    children[1].observe(seconds)


def count_diagnosis(rule: str) -> None:
    child = _diagnosis_children.get(rule)
    if child is None:
        child = _diagnosis_children[rule] = DIAGNOSES.labels(rule)
    child.inc()


def metrics_payload() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json_text(entry)


def log_config(level: str) -> dict[str, Any]:
    """A logging.config dict for uvicorn and the app: JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "mailtriage.service": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def setup_logging(level: str) -> None:
    """For an app built outside `mailtriage serve` (tests, another ASGI server)."""
    logger = logging.getLogger("mailtriage.service")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
