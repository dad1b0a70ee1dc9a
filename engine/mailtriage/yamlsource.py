"""Safe YAML reading that keeps where every value came from.

Rules are data, so loading is strict: only plain YAML types, no anchors or aliases (which also
rules out alias-expansion bombs), no duplicate keys, a size cap per file. Positions are kept per
JSON path so schema and meaning errors can point at `file:line:col`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import Location, Problem
from .resources import MAX_RULE_FILE_BYTES, FileTooLarge, NotARegularFile, read_capped

MAX_FILE_BYTES = MAX_RULE_FILE_BYTES
MAX_NODES = 50_000

JsonPath = tuple[str | int, ...]


@dataclass
class YamlDocument:
    data: Any
    positions: dict[JsonPath, tuple[int, int]]  # path -> (line, column), 1-based
    path: str

    def location(self, json_path: JsonPath = ()) -> Location:
        """The position of the value at `json_path`, or of its nearest ancestor that has one."""
        probe = tuple(json_path)
        while probe not in self.positions and probe:
            probe = probe[:-1]
        line, column = self.positions.get(probe, (1, 1))
        return Location(self.path, line, column)


class _YamlProblem(Exception):
    def __init__(self, message: str, line: int, column: int, code: str = "MT001") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.code = code


def read_yaml(path: str, text: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Load one YAML file; on failure return None and the problem with its position."""
    try:
        if text is None:
            raw = read_capped(path, MAX_FILE_BYTES)
            text = raw.decode("utf-8")
    except FileTooLarge as exc:
        return None, [Problem(Location(path, 1, 1), "MT012", str(exc))]
    except NotARegularFile as exc:
        return None, [Problem(Location(path, 1, 1), "MT001", str(exc))]
    except UnicodeDecodeError as exc:
        return None, [Problem(Location(path, 1, 1), "MT001", f"file is not UTF-8 ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(Location(path), "MT001", f"cannot read file: {exc.strerror or exc}")]
    positions: dict[JsonPath, tuple[int, int]] = {}
    try:
        data = _build(yaml.parse(text, Loader=yaml.SafeLoader), positions)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(Location(path, line, column), "MT001", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(Location(path, 1, 1), "MT001", f"YAML error: {exc}")]
    except _YamlProblem as problem:
        return None, [Problem(Location(path, problem.line, problem.column), problem.code, problem.message)]
    if data is _EMPTY:
        return None, [Problem(Location(path, 1, 1), "MT003", "file is empty")]
    return YamlDocument(data, positions, path), []


_EMPTY = object()
_resolver = yaml.SafeLoader("")
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}
_YAML_TYPE_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("timestamp", "binary", "merge", "value")}
MAX_DEPTH = 64
MAX_INT = 2**63 - 1


def _mark(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Frame:
    __slots__ = ("container", "json_path", "key", "key_mark")

    def __init__(self, container: dict[str, Any] | list[Any], json_path: JsonPath) -> None:
        self.container = container
        self.json_path = json_path
        self.key: str | None = None  # a mapping's key waiting for its value
        self.key_mark = (1, 1)


def _build(events: Iterator[yaml.Event], positions: dict[JsonPath, tuple[int, int]]) -> Any:
    """Build plain data from the event stream, without recursion: PyYAML's composer and
    constructor recurse per nesting level, so a deeply nested file raised RecursionError."""
    stack: list[_Frame] = []
    result: Any = _EMPTY
    documents = 0
    count = 0
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                line, column = _mark(event)
                raise _YamlProblem("a rule file holds one YAML document", line, column, "MT001")
            continue
        if not isinstance(event, (yaml.NodeEvent, yaml.CollectionEndEvent)):
            continue
        line, column = _mark(event)
        if isinstance(event, yaml.AliasEvent) or (isinstance(event, yaml.NodeEvent) and event.anchor is not None):
            raise _YamlProblem("anchors and aliases are not allowed in rule files", line, column, "MT002")
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        frame = stack[-1] if stack else None
        if frame is not None and isinstance(frame.container, dict) and frame.key is None:
            # A mapping key.
            if not isinstance(event, yaml.ScalarEvent):
                raise _YamlProblem("mapping keys must be plain scalars", line, column)
            key = _scalar(event, line, column)
            key = key if isinstance(key, str) else str(key)
            if key in frame.container:
                raise _YamlProblem(f"duplicate key {_clip(key)!r}", line, column, "MT002")
            frame.key, frame.key_mark = key, (line, column)
            continue
        count += 1
        if count > MAX_NODES:
            raise _YamlProblem(f"document has more than {MAX_NODES} values", line, column, "MT012")
        if frame is None:
            json_path: JsonPath = ()
        elif isinstance(frame.container, dict):
            assert frame.key is not None
            json_path = (*frame.json_path, frame.key)
        else:
            json_path = (*frame.json_path, len(frame.container))
        positions[json_path] = (line, column)
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            value = _scalar(event, line, column)
        else:
            if len(stack) >= MAX_DEPTH:
                raise _YamlProblem(f"values nested more than {MAX_DEPTH} levels deep", line, column, "MT012")
            assert isinstance(event, yaml.CollectionStartEvent)
            is_map = isinstance(event, yaml.MappingStartEvent)
            node_class = yaml.MappingNode if is_map else yaml.SequenceNode
            tag = event.tag if event.tag not in (None, "!") else _resolve(node_class, None, event.implicit)
            if tag != (_MAP_TAG if is_map else _SEQ_TAG):
                raise _YamlProblem(f"tag {tag!r} is not allowed in rule files", line, column, "MT001")
            value = {} if is_map else []
        if frame is None:
            result = value
        elif isinstance(frame.container, dict):
            assert frame.key is not None
            frame.container[frame.key] = value
            frame.key = None
        else:
            frame.container.append(value)
        if isinstance(value, (dict, list)):
            stack.append(_Frame(value, json_path))
    return result


def _resolve(kind: type, value: str | None, implicit: Any) -> str:
    tag: str = _resolver.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
    return tag


def _scalar(event: yaml.ScalarEvent, line: int, column: int) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        # Dates, binary, merge keys and every application tag: rules hold JSON-compatible scalars.
        code = "MT003" if tag in _YAML_TYPE_TAGS else "MT001"
        raise _YamlProblem(f"tag {tag!r} is not allowed in rule files; quote the value", line, column, code)
    if tag.endswith(":int") and len(event.value) > 40:
        raise _YamlProblem("integer too large", line, column, "MT003")
    node = yaml.ScalarNode(tag, event.value, None, None, event.style)
    try:
        value = _resolver.construct_object(node)
    except (ValueError, KeyError, TypeError, OverflowError, yaml.YAMLError) as exc:
        raise _YamlProblem(f"{_clip(event.value)!r} is not a valid {tag.rsplit(':', 1)[-1]} ({type(exc).__name__})", line, column, "MT003") from None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise _YamlProblem("integer too large", line, column, "MT003")
    if isinstance(value, float) and not math.isfinite(value):
        raise _YamlProblem(f"{_clip(event.value)!r}: infinite or not-a-number values are not allowed", line, column, "MT003")
    return value


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
