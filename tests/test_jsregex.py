"""jsregex: Python patterns spelled for JavaScript's RegExp. Every pattern the paste page gets in
rules.json (context markers, the returned-message cut, detect_kind's and the log readers'
patterns) must find what Python finds, at the same place with the same groups, run under Node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailtriage.intake import DETECTION_PATTERNS
from mailtriage.intake.context import MARKERS, TEXT_SOURCES
from mailtriage.intake.logs import EXPORTED_PATTERNS
from mailtriage.intake.reply import RETURNED_MESSAGE
from mailtriage.jsregex import UnsupportedPattern, js_regex
from mailtriage.site_export import export_reading

HARNESS = Path(__file__).parent / "data" / "site" / "regex_harness.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def exported_patterns() -> list[tuple[str, re.Pattern[Any], str, str, bool]]:
    """(name, Python pattern, JavaScript source, flags, is bytes) of every pattern in export_reading,
    paired with the Python pattern it was made from."""
    reading = export_reading()
    out: list[tuple[str, re.Pattern[Any], str, str, bool]] = []
    text_markers = [m for m in MARKERS if m.also is None and any(s in TEXT_SOURCES for s in m.sources)]
    assert len(text_markers) == len(reading["markers"])
    for marker, spec in zip(text_markers, reading["markers"], strict=True):
        out.append((f"marker {marker.value} {marker.pattern}", re.compile(marker.pattern, re.I), spec["pattern"], spec["flags"], False))
    spec = reading["returned_message"]
    out.append(("returned_message", RETURNED_MESSAGE, spec["pattern"], spec["flags"], False))
    for name, compiled in EXPORTED_PATTERNS.items():
        spec = reading["logs"]["patterns"][name]
        out.append((f"logs {name}", compiled, spec["pattern"], spec["flags"], False))
    for name, bytes_pattern in DETECTION_PATTERNS.items():
        spec = reading["detection"][name]
        out.append((f"detection {name}", bytes_pattern, spec["pattern"], spec["flags"], True))
    return out


def python_results(pattern: re.Pattern[Any], texts: list[str], is_bytes: bool) -> list[Any]:
    results: list[Any] = []
    for text in texts:
        if is_bytes:
            # detect_kind matches (at the start) what paste.js tests with a ^-anchored pattern.
            found_bytes = pattern.search(text.encode("utf-8"))
            results.append(None if found_bytes is None else [found_bytes.start(), found_bytes.end(),
                           [None if g is None else g.decode("latin-1") for g in found_bytes.groups()]])
            continue
        found = pattern.search(text)
        results.append(None if found is None else [found.start(), found.end(), list(found.groups())])
    return results


def run_patterns(patterns: list[tuple[str, re.Pattern[Any], str, str, bool]], texts: list[str]) -> list[str]:
    """The disagreements between Python and Node on `texts`, one line each."""
    assert NODE is not None
    request = {"patterns": [[source, flags, is_bytes] for _, _, source, flags, is_bytes in patterns], "texts": texts}
    done = subprocess.run([NODE, str(HARNESS)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["errors"] == []
    problems = []
    for (name, compiled, _, _, is_bytes), js in zip(patterns, answer["results"], strict=True):
        for text, python, javascript in zip(texts, python_results(compiled, texts, is_bytes), js, strict=True):
            if python != javascript:
                problems.append(f"{name}: {text!r} python={python} js={javascript}")
    return problems


# Log lines and replies as they appear, and the characters on which Python's and JavaScript's
# classes differ (other scripts' digits and letters, Unicode spaces, line separators).
LINES = [
    "May 16 08:00:03 relay postfix/smtp[1002]: 4AB12C3D4E: to=<bob@example.net>, relay=mx1.example.net[192.0.2.25]:25, "
    "delay=1, dsn=5.1.1, status=bounced (host mx1.example.net[192.0.2.25] said: 550 5.1.1 User unknown (in reply to RCPT TO command))",
    "postfix-out/smtp[3131]: connect to mx.b.example[192.0.2.1]:25: Connection refused",
    "2024-05-16 09:00:01 1sABCD-000123-EF ** grace@example.com R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.20]: x",
    "== heidi@example.net R=dnslookup T=remote_smtp defer (111): Connection refused",
    "sm-mta[12347]: 44GB0aX0012346: to=<m@slow.example>, relay=mx.slow.example. [192.0.2.1]:587, dsn=4.0.0, stat=Deferred",
    "[2001:db8::1]:25", "mx.example.net.", "4.4.1", "5.7.26\n", "Jun  3 14:22:10 ", "2024-06-03T14:22:11",
    "Generating server: DM6PR12MB1234.namprd12.prod.outlook.com", "outbound connector", "- gsmtp", "AS(7555)",
    "\n--- Below this line is a copy of the message.", "Original message headers:",
]
_PIECES = st.sampled_from([
    *LINES, "postfix/", "sendmail[", "[", "]", "(", ")", "<", ">", ":", "=", "-", "**", "==", " ", "\n", "\r", "\t",
    "\u00a0", "\u2028", "\x1c", "\x85", "\u3000", "\u0663", "\u0967", "\u00b2", "\u00e9", "\u03a9", "_", ".", "ſ", "K",
    "1sABCD", "-000123-", "EF", "defer (", "-1", "ok", "OK", "status=", "relay=", "H=", "R=", "T=",
])
_CHARS = st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",), blacklist_characters="\u0130\u0131")
_TEXT = st.lists(st.one_of(_PIECES, st.text(alphabet=_CHARS, max_size=3)), max_size=12).map("".join)


@needs_node
def test_every_exported_pattern_finds_what_python_finds_on_real_lines() -> None:
    patterns = exported_patterns()
    assert len(patterns) >= 30
    assert not run_patterns(patterns, LINES)


@needs_node
@settings(max_examples=30, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=30))
@example(["postfix/smtp\u0663[1]: ", "a\u0663\u0663\u0663\u0663\u0663\u0663-bbbbbb-cc ** x", "mx.example\u2028.net", "x \u00a0y", "5.7.1\n"])
def test_every_exported_pattern_finds_what_python_finds_fuzzed(texts: list[str]) -> None:
    problems = run_patterns(exported_patterns(), texts)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize(
    ("python", "javascript", "flags"),
    [
        (r"a\w+", "a[\\p{L}\\p{N}_]+", ""),
        (r"[\w.\-]+", "[\\p{L}\\p{N}_.\\-]+", ""),
        (r"\S+?\d", "[^\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+?[\\p{Nd}]", ""),
        (r"x$", "x(?=\\n?(?![\\s\\S]))", ""),
        (r"(?m)^x$", "(?<![^\\n])x(?=\\n|(?![\\s\\S]))", ""),
        (r"(?s)a.b", "a.b", "s"),
        (r"a.b", "a[^\\n]b", ""),
        (r"\<x\-y\>", "<x-y>", ""),
        (r"a{,3}b{2}c{}", "a{0,3}b{2}c\\{\\}", ""),
        (r"(?P<host>h)(?P=host)", "(?<host>h)\\k<host>", ""),
        (r"[]a]", "[\\]a]", ""),
        (r"a]", "a\\]", ""),
    ],
)
def test_js_regex_spells_python_semantics(python: str, javascript: str, flags: str) -> None:
    assert js_regex(python) == (javascript, flags)


def test_js_regex_ascii_mode_uses_ascii_classes() -> None:
    assert js_regex(r"\d\w\s", ascii=True) == ("[0-9][A-Za-z0-9_][\\t\\n\\x0b\\x0c\\r ]", "")


@pytest.mark.parametrize("python", [r"\w++", r"a{2}+", r"[\W]", r"\p{L}", r"(?x)a", r"(?(1)a|b)", "[a", "a\\"])
def test_js_regex_refuses_what_javascript_cannot_say(python: str) -> None:
    with pytest.raises(UnsupportedPattern):
        js_regex(python)


def test_js_pattern_carries_ignorecase_and_refuses_compile_flags_it_would_lose() -> None:
    import re

    from mailtriage.jsregex import UnsupportedPattern, js_pattern

    assert js_pattern(re.compile("abc", re.I))["flags"].startswith("i")
    assert "i" not in js_pattern(re.compile("abc"))["flags"]
    assert js_pattern(re.compile(rb"^\d+ "))["pattern"]  # a bytes pattern keeps ASCII classes
    for flag in (re.M, re.S, re.X):
        with pytest.raises(UnsupportedPattern):
            js_pattern(re.compile("a", flag))
