"""The necessary-word prefilter must never change an answer of re.search(..., IGNORECASE)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RULES
from mailtriage.loader import load_knowledge_base
from mailtriage.model import iter_leaves
from mailtriage.textmatch import _required_words, text_search

WORDS = ["mailbox", "full", "user", "unknown", "relay", "denied", "spf", "dkim", "quota", "5.7.1", "timeout", "test", "s"]
BUNDLED_PATTERNS = sorted(
    {leaf.value for rule in load_knowledge_base([RULES]).rules.values() for leaf in iter_leaves(rule.match) if leaf.op == "matches"}
)

word = st.sampled_from(WORDS).map(re.escape)
atom = st.one_of(
    word,
    st.sampled_from([r"\d+", r"\s", ".", "[a-z]+", r"\b", "x?"]),
    st.lists(word, min_size=1, max_size=3).map(lambda ws: "(?:" + "|".join(ws) + ")"),
    word.map(lambda w: f"(?:{w})?"),
)
patterns = st.lists(atom, min_size=1, max_size=4).map(" ?".join) | st.lists(
    st.lists(atom, min_size=1, max_size=3).map("".join), min_size=1, max_size=4
).map("|".join)
texts = st.lists(st.sampled_from([*WORDS, "MAILBOX", "Full", "ſ", "K", "é", "550", " ", "-"]), max_size=8).map(" ".join) | st.text(max_size=30)


@settings(max_examples=400, deadline=None)
@given(patterns, texts)
def test_generated_patterns_agree_with_re(pattern: str, text: str) -> None:
    assert text_search(pattern)(text) == (re.search(pattern, text, re.IGNORECASE) is not None)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BUNDLED_PATTERNS), texts)
def test_bundled_patterns_agree_with_re(pattern: str, text: str) -> None:
    assert text_search(pattern)(text) == (re.search(pattern, text, re.IGNORECASE) is not None)


def test_the_prefilter_applies_to_most_bundled_patterns() -> None:
    covered = [p for p in BUNDLED_PATTERNS if _required_words(p) is not None]
    assert len(covered) >= 0.8 * len(BUNDLED_PATTERNS)
    assert _required_words("user unknown|no such user") == (("no such user", "user unknown"), True)
    assert _required_words(r"over ?quota") == (("quota",), False)
    assert _required_words(r"\d+") is None
