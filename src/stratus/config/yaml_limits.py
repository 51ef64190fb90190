"""Compose YAML text into nodes within limits on depth, aliases and size after alias expansion.

PyYAML composes recursively (a 5,000-deep ``[[[...]]]`` is a RecursionError) and shares one node per
anchor, so a 1 KB "billion laughs" file composes instantly and explodes only when expanded. Counting
while composing stops both at the line that crosses a limit, before anything large is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from stratus.errors import ConfigError
from stratus.limits import MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES

__all__ = ["compose_limited"]


def compose_limited(text: str, file: str) -> yaml.Node | None:
    """The single document in ``text`` as a node tree; ConfigError at the line of any YAML problem."""
    try:
        loader = _LimitedLoader(text, file)
    except yaml.reader.ReaderError as exc:  # a NUL or other control character: checked up front
        raise _reader_error(exc, text, file) from None
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem or 'invalid YAML'}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader's composer with three counters; ConfigError at the event that crosses a limit."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self._file = file
        self._depth = 0
        self._aliases = 0
        self._composed = 0
        self._expanded: dict[int, int] = {}  # id(node) → values in it once every alias is expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise self._refuse(
                    event, f"more than {MAX_YAML_ALIASES:,} aliases (*name); write the values out instead"
                )
            return super().compose_node(parent, index)
        self._composed += 1  # counted on the way in, so a long flat list stops where it crosses the cap
        if self._composed > MAX_YAML_NODES:
            raise self._refuse(event, f"the file holds more than {MAX_YAML_NODES:,} values")
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise self._refuse(event, f"values are nested more than {MAX_YAML_DEPTH} levels deep")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1 + sum([self._expanded.get(id(child), 1) for child in _children(node)])
        if size > MAX_YAML_NODES:
            raise self._refuse(
                event,
                f"this value holds more than {MAX_YAML_NODES:,} values once its aliases (*name) are "
                "expanded (an alias bomb?); write a smaller file",
            )
        self._expanded[id(node)] = size
        return node

    def _refuse(self, event: yaml.Event, message: str) -> ConfigError:
        mark = event.start_mark
        if mark is None:
            return ConfigError(message, file=self._file)
        return ConfigError(message, file=self._file, line=mark.line + 1, column=mark.column + 1)


def _children(node: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> ConfigError:
    position = exc.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    what = "a NUL byte (\\0)" if exc.character == 0 else f"the control character U+{exc.character:04X}"
    return ConfigError(
        f"the file contains {what}; YAML files are plain text", file=file, line=line, column=column
    )
