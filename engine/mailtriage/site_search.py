"""The site's search index: one per language, and rule pages findable by what users paste.

Material for MkDocs indexes every page section into one `search/search_index.json`;
mkdocs-static-i18n stacks the entries of all languages into that one file, so a Portuguese reader
searching "connection refused" got English pages first. `split_index` makes one index per language,
each under its language's folder (`pt-BR/search/search_index.json`), with locations relative to it;
the plugin points each page's search at its own language (the theme's `base`).

Users search with an error in hand. A rule page's first entry gets two extra lunr fields: `codes`
(the rule's status codes, and the class 4 and 5 spellings of an `X.` code) and `samples` (the
replies of its matching examples), boosted so that a pasted error finds the rule that explains it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Rule

# Relative to Material's title (1e3) and text (1e0): a code is the strongest evidence there is, a
# sample reply's words count as much as the title's.
FIELD_BOOSTS: dict[str, float] = {"codes": 1e4, "samples": 1e3}
_GENERIC_CODE = re.compile(r"\bX\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class RuleSearchTerms:
    """What a rule page's search entry carries besides its text."""

    codes: str
    samples: str

    @classmethod
    def of(cls, rule: Rule) -> RuleSearchTerms:
        codes: list[str] = []
        for code in rule.codes:
            codes.append(code)
            codes.extend(f"{cls_digit}.{m.group(1)}.{m.group(2)}" for m in _GENERIC_CODE.finditer(code) for cls_digit in "45")
        samples = [" ".join(example.reply.split()) for example in rule.examples_match if example.reply]
        return cls(codes=" ".join(codes), samples="\n".join(samples))


def add_rule_terms(entries: Iterable[dict[str, Any]], terms: Mapping[str, RuleSearchTerms]) -> int:
    """Give the first entry of each rule page (location = the page's URL) its codes and samples.
    Returns how many entries got them."""
    added = 0
    for entry in entries:
        location = str(entry.get("location", ""))
        found = terms.get(location)
        if found is None or "#" in location:
            continue
        entry["codes"] = found.codes
        entry["samples"] = found.samples
        added += 1
    return added


def split_index(index: Mapping[str, Any], prefixes: Mapping[str, str], lunr_langs: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """One index per language, keyed by URL prefix ("" or "pt-BR/"); locations relative to it.

    `prefixes`: language -> URL prefix; `lunr_langs`: language -> lunr languages of its index (the
    stop words and tokenizers the search worker loads)."""
    config = dict(index.get("config", {}))
    fields = dict(config.get("fields", {}))
    fields.update({name: {"boost": boost} for name, boost in FIELD_BOOSTS.items()})
    prefixed = sorted((p for p in prefixes.values() if p), key=len, reverse=True)
    out: dict[str, dict[str, Any]] = {}
    for lang, prefix in prefixes.items():
        docs = []
        for entry in index.get("docs", []):
            location = str(entry.get("location", ""))
            owner = next((p for p in prefixed if location.startswith(p)), "")
            if owner != prefix:
                continue
            docs.append({**entry, "location": location[len(prefix):]})
        out[prefix] = {"config": {**config, "lang": lunr_langs.get(lang, config.get("lang", ["en"])), "fields": fields}, "docs": docs}
    return out


def lunr_languages(langs: Iterable[str], available: Iterable[str], source: str) -> dict[str, list[str]]:
    """The lunr languages of each site language's index: its own (`pt` for `pt-BR`), plus the
    source language's, whose text shows on pages not yet translated."""
    known = list(available)
    result: dict[str, list[str]] = {}
    for lang in langs:
        own = lang if lang in known else lang.split("-")[0]
        chosen = [own] if own in known else []
        base = source if source in known else source.split("-")[0]
        if base not in chosen and base in known:
            chosen.append(base)
        result[lang] = chosen or known[:1]
    return result


def dumps(index: Mapping[str, Any]) -> str:
    return json.dumps(index, separators=(",", ":"), ensure_ascii=False)
