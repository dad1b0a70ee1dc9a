"""The rule model: plain dataclasses and enums built from validated YAML data.

The JSON Schema checks structure before anything here runs; `from_dict` trusts that structure
and the linter checks meaning.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .facts import FactValue
from .i18n import SOURCE_LANGUAGE, source_hash, translatable_strings

if TYPE_CHECKING:
    from .textmatch import LinearPattern

# Ops of a leaf condition, in the YAML spelling.
LEAF_OPS = ("equals", "one_of", "matches", "less_than", "at_most", "greater_than", "at_least", "exists")


class Status(enum.Enum):
    STABLE = "stable"
    EXPERIMENTAL = "experimental"
    DEPRECATED = "deprecated"


class Kind(enum.Enum):
    SPECIFIC = "specific"
    GENERIC = "generic"


class GenericLevel(enum.Enum):
    CLASS = "class"
    SUBJECT = "subject"
    DETAIL = "detail"


# ---------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Leaf:
    """A test of one fact field: `field OP value`."""

    field: str
    op: str
    value: Any
    # Only on the leaves of an assessment, never in a rule's tree: a leaf under a `not` that failed,
    # which is what made the `not` hold, so the "why" line must say "does not match".
    negated: bool = False

    @property
    def pattern(self) -> LinearPattern | None:
        """The compiled regex (RE2) of a `matches` leaf, compiled on first use: a cached knowledge base
        then loads without compiling hundreds of patterns that a query never touches."""
        return _compile_pattern(self.value) if self.op == "matches" else None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, self.op: list(self.value) if self.op == "one_of" else self.value}

    def negation(self) -> Leaf:
        """This test read the other way round (for the leaves under a `not`)."""
        return _negation(self)

    def describe(self, lang: str = SOURCE_LANGUAGE) -> str:
        """The test in words, in `lang` (English, or Brazilian Portuguese): the "why" lines."""
        words = _LEAF_WORDS.get(lang, _LEAF_WORDS[SOURCE_LANGUAGE])
        if self.op == "exists":
            return f"{self.field} {words['known' if bool(self.value) != self.negated else 'unknown']}"
        op = f"not_{self.op}" if self.negated else self.op
        if self.op == "one_of":
            return f"{self.field} {words[op]} {', '.join(str(v) for v in self.value)}"
        if self.op == "matches":
            return f"{self.field} {words[op]} /{self.value}/"
        return f"{self.field} {words[op]} {self.value}"


@functools.cache
def _negation(leaf: Leaf) -> Leaf:
    return replace(leaf, negated=not leaf.negated)


_LEAF_WORDS = {
    "en": {"equals": "is", "one_of": "is one of", "matches": "matches", "less_than": "<", "at_most": "<=",
           "greater_than": ">", "at_least": ">=", "known": "is known", "unknown": "is unknown",
           "not_equals": "is not", "not_one_of": "is none of", "not_matches": "does not match",
           "not_less_than": ">=", "not_at_most": ">", "not_greater_than": "<=", "not_at_least": "<"},
    "pt-BR": {"equals": "é", "one_of": "é um de", "matches": "corresponde a", "less_than": "<", "at_most": "<=",
              "greater_than": ">", "at_least": ">=", "known": "é conhecido", "unknown": "é desconhecido",
              "not_equals": "não é", "not_one_of": "não é nenhum de", "not_matches": "não corresponde a",
              "not_less_than": ">=", "not_at_most": ">", "not_greater_than": "<=", "not_at_least": "<"},
}


@dataclass(frozen=True)
class All:
    children: tuple[Condition, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"all": [child.to_dict() for child in self.children]}


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"any": [child.to_dict() for child in self.children]}


@dataclass(frozen=True)
class Not:
    child: Condition

    def to_dict(self) -> dict[str, Any]:
        return {"not": self.child.to_dict()}


Condition = Leaf | All | AnyOf | Not


def condition_from_dict(data: dict[str, Any]) -> Condition:
    """Build a condition tree from its YAML form (already schema-checked)."""
    if "all" in data:
        return All(tuple(condition_from_dict(child) for child in data["all"]))
    if "any" in data:
        return AnyOf(tuple(condition_from_dict(child) for child in data["any"]))
    if "not" in data:
        return Not(condition_from_dict(data["not"]))
    op = next(key for key in LEAF_OPS if key in data)
    value = data[op]
    if op == "one_of":
        value = tuple(value)
    return Leaf(field=data["field"], op=op, value=value)


def _compile_pattern(pattern: str) -> LinearPattern:
    from .textmatch import compile_pattern

    return compile_pattern(pattern)


def iter_leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    if isinstance(condition, Not):
        return iter_leaves(condition.child)
    return [leaf for child in condition.children for leaf in iter_leaves(child)]


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass
class Cause:
    id: str
    title: str
    detail: str = ""
    likely_when: Condition | None = None
    unlikely_when: Condition | None = None


class Audience(enum.Enum):
    """Who carries out a fix; rule pages split fixes by it."""

    SENDER = "sender"
    ADMIN = "admin"
    RECIPIENT_ADMIN = "recipient-admin"


@dataclass(frozen=True)
class Command:
    """A command an admin runs for a fix: code, never translated, shown copyable."""

    shell: str  # powershell or sh
    run: str

    def to_dict(self) -> dict[str, str]:
        return {"shell": self.shell, "run": self.run}


@dataclass
class Fix:
    id: str
    title: str
    steps: list[str]
    addresses: list[str] = field(default_factory=list)
    audience: Audience | None = None
    commands: list[Command] = field(default_factory=list)


@dataclass
class Reference:
    title: str
    url: str


@dataclass
class Example:
    reply: str | None = None
    facts: dict[str, FactValue] = field(default_factory=dict)
    note: str | None = None
    expect_top_cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.note:
            data["note"] = self.note
        if self.reply is not None:
            data["reply"] = self.reply
        if self.facts:
            data["facts"] = dict(self.facts)
        if self.expect_top_cause:
            data["expect_top_cause"] = self.expect_top_cause
        return data


@dataclass
class Translation:
    """One language's strings for one rule, with the hash of the English each was made from."""

    lang: str
    path: str
    strings: dict[str, tuple[str, str]]  # key -> (text, source hash)


@dataclass
class Rule:
    id: str
    status: Status
    kind: Kind
    family: str
    codes: list[str]
    systems: list[str]
    title: str
    summary: str
    match: Condition
    causes: list[Cause] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    see_also: list[str] = field(default_factory=list)
    examples_match: list[Example] = field(default_factory=list)
    examples_no_match: list[Example] = field(default_factory=list)
    generic_level: GenericLevel | None = None
    replaced_by: str | None = None
    source_path: str = field(default="", compare=False)  # as shown in messages
    source_file: str = field(default="", compare=False)  # absolute, for reading it again
    translations: dict[str, Translation] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _english: dict[str, tuple[str, str]] | None = field(default=None, init=False, compare=False, repr=False)

    # Pickled (the knowledge-base cache, workers) with these fields packed into one bytes blob,
    # unpacked on first use: a diagnosis reads them for the few rules it shows, never for all ~450,
    # and unpickling them all was about half of loading the cache at every start.
    _LAZY_FIELDS = ("raw", "translations", "examples_match", "examples_no_match")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "_lazy_blob" not in state:
            import pickle

            packed = {name: state.pop(name) for name in self._LAZY_FIELDS}
            state["_lazy_blob"] = pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
        return state

    def __getattr__(self, name: str) -> Any:
        # Only called when `name` is not set: a lazy field of a rule read from a pickle.
        blob = self.__dict__.get("_lazy_blob")
        if name in Rule._LAZY_FIELDS and blob is not None:
            import pickle

            # The blob came in the same pickle as the rule (the cache checks its keyed hash first).
            # Two threads may both unpack: each sets the same values, neither fails.
            for key, value in pickle.loads(blob).items():
                self.__dict__.setdefault(key, value)
            self.__dict__.pop("_lazy_blob", None)
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source_path: str = "") -> Rule:
        examples = data.get("examples") or {}
        return cls(
            id=data["id"],
            status=Status(data["status"]),
            kind=Kind(data["kind"]),
            family=data["family"],
            codes=list(data["codes"]),
            systems=list(data["systems"]),
            title=data["title"],
            summary=data["summary"],
            match=condition_from_dict(data["match"]),
            causes=[
                Cause(
                    id=c["id"],
                    title=c["title"],
                    detail=c.get("detail", ""),
                    likely_when=condition_from_dict(c["likely_when"]) if "likely_when" in c else None,
                    unlikely_when=condition_from_dict(c["unlikely_when"]) if "unlikely_when" in c else None,
                )
                for c in data.get("causes") or []
            ],
            fixes=[
                Fix(
                    id=f["id"],
                    title=f["title"],
                    steps=list(f["steps"]),
                    addresses=list(f.get("addresses") or []),
                    audience=Audience(f["audience"]) if "audience" in f else None,
                    commands=[Command(c["shell"], c["run"]) for c in f.get("commands") or []],
                )
                for f in data.get("fixes") or []
            ],
            references=[Reference(r["title"], r["url"]) for r in data.get("references") or []],
            see_also=list(data.get("see_also") or []),
            examples_match=[_example(e) for e in examples.get("match") or []],
            examples_no_match=[_example(e) for e in examples.get("no_match") or []],
            generic_level=GenericLevel(data["generic_level"]) if "generic_level" in data else None,
            replaced_by=data.get("replaced_by"),
            source_path=source_path,
            raw=data,
        )

    def to_dict(self, lang: str = SOURCE_LANGUAGE) -> dict[str, Any]:
        """The rule in its YAML shape, with text in `lang` where a current translation exists."""
        return {
            "id": self.id,
            "status": self.status.value,
            "kind": self.kind.value,
            "generic_level": self.generic_level.value if self.generic_level else None,
            "replaced_by": self.replaced_by,
            "family": self.family,
            "codes": list(self.codes),
            "systems": list(self.systems),
            "title": self.text("title", lang),
            "summary": self.text("summary", lang),
            "match": self.match.to_dict(),
            "causes": [
                {
                    "id": c.id,
                    "title": self.text(f"causes.{c.id}.title", lang),
                    "detail": self.text(f"causes.{c.id}.detail", lang) if c.detail else "",
                }
                for c in self.causes
            ],
            "fixes": [self.fix_dict(f, lang) for f in self.fixes],
            "references": [{"title": r.title, "url": r.url} for r in self.references],
            "see_also": list(self.see_also),
            "examples": {
                kind: [self.example_dict(kind, index, e, lang) for index, e in enumerate(examples)]
                for kind, examples in (("match", self.examples_match), ("no_match", self.examples_no_match))
            },
            "languages": self.languages(),
            "source_path": self.source_path,
        }

    def fix_dict(self, fix: Fix, lang: str) -> dict[str, Any]:
        return {
            "id": fix.id,
            "title": self.text(f"fixes.{fix.id}.title", lang),
            "addresses": list(fix.addresses),
            "steps": [self.text(f"fixes.{fix.id}.steps.{i}", lang) for i in range(len(fix.steps))],
            "audience": fix.audience.value if fix.audience else None,
            "commands": [command.to_dict() for command in fix.commands],
        }

    def example_dict(self, kind: str, index: int, example: Example, lang: str) -> dict[str, Any]:
        """An example in its YAML shape, its caption in `lang` where a current translation exists."""
        data = example.to_dict()
        if example.note:
            data["note"] = self.note(kind, index, lang)
        return data

    def note(self, kind: str, index: int, lang: str = SOURCE_LANGUAGE) -> str:
        """The caption of example `index` of `kind` (match / no_match) in `lang`."""
        return self.text(f"examples.{kind}.{index}.note", lang)

    # -- translations -------------------------------------------------------------------------

    def english_strings(self) -> dict[str, str]:
        return {key: text for key, (text, _hash) in self._english_with_hashes().items()}

    def _english_with_hashes(self) -> dict[str, tuple[str, str]]:
        # Every rendered string looks itself up here; the rule's text never changes after loading,
        # so the key walk and the hashing are done once per rule, not once per lookup.
        if self._english is None:
            strings = translatable_strings(self.raw) if self.raw else {}
            self._english = {key: (text, source_hash(text)) for key, text in strings.items()}
        return self._english

    def text(self, key: str, lang: str = SOURCE_LANGUAGE) -> str:
        """The string `key` in `lang` if a current translation exists, else the English."""
        english, english_hash = self._english_with_hashes().get(key, ("", ""))
        if lang != SOURCE_LANGUAGE:
            translation = self.translations.get(lang)
            if translation is not None:
                entry = translation.strings.get(key)
                if entry is not None and entry[1] == english_hash:
                    return entry[0]
        return english

    def translation_state(self, lang: str) -> tuple[list[str], list[str]]:
        """(missing keys, stale keys) of the `lang` translation."""
        english = self._english_with_hashes()
        translation = self.translations.get(lang)
        if translation is None:
            return sorted(english), []
        missing = sorted(k for k in english if k not in translation.strings)
        stale = sorted(k for k, (_text, hashed) in english.items() if k in translation.strings and translation.strings[k][1] != hashed)
        return missing, stale

    def languages(self) -> list[str]:
        """Languages with a complete, current translation (English always)."""
        complete = [SOURCE_LANGUAGE]
        for lang in sorted(self.translations):
            missing, stale = self.translation_state(lang)
            if not missing and not stale:
                complete.append(lang)
        return complete

    def is_translated(self, lang: str) -> bool:
        return lang in self.languages()

    @property
    def specificity(self) -> int:
        """Higher is more specific: specific rules, then registry detail, subject, class."""
        if self.kind is Kind.SPECIFIC:
            return 3
        return {GenericLevel.DETAIL: 2, GenericLevel.SUBJECT: 1, GenericLevel.CLASS: 0}.get(
            self.generic_level or GenericLevel.CLASS, 0
        )


def _example(data: dict[str, Any]) -> Example:
    return Example(
        reply=data.get("reply"),
        facts=dict(data.get("facts") or {}),
        note=data.get("note"),
        expect_top_cause=data.get("expect_top_cause"),
    )
