"""JSON bytes for the service's answers, stream lines and logs.

orjson (in the `serve` extra) encodes a diagnosis document five to ten times faster than
`json.dumps` (measured in benchmarks/bench_service.py: about 25 us against 150 us for a typical
11 kB document), which is most of what a short reply costs the server beyond the library.
The JSON is the same document (orjson writes no spaces after separators). What orjson refuses
(lone surrogates, integers over 64 bits, keys that are not strings) and an install without it
fall back to the standard library, escaped to ASCII so that the bytes are always valid UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_orjson_dumps: Callable[..., bytes] | None
try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - the serve extra installs it
    _orjson_dumps = None


def json_bytes(data: Any) -> bytes:
    """`data` as UTF-8 JSON."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(data)
        except TypeError:  # orjson.JSONEncodeError: see the module's note
            pass
    return json.dumps(data).encode("ascii")


def json_text(data: Any) -> str:
    """`data` as a JSON string (log lines); values JSON cannot hold are written with `str`."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(data, default=str).decode("utf-8")
        except TypeError:
            pass
    return json.dumps(data, default=str)
