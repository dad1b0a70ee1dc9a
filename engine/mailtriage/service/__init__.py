"""`mailtriage serve`: the library behind an HTTP API for helpdesk, ticketing and monitoring tools.

Why FastAPI (on Starlette) served by uvicorn:
- Its OpenAPI document comes from the same pydantic models that validate requests, so the
  document that schemathesis tests is the one the code enforces.
- Starlette underneath gives the raw request stream (`request.stream()`), which `/v1/scan` needs
  to read an upload as it arrives, and lets a route return any ASGI callable, which the JSON
  Lines stream uses to avoid buffering.
- It is the best-known Python API framework among the people who will call or extend this
  service. Litestar (msgspec) would encode a little faster, but the hot paths here return bytes
  the library already encoded (with orjson), so the framework's serialiser is not on them; the
  benchmark (`benchmarks/bench_service.py`) measures what the framework costs on top of the
  library. For the same reason the busiest route, `POST /v1/diagnose`, is answered by the outer
  ASGI middleware without FastAPI's routing and dependency solving (`app.DiagnoseRoute`, the
  same code as the documented route): for a short reply those cost about as much as the
  diagnosis.
- uvicorn with httptools and uvloop is the reference ASGI server: worker processes
  (`--workers`), graceful shutdown on SIGTERM that finishes in-flight requests, flow control that
  stops reading a socket while the app has not taken the previous chunk (the scan's backpressure).

Install with the `serve` extra: `pip install 'mailtriage[serve]'`. The modules here import
FastAPI; nothing else in the package imports them.
"""

from __future__ import annotations

from .config import Limits, ProbeSettings, ServiceConfig

__all__ = ["Limits", "ProbeSettings", "ServiceConfig", "create_app"]


def create_app(config: ServiceConfig | None = None) -> object:
    """The ASGI app (see `app.create_app`)."""
    from .app import create_app as _create

    return _create(config)
