"""The necessary-word prefilter must never change an answer of a case-insensitive RE2 search
(the reference: google-re2's own `re`-like API), and rule patterns run in linear time."""

from __future__ import annotations

import re
import time

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RULES
from mailtriage.loader import load_knowledge_base
from mailtriage.model import iter_leaves
from mailtriage.textmatch import (
    SPLIT_AFTER_CALLS,
    PatternSet,
    WordFinder,
    _required_words,
    alternation_search,
    compile_pattern,
    folded_text,
    pattern_problem,
    split_alternatives,
    text_search,
)

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False


def reference_search(pattern: str, text: str) -> bool:
    return re2.compile(pattern, _OPTIONS).search(text) is not None

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
texts = st.lists(st.sampled_from([*WORDS, "MAILBOX", "Full", "ſ", "K", "İ", "ı", "é", "ÜSER", "550", " ", "-"]), max_size=8).map(" ".join) | st.text(max_size=30)


@settings(max_examples=400, deadline=None)
@given(patterns, texts)
def test_generated_patterns_agree_with_re(pattern: str, text: str) -> None:
    assert_agrees_with_re(pattern, text)


def assert_agrees_with_re(pattern: str, text: str) -> None:
    """Both forms of a pattern's test: as first used, and split into alternatives once used often."""
    expected = reference_search(pattern, text)
    assert text_search(pattern)(text) == expected
    split = alternation_search(pattern)
    if split is not None:
        assert split(text) == expected


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BUNDLED_PATTERNS), texts)
def test_bundled_patterns_agree_with_re(pattern: str, text: str) -> None:
    assert_agrees_with_re(pattern, text)


def test_the_prefilter_applies_to_most_bundled_patterns() -> None:
    covered = [p for p in BUNDLED_PATTERNS if _required_words(p) is not None]
    assert len(covered) >= 0.8 * len(BUNDLED_PATTERNS)
    assert _required_words("user unknown|no such user") == (("no such user", "user unknown"), True)
    assert _required_words(r"over ?quota") == (("quota",), False)
    assert _required_words(r"\d+") is None


@pytest.mark.parametrize(
    ("pattern", "alternatives"),
    [
        ("a|b", ["a", "b"]),
        ("(a|b)|c", ["(a|b)", "c"]),
        ("[|]|x", ["[|]", "x"]),
        ("[]|]|y", ["[]|]", "y"]),
        ("a[^]|]b|c", ["a[^]|]b", "c"]),
        (r"\|a|b", [r"\|a", "b"]),
        ("a|", ["a", ""]),
        ("(?i)a|b", ["(?i)a", "b"]),  # the flag we compile with anyway
        (r"(a)\1|b", None),  # a back-reference ties the alternatives together
        (r"(?P<x>a)(?P=x)|b", None),
        ("(a)?(?(1)b|c)|d", None),  # conditional group
        ("(?x) a | b", None),  # a global flag that changes how each part reads
        ("(", None),
    ],
)
def test_split_alternatives(pattern: str, alternatives: list[str] | None) -> None:
    assert split_alternatives(pattern) == alternatives


tricky_alternative = st.sampled_from(["[|]", "[]|]", r"\|", r"(a)\1", "(?:x|y)", r"\bspam\b", "^550", "$", "", "(?=user)u"])


@settings(max_examples=400, deadline=None)
@given(st.lists(tricky_alternative | patterns, min_size=2, max_size=5).map("|".join), texts)
def test_split_alternations_agree_with_re(pattern: str, text: str) -> None:
    if pattern_problem(pattern) is not None:  # look-around, back-references: refused by lint
        return
    assert_agrees_with_re(pattern, text)


def test_a_pattern_is_split_once_it_has_been_used_often() -> None:
    pattern = "mailbox (?:is )?full|over ?quota|user unknown|no such user"
    test = text_search(pattern)
    for _ in range(SPLIT_AFTER_CALLS + 2):  # before and after the switch
        assert test("452 4.2.2 Mailbox is FULL") and test("over quota") and not test("relay denied")


finder_words = st.lists(st.text(alphabet="ab .", min_size=1, max_size=5), max_size=12)


@settings(max_examples=500, deadline=None)
@given(finder_words, st.text(alphabet="ab .c", max_size=25))
def test_word_finder_finds_exactly_the_words_the_text_contains(words: list[str], text: str) -> None:
    expected = sorted({word for word in words if word in text})
    for use_automaton in (True, False):  # Aho-Corasick (pyahocorasick) and the pure-Python trie
        finder = WordFinder(words, use_automaton=use_automaton)
        assert finder.find(text) == expected  # plain substring tests, before the trie is worth building
        finder.build()
        assert (finder._iter is not None) == (use_automaton and bool(words))
        assert finder.find(text) == expected


def test_word_finder_reports_overlapping_and_nested_words() -> None:
    finder = WordFinder(["block", "blocked using", "on our ", "our list", "list", ".4.3"])
    finder.build()
    assert finder.find("blocked using on our list; 4.4.3") == [".4.3", "block", "blocked using", "list", "on our ", "our list"]
    assert finder.find("blocke") == ["block"]
    assert WordFinder([]).find("anything") == []


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(WORDS), st.text(max_size=20), st.text(max_size=20), st.data())
def test_folded_text_contains_every_word_re_would_find(word: str, before: str, after: str, data: st.DataObject) -> None:
    """The prefilters and the word dispatch rely on this: wherever `re.IGNORECASE` finds a word, the
    folded text holds it, non-ASCII text included (Kelvin sign, long s, dotted and dotless i)."""
    variants = {"k": ["k", "K", "\u212a"], "s": ["s", "S", "\u017f"], "i": ["i", "I", "\u0130", "\u0131"]}
    spelled = "".join(data.draw(st.sampled_from(variants.get(c, [c, c.upper()]))) for c in word)
    text = before + spelled + after
    assert re.search(re.escape(word), text, re.IGNORECASE)
    folded = folded_text(text)
    assert len(folded) == len(text) and word in folded


def test_folded_text_maps_exactly_the_characters_re_equates_with_ascii_letters() -> None:
    import string

    for code in [*range(128, 0x3000), 0x212A, 0x212B, 0xFB05, 0xFB06]:
        char = chr(code)
        equal = [a for a in string.ascii_lowercase if re.fullmatch(a, char, re.IGNORECASE)]
        assert folded_text(char) == (equal[0] if equal else char)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(BUNDLED_PATTERNS), min_size=1, max_size=8), texts)
def test_pattern_set_agrees_with_re2(chosen: list[str], text: str) -> None:
    patterns = PatternSet(chosen)
    expected = [compile_pattern(pattern).search(text) for pattern in chosen]
    assert [patterns.test(pattern, text) for pattern in chosen] == expected  # words looked up per plan
    patterns.build()
    assert [patterns.test(pattern, text) for pattern in chosen] == expected  # words found in one pass


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("(a|a)*b", "a" * 100_000),
        (r"((\w+\s?))*$", "word " * 20_000 + "!"),
        (".*.*.*.*.*.*=$", "x" * 100_000),
        ("(x+x+)+y", "x" * 100_000),
    ],
)
def test_catastrophic_patterns_run_in_linear_time(pattern: str, text: str) -> None:
    """Patterns that backtrack for minutes under Python's re (30 characters are enough for the
    first) answer at once: a generous bound, as a hang detector."""
    started = time.perf_counter()
    text_search(pattern)(text)
    compile_pattern(pattern).search(text)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("pattern", ["Host not found(?!, try again)", "(?<=a)b", r"(a)\1", "(?P<x>a)(?P=x)", "(?x) a b"])
def test_patterns_re2_cannot_run_are_refused(pattern: str) -> None:
    assert pattern_problem(pattern) is not None


def test_python_end_of_text_is_accepted() -> None:
    assert compile_pattern(r"full\Z").search("mailbox FULL") and not compile_pattern(r"full\Z").search("full!")


@settings(max_examples=300, deadline=None)
@given(patterns | st.sampled_from(BUNDLED_PATTERNS), texts)
def test_find_quotes_what_the_reference_search_matches(pattern: str, text: str) -> None:
    """The "why" lines quote `find`: the same leftmost match as RE2's own search, found exactly when
    the test holds (an empty match aside, which has nothing to quote)."""
    found = compile_pattern(pattern).find(text)
    reference = re2.compile(pattern, _OPTIONS).search(text)
    if reference is None:
        assert found is None
    else:
        assert found == reference.group(0)
