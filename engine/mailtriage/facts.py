"""The symptom vocabulary (fields a fact set may carry) and the normalisation of fact sets.

Facts are a flat mapping from dotted field names (`smtp.reply_code`) to scalars. The vocabulary is
`rules/schema/facts.schema.json`; this module reads it once and checks and coerces fact sets
against it, so that every evaluator sees the same, correctly typed values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from .errors import FactError
from .resources import schema_path

FactValue = str | int | float | bool
Facts = dict[str, FactValue]

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,18}\Z", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]{1,18}(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\Z", re.ASCII)


@dataclass(frozen=True)
class FieldSpec:
    """One field of the vocabulary."""

    name: str
    type: str  # "string" | "integer" | "number" | "boolean"
    description: str
    enum: tuple[FactValue, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    question: Mapping[str, str] | None = None
    how: Mapping[str, str] | None = None

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def is_text(self) -> bool:
        """Free-text fields: matched with regexes, never used as dispatch keys."""
        return self.type == "string" and self.enum is None and self.pattern is None


@cache
def schema_regex(pattern: str) -> re.Pattern[str]:
    """A JSON Schema (ECMA-262) pattern compiled for Python with the same meaning: an unescaped
    `$` outside a character class is the end of the text (Python's also matches before a final
    newline)."""
    out = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


@cache
def askable_fields() -> frozenset[str]:
    """Fields whose schema entry carries a question (and how to find the answer): next checks ask for these."""
    return frozenset(name for name, spec in vocabulary().items() if spec.question is not None)


@cache
def vocabulary() -> dict[str, FieldSpec]:
    """All fields of the fact schema, by name."""
    with open(schema_path("facts"), encoding="utf-8") as handle:
        schema = json.load(handle)
    fields: dict[str, FieldSpec] = {}
    for name, spec in schema["properties"].items():
        fields[name] = FieldSpec(
            name=name,
            type=spec["type"],
            description=spec.get("description", ""),
            enum=tuple(spec["enum"]) if "enum" in spec else None,
            pattern=spec.get("pattern"),
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
            question=spec.get("x-question"),
            how=spec.get("x-how"),
        )
    return fields


def coerce_value(spec: FieldSpec, value: Any) -> FactValue:
    """Coerce one value to its field's type, or raise FactError naming the field."""
    try:
        result: FactValue
        if spec.type == "boolean":
            if isinstance(value, bool):
                result = value
            elif isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "y", "on"}:
                result = True
            elif isinstance(value, str) and value.strip().lower() in {"false", "no", "0", "n", "off"}:
                result = False
            else:
                raise ValueError("expected true or false")
        elif spec.type == "integer":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            if isinstance(value, float) and not value.is_integer():  # also inf and nan
                raise ValueError("expected an integer")
            if isinstance(value, str):
                # Plain ASCII digits, as the intake parsers read codes: int() would also take
                # "5_5_0", " 550 " and other scripts' digits.
                if not _INTEGER_TEXT.match(value.strip()):
                    raise ValueError("expected an integer")
                value = value.strip()
            result = int(value)
        elif spec.type == "number":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            if isinstance(value, str) and not _NUMBER_TEXT.match(value.strip()):
                raise ValueError("expected a number")
            result = float(value)
            if not math.isfinite(result):
                raise ValueError("expected a finite number")
        else:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError("expected text")
            result = str(value)
            if spec.enum is not None:
                result = result.strip().lower()
    except (TypeError, ValueError) as exc:
        raise FactError(f"fact {spec.name}: {value!r} is not valid ({exc})") from None
    if spec.enum is not None and result not in spec.enum:
        allowed = ", ".join(str(v) for v in spec.enum)
        raise FactError(f"fact {spec.name}: {value!r} is not one of: {allowed}")
    if spec.pattern is not None and isinstance(result, str) and not schema_regex(spec.pattern).search(result):
        raise FactError(f"fact {spec.name}: {value!r} is not well formed")
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        if spec.minimum is not None and result < spec.minimum:
            raise FactError(f"fact {spec.name}: {value!r} is below {spec.minimum:g}")
        if spec.maximum is not None and result > spec.maximum:
            raise FactError(f"fact {spec.name}: {value!r} is above {spec.maximum:g}")
    return result


def derive(facts: Facts) -> Facts:
    """Add the fields computed from others (the class-neutral forms of the enhanced code)."""
    enhanced = facts.get("smtp.enhanced")
    if isinstance(enhanced, str):
        found = _ENHANCED.match(enhanced)
        if found:
            cls, subject, detail = found.groups()
            facts.setdefault("smtp.enhanced_class", int(cls))
            facts.setdefault("smtp.enhanced_subject", f"X.{int(subject)}")
            facts.setdefault("smtp.enhanced_generic", f"X.{int(subject)}.{int(detail)}")
    return facts


def normalize_facts(raw: Mapping[str, Any]) -> Facts:
    """Check a fact set against the vocabulary, coerce the types and add derived fields.

    None values mean "unknown" and are dropped. Raises FactError on the first bad field.
    """
    fields = vocabulary()
    facts: Facts = {}
    for name, value in raw.items():
        if value is None:
            continue
        spec = fields.get(name)
        if spec is None:
            raise FactError(f"unknown fact field {name!r}")
        facts[name] = coerce_value(spec, value)
    if "smtp.enhanced" in facts:
        # Leading zeros are legal in RFC 3463 but rules use the plain numbers.
        found = _ENHANCED.match(str(facts["smtp.enhanced"]))
        if found:
            facts["smtp.enhanced"] = ".".join(str(int(part)) for part in found.groups())
    return derive(facts)


@dataclass(frozen=True)
class InferredFact:
    """A context fact worked out from the input rather than stated: which value, the text that
    showed it (`evidence`) and where that text was (`source`: the error text, a log tag, a DSN
    field, a header...)."""

    field: str
    value: FactValue
    evidence: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "evidence": self.evidence, "source": self.source}
