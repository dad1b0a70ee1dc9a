"""Text that is safe to print on a terminal.

Pasted replies, bounce messages, log lines, file names and probed servers' banners may carry ESC
sequences (window title, screen clearing, OSC-8 links), other C0/C1 control characters or bidi
overrides. Everything the CLI prints goes through `visible`, which shows each such character as
an escape (`\\x1b`, `\\u202e`) instead of sending it to the terminal.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), and the Unicode
# controls that reorder or hide text (bidi embeddings/overrides/isolates, marks, BOM).
_OTHER_UNSAFE = "\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
_UNSAFE_LINE = re.compile(f"[\x00-\x1f{_OTHER_UNSAFE}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHER_UNSAFE}]")  # keeps \t and \n
# Inside JSON strings json.dumps escapes C0 controls itself; these it leaves raw with ensure_ascii=False.
_UNSAFE_IN_JSON = re.compile(f"[{_OTHER_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control character shown as an escape. With `keep_lines`, line feeds and
    tabs are kept (for multi-line text such as a rule's fix steps); carriage returns never are."""
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE_LINE
    return pattern.sub(_escape, text)


def visible_tree(data: Any, *, keep_lines: bool = True) -> Any:
    """A copy of JSON-like `data` (dicts, lists, tuples, scalars) with `visible` applied to every
    string, keys included."""
    if isinstance(data, str):
        return visible(data, keep_lines=keep_lines)
    if isinstance(data, dict):
        return {visible_tree(k, keep_lines=keep_lines): visible_tree(v, keep_lines=keep_lines) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [visible_tree(item, keep_lines=keep_lines) for item in data]
    return data


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(data: Any, indent: int | None = 2) -> str:
    """`data` as JSON (non-ASCII kept readable) in which no control character appears raw: the
    ones json.dumps leaves alone become `\\uXXXX` escapes, which decode to the same string."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(_json_escape, text)


def text_bytes(text: str) -> bytes:
    """`text` as UTF-8, giving back the original bytes a surrogateescape decode hid in it (U+DC80 to
    U+DCFF). Any other lone surrogate (from the library API or a JSON "\\ud800" escape) cannot be
    UTF-8: it becomes bytes that later decode as U+FFFD, never an exception."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")

