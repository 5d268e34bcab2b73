"""Command-line arguments no command may take silently: an option given twice with two
values, and an empty value.

click keeps the last of two values of an option (``--target ratio=10 --target bpp=0.5``
codes only bpp=0.5) and takes ``--target ""`` or ``--out ""`` as given (an empty target,
the current folder). :class:`StrictArgs`, mixed into medbench's command and group
classes, refuses both as usage errors before click parses the arguments, naming the
option and what to give instead.
"""

from __future__ import annotations

from typing import Any

import click

#: Options that take a comma-separated list: the message shows how to give both values.
LISTS = ("--codecs", "--datasets", "--target", "--metrics")


class StrictArgs:
    """Mixin for :class:`click.Command` and :class:`click.Group`: see the module docstring."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        check_args(self, ctx, args)  # type: ignore[arg-type]
        return super().parse_args(ctx, args)  # type: ignore[misc]


def check_args(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """Raise a usage error for an option given twice with different values, or an empty
    option value or argument, in ``args`` (the command's own, before click parses them).

    A group's arguments end at its subcommand's name (the subcommand checks its own);
    unknown options and missing values are left for click to report.

    Raises
    ------
    click.UsageError
        Naming the option (or argument) and the fix.
    """
    options: dict[str, click.Option] = {}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                options[name] = param
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    group = isinstance(command, click.Group)
    seen: dict[str, tuple[str, str]] = {}
    position = i = 0
    while i < len(args):
        token = args[i]
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        param = options.get(name)
        if token == "--":
            for rest in args[i + 1:]:
                _check_argument(ctx, arguments, position, rest)
                position += 1
            return
        if param is None and token.startswith("-") and token != "-":
            i += 1  # an unknown option, or a short one (-v): click handles it
            continue
        if param is None:  # a positional argument (or a group's subcommand)
            if group:
                return
            _check_argument(ctx, arguments, position, token)
            position += 1
            i += 1
            continue
        if param.is_flag or param.count:
            value, used = name, 1
        elif eq:
            used = 1
        elif i + 1 < len(args):
            value, used = args[i + 1], 2
        else:
            return  # click says the value is missing
        if not (param.is_flag or param.count) and not value.strip():
            raise click.BadParameter(
                f"{value!r} is empty; give a value, or leave {name} out for its default",
                ctx=ctx, param=param)
        if not (param.multiple or param.count):
            _check_once(ctx, param, seen, name, value)
        i += used


def _check_once(ctx: click.Context, param: click.Option, seen: dict[str, tuple[str, str]],
                name: str, value: str) -> None:
    """Remember ``name value``; raise when the option was given before with another."""
    key = param.name or name
    if key in seen and seen[key][1] != value:
        first_name, first = seen[key]
        given = (f"{first_name} and {name}" if param.is_flag
                 else f"{first_name} {first!r} and {name} {value!r}")
        hint = ""
        if name in LISTS:
            hint = f"; to give both, list them in one: {name} {first},{value}"
        raise click.UsageError(f"{param.opts[0]} was given twice ({given}); give it once"
                               f"{hint}", ctx=ctx)
    seen[key] = (name, value)


def _check_argument(ctx: click.Context, arguments: list[Any], position: int, value: str) -> None:
    if value.strip():
        return
    param = arguments[position] if position < len(arguments) else None
    what = param.human_readable_name if param is not None else f"argument {position + 1}"
    raise click.UsageError(f"{what} is empty ({value!r}); give a value", ctx=ctx)
