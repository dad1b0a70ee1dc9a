"""Python `re` patterns spelled for JavaScript's RegExp: for the package's own patterns the paste
page runs (the context markers, where a bounce quotes the returned message, the MTA log-line
readers). Rule patterns, which come from pull requests, go to the page in RE2 syntax and run on
RE2JS instead; see site_export.

The result means what Python means, character for character, when compiled with the `u` flag
(plus the flags returned): Python's `\\w`, `\\d`, `\\s` and `\\b` are Unicode-aware and differ from
JavaScript's (ASCII `\\w` and `\\d`, another set of spaces), so they are spelled out as the classes
Python uses; `.` and `$` stop at `\\n` only, as in Python (JavaScript's also stop at `\\r`, U+2028
and U+2029). Patterns for bytes (`ascii=True`) get Python's ASCII classes instead; the page runs
those on text whose characters are the UTF-8 bytes, one each.
"""

from __future__ import annotations

import re

# Python inline flags JavaScript has no equivalent for in a pattern (x: verbose, L/a/u: locale and
# ASCII modes).
_UNSUPPORTED_FLAGS = set("xLau")

# Python's classes for str patterns, as the insides of a JavaScript class (`u` flag): \w is
# str.isalnum() or "_", \d the decimal digits (Nd), \s str.isspace().
_WORD = r"\p{L}\p{N}_"
_DIGIT = r"\p{Nd}"
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Python's classes for bytes patterns (and re.ASCII).
_ASCII_WORD = "A-Za-z0-9_"
_ASCII_DIGIT = "0-9"
_ASCII_SPACE = r"\t\n\x0b\x0c\r "

# Characters that may be escaped in a `u`-flag RegExp (anywhere, and also inside a class).
_SYNTAX = set("^$\\.*+?()[]{}|/")
_CLASS_SYNTAX = _SYNTAX | {"-"}
# A quantifier in braces, as Python reads one ({2}, {2,}, {,3}, {2,3}); any other brace is a literal.
_BOUND = re.compile(r"\{([0-9]*)(?:(,)([0-9]*))?\}")


class UnsupportedPattern(ValueError):
    """A construct JavaScript's RegExp lacks."""


def _boundary(word: str, negated: bool) -> str:
    if negated:
        return f"(?:(?<=[{word}])(?=[{word}])|(?<![{word}])(?![{word}]))"
    return f"(?:(?<=[{word}])(?![{word}])|(?<![{word}])(?=[{word}]))"


def js_pattern(compiled: re.Pattern[str] | re.Pattern[bytes]) -> dict[str, str]:
    """A compiled Python pattern as the paste page reads it: `{"pattern", "flags"}` in JavaScript's
    spelling, `i` added for re.IGNORECASE; a bytes pattern keeps its ASCII classes."""
    if compiled.flags & (re.MULTILINE | re.DOTALL | re.VERBOSE):
        raise UnsupportedPattern("re.MULTILINE, re.DOTALL and re.VERBOSE given to compile() are not carried over: write them inline")
    if isinstance(compiled.pattern, bytes):
        source, flags = js_regex(compiled.pattern.decode("ascii"), ascii=True)
    else:
        source, flags = js_regex(compiled.pattern)
    return {"pattern": source, "flags": ("i" if compiled.flags & re.IGNORECASE else "") + flags}


def js_regex(pattern: str, ascii: bool = False) -> tuple[str, str]:
    """(source, extra flags) of a JavaScript RegExp equivalent to Python `pattern`: compile it with
    `"u" + flags` (add `i` where Python adds re.I; flags holds `s` for Python's DOTALL). With
    `ascii`, the pattern is a bytes pattern: compile it with `flags` (no `u`) and run it on the
    bytes as characters. Raises UnsupportedPattern for constructs JavaScript lacks."""
    word, digit, space = (_ASCII_WORD, _ASCII_DIGIT, _ASCII_SPACE) if ascii else (_WORD, _DIGIT, _SPACE)
    classes = {"w": word, "d": digit, "s": space}
    out: list[str] = []
    flags: set[str] = set()
    multiline = dotall = False
    i = 0
    n = len(pattern)
    in_class = False
    last_quantifier = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise UnsupportedPattern("trailing backslash")
            nxt = pattern[i + 1]
            i += 2
            last_quantifier = False
            if nxt in classes:
                out.append(classes[nxt] if in_class else f"[{classes[nxt]}]")
            elif nxt in "WDS":
                if in_class:
                    raise UnsupportedPattern(f"\\{nxt} inside a class has no JavaScript spelling")
                out.append(f"[^{classes[nxt.lower()]}]")
            elif nxt in "bB" and not in_class:
                out.append(_boundary(word, nxt == "B"))
            elif nxt == "b":  # in a class: backspace
                out.append("\\x08")
            elif not in_class and nxt == "Z":
                out.append("(?![\\s\\S])")
            elif not in_class and nxt == "A":
                out.append("(?<![\\s\\S])")
            elif nxt in "NpPgGuU" and not (nxt == "u" and not ascii):
                raise UnsupportedPattern(f"\\{nxt} escapes are not portable")
            elif nxt.isalnum() or nxt in (_CLASS_SYNTAX if in_class else _SYNTAX):
                out.append("\\" + nxt)  # \n, \t, \x41, \u00e9, \1, \. ... mean the same
            else:
                # `\-`, `\<`, `\ `: a literal in Python; the `u` flag refuses the escape.
                out.append(nxt if nxt.isprintable() and not nxt.isspace() else f"\\u{{{ord(nxt):x}}}")
            continue
        if in_class or ch in "[(":
            last_quantifier = False
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "[" and i + 1 < n and pattern[i + 1] in ":=.":
                raise UnsupportedPattern("POSIX classes are not portable")
            elif ch == "[":
                ch = "\\["  # a literal in Python; a syntax error in a `u` class
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                # Python reads a leading ] as a literal; JavaScript would close an empty class.
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2:]
            if rest.startswith("P<"):
                out.append("(?<")
                i += 4
                continue
            if rest.startswith("P="):
                close = pattern.index(")", i)
                out.append(f"\\k<{pattern[i + 4:close]}>")
                i = close + 1
                continue
            if rest[:1] in (":", "=", "!") or rest.startswith(("<=", "<!")):
                out.append("(?")
                i += 2
                continue
            if rest[:1] in ("<",):
                out.append("(?")  # (?<name>...) is the same in both
                i += 2
                continue
            j = 0
            while j < len(rest) and rest[j].isalpha():
                j += 1
            letters = rest[:j]
            if letters and j < len(rest) and rest[j] == ")" and i == 0:
                if set(letters) & _UNSUPPORTED_FLAGS:
                    raise UnsupportedPattern(f"inline flags (?{letters}) are not portable")
                multiline = multiline or "m" in letters
                dotall = dotall or "s" in letters
                i += 2 + j + 1
                continue
            raise UnsupportedPattern(f"group (?{rest[:3]}... is not portable")
        if ch == "{":
            bound = _BOUND.match(pattern, i)
            if bound is not None and not bound.group(1) and not bound.group(2):
                bound = None  # "{}" is a literal
            if bound is None:  # a literal brace in Python; a syntax error with the `u` flag
                out.append("\\{")
                i += 1
                last_quantifier = False
                continue
            low, comma, high = bound.group(1), bound.group(2), bound.group(3)
            out.append("{" + (low or "0") + ("," + high if comma else "") + "}")
            i = bound.end()
            if i < n and pattern[i] == "+":
                raise UnsupportedPattern("possessive quantifiers are not portable")
            last_quantifier = True
            continue
        if ch in "]}":
            out.append("\\" + ch)  # literals in Python outside a class; syntax errors with `u`
            i += 1
            last_quantifier = False
            continue
        if ch in "*+?":
            if ch == "+" and last_quantifier:
                raise UnsupportedPattern("possessive quantifiers are not portable")
            # `?` right after a quantifier makes it lazy (same in both dialects).
            last_quantifier = not (ch == "?" and last_quantifier)
        else:
            last_quantifier = False
        if ch == "." and not dotall:
            out.append("[^\\n]")
        elif ch == "$":
            # Python's $: the end, or before a \n that ends the text (with MULTILINE, before any \n).
            out.append("(?=\\n|(?![\\s\\S]))" if multiline else "(?=\\n?(?![\\s\\S]))")
        elif ch == "^" and multiline:
            out.append("(?<![^\\n])")
        else:
            out.append(ch)
        i += 1
    if in_class:
        raise UnsupportedPattern("unterminated character class")
    if dotall:
        flags.add("s")
    return "".join(out), "".join(sorted(flags))
