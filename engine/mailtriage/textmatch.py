"""Case-insensitive text tests for rule patterns, with a cheap necessary-word prefilter.

Rule patterns come from pull requests, so they run on RE2 (`google-re2`): matching time is
linear in the text whatever the pattern, where Python's backtracking `re` can take minutes on
`(a|a)*b`. RE2 has no look-around and no back-references; lint refuses patterns it cannot
compile (MT007). Its `\\w`, `\\d`, `\\s` and `\\b` are ASCII, as in the browser's RE2 port.

Text matching dominates query time (rules key on codes *and* wording), so each pattern gets a
test equivalent to an RE2 case-insensitive search that first checks, for ASCII text, whether any
word a match would need is present at all. The word analysis only *parses* the pattern with
Python's regex parser; nothing runs a rule pattern on Python's `re`.
"""

from __future__ import annotations

import functools
import re
import re._constants as constants  # type: ignore[import-not-found]
import re._parser as parser  # type: ignore[import-not-found]
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class PatternError(ValueError):
    """A rule pattern RE2 cannot compile (look-around, back-references, bad syntax, too big)."""


@functools.cache
def _re2_engine() -> tuple[Any, Any, Any]:
    """(RE2 class, its options for rule patterns, unanchored anchor), imported on first use."""
    from re2 import _re2  # type: ignore[import-untyped]

    options = _re2.RE2.Options()
    options.case_sensitive = False
    options.log_errors = False  # errors are reported by us, with the rule's location
    options.never_capture = True  # a yes/no test: no submatch bookkeeping
    return _re2.RE2, options, _re2.RE2.Anchor.UNANCHORED


def re2_syntax(pattern: str) -> str:
    """`pattern` in RE2's spelling: Python's end-of-text `\\Z` is RE2's `\\z`."""
    if "\\Z" not in pattern:
        return pattern
    return re.sub(r"(?<!\\)((?:\\\\)*)\\Z", r"\1\\z", pattern)


class LinearPattern:
    """A rule pattern compiled by RE2: `search` takes time linear in the text."""

    __slots__ = ("_match", "_unanchored", "pattern")

    def __init__(self, pattern: str) -> None:
        engine, options, self._unanchored = _re2_engine()
        compiled = engine(re2_syntax(pattern).encode("utf-8", "surrogatepass"), options)
        if not compiled.ok():
            error = compiled.error()
            raise PatternError(error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error))
        self.pattern = pattern
        self._match = compiled.Match

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in `text` (case-insensitively)."""
        data = text.encode("utf-8", "surrogatepass")
        found: bool = self._match(self._unanchored, data, 0, len(data))[0][0] != -1
        return found


@functools.cache
def compile_pattern(pattern: str) -> LinearPattern:
    """The compiled rule pattern; raises PatternError when RE2 cannot compile it."""
    return LinearPattern(pattern)


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile `pattern`, or None when it can."""
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return None


# A long alternation is split (see `alternation_search`) only once its test has run this many
# times: splitting compiles every alternative, which costs a one-shot command more than it saves.
SPLIT_AFTER_CALLS = 16
# Splitting pays from four alternatives on (bundled patterns, per test: 2 alternatives 1.00 vs
# 1.10 us, 4: 1.84 vs 1.69 us, 6 or more: 6.9 vs 3.2 us).
MIN_ALTERNATIVES_TO_SPLIT = 4


@functools.cache
def text_search(pattern: str) -> Callable[[str], bool]:
    """A test equivalent to `compile_pattern(pattern).search(text)`, but cheaper.

    Most rule patterns cannot match unless the text contains one of a few literal words (the
    words of `a|b|c`, or the longest literal run of a sequence). For ASCII text that necessary
    condition is checked first with substring tests on the lower-cased text, and the regex runs
    only when it holds; for a pure alternation of words the substring test is the whole answer.
    Non-ASCII text always goes to the regex, since Unicode case folding differs from lower().
    A pattern tested often enough is then split into its top-level alternatives.
    """
    whole = _prefiltered_search(pattern)
    if len(_top_level_parts(pattern)) < MIN_ALTERNATIVES_TO_SPLIT:
        return whole
    state: list[Any] = [whole, 0]  # current test, calls so far

    def test(text: str) -> bool:
        current = state[0]
        if current is whole:
            state[1] += 1
            if state[1] == SPLIT_AFTER_CALLS:
                state[0] = alternation_search(pattern) or whole
        result: bool = current(text)
        return result

    return test


def _prefiltered_search(pattern: str) -> Callable[[str], bool]:
    search = compile_pattern(pattern).search
    analysis = _required_words(pattern)
    if analysis is None:
        return search
    words, exact = analysis

    def test(text: str) -> bool:
        folded = _ascii_folded(text)
        if folded is not None:
            for word in words:
                if word in folded:
                    break
            else:
                return False
            if exact:
                return True
        return search(text)

    return test


def alternation_search(pattern: str) -> Callable[[str], bool] | None:
    """`a|b|c` matches somewhere iff one of a, b, c does, so each alternative gets its own word
    prefilter: a long alternation then runs only the few small regexes whose words occur, instead
    of trying every alternative at every position of the text. None if the pattern is not a
    top-level alternation that can be split."""
    alternatives = split_alternatives(pattern)
    if alternatives is None or len(alternatives) < 2:
        return None
    search = compile_pattern(pattern).search
    filtered: list[tuple[tuple[str, ...], Callable[[str], bool] | None]] = []
    unfiltered: list[str] = []
    for alternative in alternatives:
        analysis = _required_words(alternative)
        if analysis is None:
            unfiltered.append(alternative)
        else:
            words, exact = analysis
            filtered.append((words, None if exact else compile_pattern(alternative).search))
    # Alternatives without a necessary word always run; one regex for all of them.
    rest = compile_pattern("|".join(unfiltered)).search if unfiltered else None

    def test(text: str) -> bool:
        folded = _ascii_folded(text)
        if folded is None:
            return search(text)
        for words, part_search in filtered:
            for word in words:
                if word in folded:
                    if part_search is None or part_search(text):
                        return True
                    break
        return rest is not None and rest(text)

    return test


def split_alternatives(pattern: str) -> list[str] | None:
    """The top-level alternatives of `pattern` as separate patterns, or None when splitting could
    change the meaning (back-references, conditional groups, global inline flags) or the pattern
    does not compile."""
    try:
        compile_pattern(pattern)
        tree = parser.parse(pattern, re.IGNORECASE)
        plain_flags = parser.parse("", re.IGNORECASE).state.flags
    except (PatternError, re.error, RecursionError, OverflowError):
        return None
    if tree.state.flags != plain_flags or _has_group_references(list(tree)):
        return None
    parts = _top_level_parts(pattern)
    try:
        for part in parts:
            compile_pattern(part)
    except PatternError:
        return None
    return parts


def _top_level_parts(pattern: str) -> list[str]:
    """`pattern` cut at each `|` outside groups and character classes (no validation)."""
    parts: list[str] = []
    start = depth = 0
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal member, not the end of the class.
            if pattern.startswith("^", index + 1):
                index += 1
            if pattern.startswith("]", index + 1):
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    parts.append(pattern[start:])
    return parts


def _has_group_references(items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        if op in (constants.GROUPREF, constants.GROUPREF_EXISTS, constants.GROUPREF_IGNORE):
            return True
        if isinstance(arg, (list, tuple)):
            for element in arg:
                if isinstance(element, parser.SubPattern) and _has_group_references(list(element)):
                    return True
                if isinstance(element, list) and any(
                    isinstance(inner, parser.SubPattern) and _has_group_references(list(inner)) for inner in element
                ):
                    return True
        elif isinstance(arg, parser.SubPattern) and _has_group_references(list(arg)):
            return True
    return False


class WordFinder:
    """Which of many lower-case words occur in a lower-cased text, in one regex pass.

    The words become one trie-shaped regex inside a lookahead, so at each position of the text
    the engine follows a single path of characters (not hundreds of alternatives) and reports the
    longest word starting there; the shorter words on that path are its prefixes and occur too.
    """

    BUILD_AFTER_CALLS = 16  # compiling the trie costs a one-shot command more than plain tests
    # Below this many words, plain substring tests beat the trie (measured on 50-character replies:
    # 50 words 5.0 vs 6.3 us, 100 words 9.7 vs 7.6 us, 283 words 27 vs 12 us).
    MIN_WORDS_FOR_TRIE = 100

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted(set(words))
        self._calls = 0
        self._search: Callable[[str], Iterable[re.Match[str]]] | None = None

    def build(self) -> None:
        """Compile the trie now (otherwise after BUILD_AFTER_CALLS texts)."""
        trie: dict[str, Any] = {}
        for word in self.words:
            node = trie
            for char in word:
                node = node.setdefault(char, {})
            node[""] = {}  # a word ends here
        # For each word, itself and the words that are its prefixes, read off its trie path.
        with_prefixes: dict[str, tuple[str, ...]] = {}
        for word in self.words:
            node, found = trie, []
            for length, char in enumerate(word, start=1):
                node = node[char]
                if "" in node:
                    found.append(word[:length])
            with_prefixes[word] = tuple(found)
        self._with_prefixes = with_prefixes
        # Assigned last: another thread may start using it as soon as it is set.
        self._search = re.compile("(?=(" + _trie_pattern(trie) + "))", re.DOTALL).finditer

    def find(self, folded: str) -> list[str]:
        """The words that occur in `folded`, in alphabetical order."""
        if not self.words:
            return []
        if self._search is None:
            self._calls += 1
            if self._calls < self.BUILD_AFTER_CALLS or len(self.words) < self.MIN_WORDS_FOR_TRIE:
                return [word for word in self.words if word in folded]
            self.build()
            assert self._search is not None
        found: set[str] = set()
        for match in self._search(folded):
            found.update(self._with_prefixes[match.group(1)])
        return sorted(found)


def _trie_pattern(node: dict[str, Any]) -> str:
    alternatives = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    # Greedy: the longer words through this node are tried before stopping at the one ending here.
    return "(?:" + body + ")?" if "" in node else body


@functools.lru_cache(maxsize=64)
def _ascii_folded(text: str) -> str | None:
    """The lower-cased text if it is ASCII, else None; one query tests the same few texts against
    dozens of patterns, so the folding is done once per text."""
    return text.lower() if text.isascii() else None


_MIN_WORD = 3  # shorter necessary words filter too little to be worth the check


WordAnalysis = tuple[tuple[str, ...], bool] | None
# Pattern -> its analysis. Parsing patterns is most of what building a dispatch index costs, so the
# knowledge-base cache stores the analyses of every bundled pattern and primes this on load.
_analyses: dict[str, WordAnalysis] = {}


def word_analyses(patterns: Iterable[str]) -> dict[str, WordAnalysis]:
    return {pattern: _required_words(pattern) for pattern in patterns}


def prime_word_analyses(analyses: Mapping[str, WordAnalysis]) -> None:
    _analyses.update(analyses)


def _required_words(pattern: str) -> WordAnalysis:
    """(words, exact): a match needs one of `words` (lower-case ASCII) in the text; `exact` when
    containing one of them is also enough (the pattern is just `word|word|...`)."""
    if pattern not in _analyses:
        _analyses[pattern] = _analyse(pattern)
    return _analyses[pattern]


def _analyse(pattern: str) -> WordAnalysis:
    try:
        tree = list(parser.parse(pattern, re.IGNORECASE))
    except (re.error, RecursionError, OverflowError):
        return None

    def sequence(items: list[tuple[Any, Any]]) -> tuple[set[str] | None, bool]:
        """Necessary words of a sequence, and whether the sequence is one literal run."""
        candidates: list[set[str]] = []
        run: list[str] = []
        only_literals = True
        for op, arg in items:
            if op is constants.LITERAL and arg < 128:
                run.append(chr(arg).lower())
                continue
            only_literals = False
            if run:
                candidates.append({"".join(run)})
                run = []
            if op is constants.BRANCH:
                found = branch(arg[1])
                if found is not None:
                    candidates.append(found)
            elif op is constants.SUBPATTERN and not arg[1] and not arg[2]:
                inner, _ = sequence(list(arg[3]))
                if inner is not None:
                    candidates.append(inner)
        if run:
            candidates.append({"".join(run)})
        if not candidates:
            return None, False
        best = max(candidates, key=lambda words: min(len(w) for w in words))
        return best, only_literals and len(candidates) == 1

    def branch(alternatives: list[Any]) -> set[str] | None:
        words: set[str] = set()
        for alternative in alternatives:
            found, _ = sequence(list(alternative))
            if found is None:
                return None
            words |= found
        return words

    if len(tree) == 1 and tree[0][0] is constants.BRANCH:
        alternatives = tree[0][1][1]
        parts = [sequence(list(alternative)) for alternative in alternatives]
        if any(found is None for found, _ in parts):
            return None
        words = set().union(*(found for found, _ in parts if found is not None))
        exact = all(is_run for _, is_run in parts)
    else:
        found, exact = sequence(tree)
        if found is None:
            return None
        words = found
    if min(len(word) for word in words) < _MIN_WORD:
        return None
    return tuple(sorted(words)), exact
