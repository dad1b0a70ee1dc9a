"""Case-insensitive text tests for rule patterns, with a cheap necessary-word prefilter.

Rule patterns come from pull requests, so they run on RE2 (`google-re2`): matching time is
linear in the text whatever the pattern, where Python's backtracking `re` can take minutes on
`(a|a)*b`. RE2 has no look-around and no back-references; lint refuses patterns it cannot
compile (MT007). Its `\\w`, `\\d`, `\\s` and `\\b` are ASCII, as in the browser's RE2 port.

Text matching dominates query time (rules key on codes *and* wording), so each pattern gets a
test equivalent to an RE2 case-insensitive search that first checks, on the case-folded text,
whether any word a match would need is present at all. The word analysis only *parses* the
pattern with Python's regex parser; nothing runs a rule pattern on Python's `re`.
"""

from __future__ import annotations

import functools
import re
import re._constants as constants  # type: ignore[import-not-found]
import re._parser as parser  # type: ignore[import-not-found]
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class PatternError(ValueError):
    """A rule pattern RE2 cannot compile (look-around, back-references, bad syntax, too big)."""


@functools.cache
def _re2_engine() -> tuple[Any, Any, Any]:
    """(RE2 class, its options for rule patterns, unanchored anchor), imported on first use."""
    from re2 import _re2

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

    def find(self, text: str) -> str | None:
        """The leftmost part of `text` the pattern matches, or None (for the "why" lines: the words
        that made a text test hold say more than the whole pattern)."""
        data = text.encode("utf-8", "surrogatepass")
        start, end = self._match(self._unanchored, data, 0, len(data))[0]
        if start == -1:
            return None
        return data[start:end].decode("utf-8", "replace")


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
    """A test equivalent to `re.search(pattern, text, re.IGNORECASE) is not None`, but cheaper.

    Most rule patterns cannot match unless the text contains one of a few literal words (the
    words of `a|b|c`, or the longest literal run of a sequence). That necessary condition is
    checked first with substring tests on the folded text (`folded_text`), and the regex runs
    only when it holds; for a pure alternation of words the substring test is the whole answer.
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
    search = _search_either(pattern)  # on the folded text when the pattern allows it
    analysis = _required_words(pattern)
    if analysis is None:
        return lambda text: search(text, folded_text(text))
    words, exact = analysis

    def test(text: str) -> bool:
        folded = folded_text(text)
        for word in words:
            if word in folded:
                break
        else:
            return False
        return exact or search(text, folded)

    return test


def alternation_search(pattern: str) -> Callable[[str], bool] | None:
    """`a|b|c` matches somewhere iff one of a, b, c does, so each alternative gets its own word
    prefilter: a long alternation then runs only the few small regexes whose words occur, instead
    of trying every alternative at every position of the text. None if the pattern is not a
    top-level alternation that can be split."""
    alternatives = split_alternatives(pattern)
    if alternatives is None or len(alternatives) < 2:
        return None
    filtered: list[tuple[tuple[str, ...], Callable[[str, str], bool] | None]] = []
    unfiltered: list[str] = []
    for alternative in alternatives:
        analysis = _required_words(alternative)
        if analysis is None:
            unfiltered.append(alternative)
        else:
            words, exact = analysis
            filtered.append((words, None if exact else _search_either(alternative)))
    # Alternatives without a necessary word always run; one regex for all of them.
    rest = _search_either("|".join(unfiltered)) if unfiltered else None

    def test(text: str) -> bool:
        folded = folded_text(text)
        for words, part_search in filtered:
            for word in words:
                if word in folded:
                    if part_search is None or part_search(text, folded):
                        return True
                    break
        return rest is not None and rest(text, folded)

    return test


def split_alternatives(pattern: str, compile_parts: bool = True) -> list[str] | None:
    """The top-level alternatives of `pattern` as separate patterns, or None when splitting could
    change the meaning (back-references, conditional groups, global inline flags) or the pattern
    does not compile. Without `compile_parts` the parts are only parsed (the caller compiles
    them when first needed and falls back to the whole pattern if one does not compile)."""
    try:
        tree = parser.parse(pattern, re.IGNORECASE)
    except re.error:
        return None
    if tree.state.flags & ~(re.IGNORECASE | re.UNICODE) or _has_group_references(list(tree)):
        return None
    parts = _top_level_parts(pattern)
    try:
        for part in parts:
            if compile_parts:
                compile_pattern(part)
            else:
                parser.parse(part, re.IGNORECASE)
    except (re.error, PatternError):
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
    """Which of many lower-case words occur in a lower-cased text, in one pass: an Aho-Corasick
    automaton when pyahocorasick is installed, else the regex trie below.

    The words become one trie-shaped regex inside a lookahead, so at each position of the text
    the engine follows a single path of characters (not hundreds of alternatives) and reports the
    longest word starting there; the shorter words on that path are its prefixes and occur too.
    """

    BUILD_AFTER_CALLS = 16  # compiling the trie costs a one-shot command more than plain tests
    # Below this many words, plain substring tests beat the trie (measured on 50-character replies:
    # 50 words 5.0 vs 6.3 us, 100 words 9.7 vs 7.6 us, 283 words 27 vs 12 us).
    MIN_WORDS_FOR_TRIE = 100

    def __init__(self, words: Iterable[str], use_automaton: bool = True) -> None:
        self.words = sorted(set(words))
        self.use_automaton = use_automaton
        self._calls = 0
        self._search: Callable[[str], Iterable[re.Match[str]]] | None = None
        self._iter: Callable[[str], Iterable[tuple[int, str]]] | None = None
        self._built = False

    def build(self) -> None:
        """Compile the automaton (or the trie) now (otherwise after BUILD_AFTER_CALLS texts)."""
        automaton = _automaton(self.words) if self.use_automaton else None
        if automaton is not None:
            self._iter = automaton.iter
        else:  # the trie regex costs more to compile than the automaton: only without it
            self._build_trie()
        self._built = True  # last: another thread may start using it as soon as it is set

    def _build_trie(self) -> None:
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
        self._search = re.compile("(?=(" + _trie_pattern(trie) + "))", re.DOTALL).finditer

    def find(self, folded: str) -> list[str]:
        """The words that occur in `folded`, in alphabetical order."""
        if not self.words:
            return []
        if not self._built:
            self._calls += 1
            if self._calls < self.BUILD_AFTER_CALLS or len(self.words) < self.MIN_WORDS_FOR_TRIE:
                return [word for word in self.words if word in folded]
            self.build()
        if self._iter is not None:
            return sorted({word for _end, word in self._iter(folded)})
        assert self._search is not None
        found: set[str] = set()
        for match in self._search(folded):
            found.update(self._with_prefixes[match.group(1)])
        return sorted(found)


def _automaton(words: list[str]) -> Any:
    """An Aho-Corasick automaton of `words` (pyahocorasick, a C extension: one pass reports every
    occurrence, ~10x faster than the trie regex), or None where it is not installed."""
    try:
        import ahocorasick  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    if not words:
        return None
    automaton.make_automaton()
    return automaton


def _trie_pattern(node: dict[str, Any]) -> str:
    alternatives = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    # Greedy: the longer words through this node are tried before stopping at the one ending here.
    return "(?:" + body + ")?" if "" in node else body


# Python's case-insensitive `re` lets exactly these non-ASCII characters match an ASCII letter
# (checked over every code point): folding them too keeps the fold one character per character,
# so a word a pattern needs occurs in the folded text whenever the pattern can match.
_FOLD = str.maketrans({**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)},
                       "\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def fold_case(text: str) -> str:
    """The text with every character that `re.IGNORECASE` equates with an ASCII letter replaced by
    that lower-case letter, length preserved (ASCII text: simply lower()): a lower-case ASCII word
    `re.search(word, text, re.I)` finds is a substring of it."""
    return text.lower() if text.isascii() else text.translate(_FOLD)


@functools.lru_cache(maxsize=64)
def folded_text(text: str) -> str:
    """`fold_case(text)`, memoised: one query tests the same few texts against dozens of patterns,
    so the folding is done once per text."""
    return fold_case(text)


_MIN_WORD = 3  # shorter necessary words filter too little to be worth the check


WordAnalysis = tuple[tuple[str, ...], bool] | None
# Pattern -> its analysis. Parsing patterns is most of what building a dispatch index costs, so the
# knowledge-base cache stores the analyses of every bundled pattern and primes this on load.
_analyses: dict[str, WordAnalysis] = {}


def word_analyses(patterns: Iterable[str]) -> dict[str, WordAnalysis]:
    return {pattern: _required_words(pattern) for pattern in patterns}


def prime_word_analyses(analyses: Mapping[str, WordAnalysis], splits: Mapping[str, list[str] | None] | None = None) -> None:
    """Analyses (and, for `pattern_plan`, top-level alternatives) computed earlier, from the cache."""
    _analyses.update(analyses)
    if splits:
        _splits.update(splits)


# Pattern -> its top-level alternatives as `pattern_plan` splits it (None: not split). Parsing
# them was most of what building a PatternSet costs; the knowledge-base cache stores them too.
_splits: dict[str, list[str] | None] = {}


def plan_alternatives(pattern: str) -> list[str] | None:
    if pattern not in _splits:
        _splits[pattern] = split_alternatives(pattern, compile_parts=False) if len(_top_level_parts(pattern)) >= 2 else None
    return _splits[pattern]


def _required_words(pattern: str) -> WordAnalysis:
    """(words, exact): a match needs one of `words` (lower-case ASCII) in the text; `exact` when
    containing one of them is also enough (the pattern is just `word|word|...`)."""
    if pattern not in _analyses:
        _analyses[pattern] = _analyse(pattern)
    return _analyses[pattern]


def _analyse(pattern: str) -> WordAnalysis:
    try:
        tree = list(parser.parse(pattern, re.IGNORECASE))
    except re.error:
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


# One alternative of a pattern's plan: (necessary words, the words are enough, its regex search).
_Alternative = tuple[frozenset[str], bool, Callable[[str, str], bool]]


@dataclass(frozen=True)
class PatternPlan:
    """How to test one pattern given the words of the text found in one pass (see PatternSet):
    alternatives with necessary words are tried only when one of their words occurs; `rest` (a
    regex, or None) covers what has no necessary word."""

    alternatives: tuple[_Alternative, ...]
    rest: Callable[[str, str], bool] | None

    def test(self, found: frozenset[str] | None, text: str, folded: str) -> bool:
        """`found`: the words occurring in the text (a superset of this plan's words that do), or
        None to look for them in `folded`."""
        for words, exact, search in self.alternatives:
            if found is not None:
                if words.isdisjoint(found):
                    continue
            elif not any(word in folded for word in words):
                continue
            if exact or search(text, folded):
                return True
        return self.rest is not None and self.rest(text, folded)


def _search_either(pattern: str, whole: str | None = None) -> Callable[[str, str], bool]:
    """search(text, folded): on the folded text when the pattern allows it. Compiled on first
    use: most alternatives never run (their words never occur). `whole`: the pattern this one is
    an alternative of, searched instead if this one does not compile on its own (the whole
    pattern's outcome, the only thing a plan reports, is then unchanged)."""
    state: list[Callable[[str, str], bool]] = []

    def first(text: str, folded: str) -> bool:
        if not state:
            # Rule patterns run on RE2 only (linear time), never on Python's backtracking `re`.
            try:
                search = compile_pattern(pattern).search
            except PatternError:
                if whole is None:
                    raise
                search = compile_pattern(whole).search
            state.append(lambda text, _folded: search(text))
        return state[0](text, folded)

    return first


@functools.cache
def pattern_plan(pattern: str) -> PatternPlan:
    """The plan of `pattern`: split into its alternatives when that is safe and they have words,
    else the whole pattern behind its necessary words, else the plain regex."""
    alternatives = plan_alternatives(pattern)
    if alternatives is not None:
        filtered: list[_Alternative] = []
        unfiltered: list[str] = []
        for alternative in alternatives:
            analysis = _required_words(alternative)
            if analysis is None:
                unfiltered.append(alternative)
            else:
                filtered.append((frozenset(analysis[0]), analysis[1], _search_either(alternative, pattern)))
        rest = _search_either("|".join(unfiltered), pattern) if unfiltered else None
        return PatternPlan(tuple(filtered), rest)
    analysis = _required_words(pattern)
    search = _search_either(pattern)
    if analysis is None:
        return PatternPlan((), search)
    return PatternPlan(((frozenset(analysis[0]), analysis[1], search),), None)


class PatternSet:
    """Test many patterns against one text with one pass over the text: every necessary word of
    every pattern is found at once (a WordFinder trie), then each pattern is a set test plus,
    only when its words occur and are not enough, its own regex. Equivalent to
    `re.search(pattern, text, re.IGNORECASE) is not None` for each pattern (checked by Hypothesis).

    Analysing every pattern costs far more than a one-shot command's few tests, so for the first
    BUILD_AFTER_CALLS texts `found` returns None and each plan (built on first use) checks its own
    words in the folded text."""

    MEMO_SIZE = 64
    BUILD_AFTER_CALLS = 16

    def __init__(self, patterns: Iterable[str], extra_words: Iterable[str] = ()) -> None:
        """`extra_words` are also reported by `found` (for instance the dispatch words)."""
        self.patterns = tuple(patterns)
        self.extra_words = frozenset(extra_words)
        self._finder: WordFinder | None = None
        self._calls = 0
        self._found: dict[str, frozenset[str]] = {}

    def build(self) -> None:
        """Analyse every pattern and compile the word finder now."""
        words = {word for pattern in self.patterns for alternative in pattern_plan(pattern).alternatives for word in alternative[0]}
        finder = WordFinder(words | self.extra_words)
        finder.build()
        self._finder = finder

    def found(self, text: str) -> frozenset[str] | None:
        """The necessary words of any pattern (and the extra words) that occur in `text`, memoised
        for recent texts; None until the set is built."""
        found = self._found.get(text)
        if found is None:
            if self._finder is None:
                self._calls += 1
                if self._calls < self.BUILD_AFTER_CALLS:
                    return None
                self.build()
                assert self._finder is not None
            found = frozenset(self._finder.find(folded_text(text)))  # folded_text is memoised too
            if len(self._found) >= self.MEMO_SIZE:
                self._found.clear()  # a query reuses its own texts; older ones rarely come back
            self._found[text] = found
        return found

    def test(self, pattern: str, text: str) -> bool:
        return pattern_plan(pattern).test(self.found(text), text, folded_text(text))
