"""Read a YAML file into plain Python values while remembering where every value came from.

Pydantic reports errors by field path; users fix files by line. Keeping a path → (line, column) map
lets every ConfigError point at the exact spot in the user's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stratus.config.yaml_limits import compose_limited
from stratus.errors import ConfigError
from stratus.limits import MAX_CONFIG_FILE_BYTES
from stratus.userfile import read_user_file

__all__ = ["Located", "Position", "read_yaml"]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass
class Located:
    """A parsed YAML document and the position of every mapping key and value in it."""

    file: str
    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def where(self, path: PathKey) -> Position | None:
        """The position of ``path`` or, failing that, of its nearest parent that has one."""
        probe = tuple(path)
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get(())

    def error(self, path: PathKey, message: str) -> ConfigError:
        """A ConfigError that names this file, the position of ``path`` and the dotted field path."""
        pos = self.where(path)
        return ConfigError(
            message,
            file=self.file,
            line=pos.line if pos else None,
            column=pos.column if pos else None,
            field=format_path(path) or None,
        )


def format_path(path: PathKey) -> str:
    """``('steps', 'train', 'inputs', 0)`` → ``steps.train.inputs[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(path: Path) -> Located:
    """Parse ``path`` as one YAML mapping; a missing file or a syntax error is a ConfigError with its line.

    The file must be a regular file within the size, depth and alias limits of :mod:`stratus.limits`.
    """
    shown = str(path)
    raw = read_user_file(path, limit=MAX_CONFIG_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            file=shown,
            line=line,
            column=column,
        ) from None
    node = compose_limited(text, shown)
    located = Located(file=shown, data=None)
    # A file of only `---` (or `~`) holds one null document: as empty as no document at all.
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
        raise ConfigError("the file is empty; expected a YAML mapping", file=shown)
    located.data = _build(node, (), located.positions, shown)
    if not isinstance(located.data, dict):
        raise located.error((), "expected a YAML mapping at the top level")
    return located


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _build(
    node: yaml.Node,
    path: PathKey,
    positions: dict[PathKey, Position],
    file: str,
    open_nodes: frozenset[int] = frozenset(),
) -> Any:
    positions.setdefault(path, Position(node.start_mark.line + 1, node.start_mark.column + 1))
    if id(node) in open_nodes:
        # `a: &x [*x]` composes to a node that contains itself; expanding it would never end.
        raise _node_error(node, path, file, "an alias refers to a value that contains it (recursive alias)")
    if isinstance(node, yaml.MappingNode):
        inner = open_nodes | {id(node)}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _node_error(
                    key_node,
                    path,
                    file,
                    "YAML merge keys (`<<:`) are not supported; write the keys out, "
                    "or anchor a whole value with &name and reuse it with *name",
                )
            key = _scalar(key_node, path, file)
            key = key if isinstance(key, (str, int)) else str(key)
            if key in result:
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    f"duplicate key {key!r}; each key may appear once in a mapping",
                    file=file,
                    line=line,
                    column=key_node.start_mark.column + 1,
                    field=format_path((*path, key)),
                )
            child = (*path, key)
            positions[child] = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(value_node, child, positions, file, inner)
        return result
    if isinstance(node, yaml.SequenceNode):
        inner = open_nodes | {id(node)}
        return [_build(item, (*path, i), positions, file, inner) for i, item in enumerate(node.value)]
    return _scalar(node, path, file)


def _scalar(node: yaml.Node, path: PathKey, file: str) -> Any:
    """Construct one value; an unknown tag (``!custom``) or a tagged scalar that fails is a ConfigError."""
    try:
        return yaml.SafeLoader("").construct_object(node)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise _node_error(node, path, file, f"invalid YAML value: {problem}") from None
    except (ValueError, TypeError) as exc:  # e.g. `!!int abc`, `!!timestamp 2020-13-01`
        raise _node_error(
            node, path, file, f"invalid YAML value {node.value!r} for {node.tag}: {exc}"
        ) from None


def _node_error(node: yaml.Node, path: PathKey, file: str, message: str) -> ConfigError:
    return ConfigError(
        message,
        file=file,
        line=node.start_mark.line + 1,
        column=node.start_mark.column + 1,
        field=format_path(path) or None,
    )
