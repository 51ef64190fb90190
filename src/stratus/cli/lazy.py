"""The root command group, whose subcommands import their modules only when they are used.

Each command module imports what its commands need (the planner and SciPy, the serving stack, MLflow,
the cloud SDKs); importing them all made every ``stratus`` call, ``--help`` included, take over a second.
Here a command is a name, a one-line summary for ``stratus --help``, and ``module:attribute`` (a Typer
app for a group, a function for a single command), loaded when the command line names it.

It also makes Typer's "Did you mean" appear once: Typer appends its own suggestion to Click's, which
already suggests close command names (Click 8.2+); Typer's is switched off in every group.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click
import typer
from typer.core import TyperGroup

__all__ = ["LazyCommand", "LazyGroup", "lazy_group"]


@dataclass(frozen=True)
class LazyCommand:
    """``target`` is ``module:attribute``: a ``typer.Typer`` (a group) or a command function."""

    target: str
    summary: str


class LazyGroup(TyperGroup):
    """A TyperGroup that also knows :attr:`lazy` commands and loads each on first use."""

    lazy: Mapping[str, LazyCommand] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.suggest_commands = False
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        spec = self.lazy[cmd_name]
        if self._listing:  # `stratus --help` shows the summary without importing the command
            return click.Command(cmd_name, help=spec.summary, short_help=spec.summary)
        command = _load(cmd_name, spec)
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # suggest among every command, loaded or not
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


def lazy_group(lazy: Mapping[str, LazyCommand]) -> type[LazyGroup]:
    """A LazyGroup class with these commands (Typer instantiates the class it is given)."""
    return type("StratusGroup", (LazyGroup,), {"lazy": dict(lazy)})


def _load(name: str, spec: LazyCommand) -> click.Command:
    module, attribute = spec.target.split(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)  # a group, as add_typer made it
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode="rich")
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    command.short_help = spec.summary
    _no_typer_suggestions(command)
    return command


def _no_typer_suggestions(command: click.Command) -> None:
    if isinstance(command, TyperGroup):
        command.suggest_commands = False
        for sub in command.commands.values():
            _no_typer_suggestions(sub)
