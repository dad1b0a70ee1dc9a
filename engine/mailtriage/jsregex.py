"""Python `re` patterns spelled for JavaScript's RegExp: for the context markers, which are the
package's own code (rule patterns, which come from pull requests, go to the page in RE2 syntax
and run on RE2JS instead; see site_export)."""

from __future__ import annotations

# Python inline flags JavaScript has no equivalent for in a pattern (x: verbose, L/a/u: locale and
# ASCII modes).
_UNSUPPORTED_FLAGS = set("xLau")


class UnsupportedPattern(ValueError):
    """A construct JavaScript's RegExp lacks."""


def js_regex(pattern: str) -> tuple[str, str]:
    """(source, extra flags) of a JavaScript RegExp equivalent to Python `pattern`, searched with
    the `i` flag. Raises UnsupportedPattern for constructs JavaScript lacks."""
    out: list[str] = []
    flags = ""
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
            if not in_class and nxt == "Z":
                out.append("$")
            elif not in_class and nxt == "A":
                out.append("^")
            elif nxt in "NpPgG":
                raise UnsupportedPattern(f"\\{nxt} escapes are not portable")
            else:
                out.append(ch + nxt)
            i += 2
            last_quantifier = False
            continue
        if in_class or ch in "[(":
            last_quantifier = False
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "[" and i + 1 < n and pattern[i + 1] in ":=.":
                raise UnsupportedPattern("POSIX classes are not portable")
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
                flags += "".join(sorted(set(letters) & set("sm")))
                i += 2 + j + 1
                continue
            raise UnsupportedPattern(f"group (?{rest[:3]}... is not portable")
        if ch == "{" and pattern.startswith("{,", i):
            out.append("{0,")
            i += 2
            last_quantifier = False
            continue
        if ch in "*+?}":
            if ch == "+" and last_quantifier:
                raise UnsupportedPattern("possessive quantifiers are not portable")
            # `?` right after a quantifier makes it lazy (same in both dialects).
            last_quantifier = not (ch == "?" and last_quantifier)
        else:
            last_quantifier = False
        out.append(ch)
        i += 1
    return "".join(out), flags


