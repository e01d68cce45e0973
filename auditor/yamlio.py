"""Strict parsing of user files (YAML or JSON) with errors that name the file, line and key.

This is the one YAML loader of the product (policies and their waivers, lineage imports, audit
specs): every file is read with the same limits, checked in this order so that a hostile file
costs little: its size (``MAX_BYTES``) before it is parsed; its nesting depth (``MAX_DEPTH``)
and alias count (``MAX_ALIASES``) while its events stream past, before any node is built; the
number of nodes it would expand to with its aliases followed (``MAX_NODES``) before any Python
object or line map is built. A key given twice in one mapping is an error naming both lines
(YAML itself would keep the last value silently).
"""

from __future__ import annotations

import json
import os
import stat
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
    if path.suffix.lower() == ".json":
        text = read_text(path, error, MAX_JSON_BYTES)
        if len(text) > MAX_BYTES:  # a long recorded lineage: JSON's own parser, no line numbers
            return _parse_json(text, path, error), {}
        return parse_document(text, path, error, loader)
    return parse_document(read_text(path, error), path, error, loader)


def _parse_json(text: str, path: Path, error: type[InputError]) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise error("nested too deeply", path=str(path)) from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise error(f"syntax error: {getattr(exc, 'msg', exc)}", path=str(path),
                    line=line) from None


MAX_BYTES = 2 * 1024 * 1024
MAX_JSON_BYTES = 512 * 1024 * 1024  # a recorded lineage.json with every step's batch ids
MAX_DEPTH = 64
MAX_ALIASES = 256
MAX_NODES = 200_000


def read_text(path: Path, error: type[InputError] = InputError,
              limit: int = MAX_BYTES) -> str:
    """The file's text; an error for a missing, special (FIFO, device) or oversized file."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on a regular file
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise error("not a regular file (a device, FIFO or folder)", path=str(path))
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise error("not a regular file (a folder)", path=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", path=str(path)) from None
    if len(data) > limit:
        raise error(f"file is larger than {limit // (1024 * 1024)} MiB; auditor reads no "
                    "bigger YAML or JSON input", path=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read file: not UTF-8 text ({exc.reason} at byte {exc.start})",
                    path=str(path)) from None


def parse_document(text: str, path: Path, error: type[InputError] = InputError,
                   loader: type = yaml.SafeLoader) -> tuple[Any, LineMap]:
    """``read_document`` for text already read from ``path``."""
    if len(text) > MAX_BYTES:
        raise error(f"input is larger than {MAX_BYTES // (1024 * 1024)} MiB", path=str(path))
    try:
        _check_events(text, path, error)
        reader = loader(text)
        try:
            node = reader.get_single_node()
            if node is not None:
                _check_nodes(node, path, error)
                _check_duplicate_keys(node, path, error)
            data = reader.construct_document(node) if node is not None else None
        finally:
            reader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"syntax error: {problem}", path=str(path), line=line) from None
    except RecursionError:
        raise error(f"nested deeper than {MAX_DEPTH} levels", path=str(path)) from None
    return data, _line_map(node)


def _check_events(text: str, path: Path, error: type[InputError]) -> None:
    """Depth and alias limits, checked on the event stream (PyYAML's parser keeps an explicit
    stack, so 20,000 opening brackets cost microseconds here, not a RecursionError later)."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise error(f"nested deeper than {MAX_DEPTH} levels", path=str(path),
                            line=event.start_mark.line + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise error(f"more than {MAX_ALIASES} aliases (*name): refused as a "
                            "possible alias bomb", path=str(path), line=event.start_mark.line + 1)


def _check_nodes(root: yaml.Node, path: Path, error: type[InputError]) -> None:
    """The node count with every alias followed (counted once per node, so linear time): a few
    hundred bytes of nested aliases would otherwise expand to billions of values."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > MAX_DEPTH + 1:  # an alias cycle (a recursive structure)
            raise error("a recursive alias: refused", path=str(path),
                        line=node.start_mark.line + 1)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        sizes[id(node)] = total
        if total > MAX_NODES:
            raise error(f"expands to more than {MAX_NODES:,} values (aliases followed): "
                        "refused as a possible alias bomb", path=str(path),
                        line=node.start_mark.line + 1)
        return total

    size(root, 0)


def _check_duplicate_keys(root: yaml.Node, path: Path, error: type[InputError]) -> None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    name = key.value
                    if name in first:
                        raise error(f"duplicate key {name!r}: given at line {first[name]} and "
                                    f"again at line {line} (one value would silently replace "
                                    "the other)", path=str(path), line=line)
                    first[name] = line
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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
