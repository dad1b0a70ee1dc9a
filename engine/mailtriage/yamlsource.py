"""Safe YAML reading that keeps where every value came from.

Rules are data, so loading is strict: only plain YAML types, no anchors or aliases (which also
rules out alias-expansion bombs), no duplicate keys, a size cap per file. Positions are kept per
JSON path so schema and meaning errors can point at `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .errors import Location, Problem

MAX_FILE_BYTES = 512 * 1024
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
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
            if len(raw) > MAX_FILE_BYTES:
                return None, [Problem(Location(path, 1, 1), "MT012", f"file is larger than {MAX_FILE_BYTES} bytes")]
            text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(Location(path, 1, 1), "MT001", f"file is not UTF-8 ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(Location(path), "MT001", f"cannot read file: {exc.strerror}")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(Location(path, line, column), "MT001", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(Location(path, 1, 1), "MT001", f"YAML error: {exc}")]
    if node is None:
        return None, [Problem(Location(path, 1, 1), "MT003", "file is empty")]
    positions: dict[JsonPath, tuple[int, int]] = {}
    try:
        data = _construct(node, (), positions, set(), [0])
    except _YamlProblem as problem:
        return None, [Problem(Location(path, problem.line, problem.column), problem.code, problem.message)]
    return YamlDocument(data, positions, path), []


_constructor = yaml.SafeLoader("")
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "binary")
}


def _construct(
    node: yaml.Node, json_path: JsonPath, positions: dict[JsonPath, tuple[int, int]], seen: set[int], count: list[int]
) -> Any:
    mark = node.start_mark
    line, column = mark.line + 1, mark.column + 1
    if id(node) in seen:
        raise _YamlProblem("anchors and aliases are not allowed in rule files", line, column, "MT002")
    seen.add(id(node))
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _YamlProblem(f"document has more than {MAX_NODES} values", line, column, "MT012")
    positions[json_path] = (line, column)
    if node.tag not in _PLAIN_TAGS:
        raise _YamlProblem(f"tag {node.tag!r} is not allowed in rule files", line, column, "MT001")
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem("mapping keys must be plain scalars", key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            key = _constructor.construct_object(key_node)
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise _YamlProblem(
                    f"duplicate key {key!r}", key_node.start_mark.line + 1, key_node.start_mark.column + 1, "MT002"
                )
            result[key] = _construct(value_node, (*json_path, key), positions, seen, count)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, (*json_path, i), positions, seen, count) for i, child in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    value = _constructor.construct_object(node)
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        # Dates and binary: rules only hold JSON-compatible scalars.
        raise _YamlProblem(f"value of type {type(value).__name__} is not allowed; quote it", line, column, "MT003")
    return value
