"""Strict parsing of user files (YAML or JSON) with errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from auditor.errors import InputError

Model = TypeVar("Model", bound=BaseModel)
LineMap = dict[tuple, int]


def read_document(path: str | Path, error: type[InputError] = InputError,
                  loader: type = yaml.SafeLoader) -> tuple[Any, LineMap]:
    """Parse a YAML (or JSON) file into Python data plus the line of every key path.

    ``loader`` must be a SafeLoader subclass (e.g. one that keeps dates as text, so that a bad
    date becomes a located validation error instead of a crash)."""
    path = Path(path)
    return parse_document(read_text(path, error), path, error, loader)


def read_text(path: Path, error: type[InputError] = InputError) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read file: {exc}", path=str(path)) from exc


def parse_document(text: str, path: Path, error: type[InputError] = InputError,
                   loader: type = yaml.SafeLoader) -> tuple[Any, LineMap]:
    """``read_document`` for text already read from ``path``."""
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
        lines = _line_map(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"syntax error: {problem}", path=str(path), line=line) from None
    return data, lines


def _line_map(node: yaml.Node | None, prefix: tuple = ()) -> LineMap:
    lines: LineMap = {}
    if node is None:
        return lines
    lines[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            lines.update(_line_map(value_node, key))
            lines[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*prefix, index)))
    return lines


def validate(model: type[Model], data: Any, path: str | Path, lines: LineMap,
             error: type[InputError] = InputError) -> Model:
    """Validate ``data`` against ``model``; the first problem becomes a located InputError."""
    if not isinstance(data, dict):
        raise error("expected a mapping at the top level", path=str(path), line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise located_error(exc, path, lines, error) from None


def located_error(exc: ValidationError, path: str | Path, lines: LineMap,
                  error: type[InputError] = InputError) -> InputError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    return error(_message(first), path=str(path), line=line_of(loc, lines),
                 key=key_path(loc) or None)


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"]


def line_of(loc: tuple, lines: LineMap) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def key_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
