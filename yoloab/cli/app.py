"""The Typer application, its error handling and the `main` entry point.

Errors derived from `YoloabError` become one line on stderr and the exit code of `EXIT_CODES`; `YOLOAB_DEBUG=1`
shows the traceback instead. A command line click cannot read (an unknown option, a value of the wrong type, a
missing one) is one line too, `error: ` and click's own message, with click's exit code 2; help is click's.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import (
    DatasetError,
    DuplicateModuleError,
    MissingExtraError,
    MissingSeedsError,
    ModelConfigError,
    ModelRowError,
    OptionValueError,
    PlacementError,
    PluginError,
    PretrainedError,
    ProfileInputError,
    ReportInputError,
    ResultsError,
    StorageError,
    SweepInputError,
    UltralyticsCompatError,
    UnknownLossError,
    UnknownModelError,
    UnknownModuleError,
    UnknownRoleError,
    UnknownRuntimeError,
    VariantNameError,
    YoloabError,
    YoloabWarning,
)

EXIT_CODES: dict[type[YoloabError], int] = {
    ProfileInputError: 2,
    OptionValueError: 2,
    UnknownModuleError: 2,
    UnknownRoleError: 2,
    UnknownModelError: 2,
    UnknownLossError: 2,
    PlacementError: 2,
    DatasetError: 2,
    SweepInputError: 2,
    ResultsError: 2,
    ReportInputError: 2,
    ModelRowError: 2,
    VariantNameError: 2,
    PretrainedError: 2,
    UnknownRuntimeError: 2,
    ModelConfigError: 3,
    PluginError: 4,
    DuplicateModuleError: 4,
    UltralyticsCompatError: 5,
    StorageError: 6,
    MissingExtraError: 7,
    MissingSeedsError: 1,
}
err_console = Console(stderr=True, soft_wrap=True)
# click's usage error, as the Typer in use raises it: Typer 0.29 carries a click of its own (`typer._click`), earlier
# versions use click itself; its BadParameter derives from it either way
UsageError: type[Exception] = next(k for k in typer.BadParameter.__mro__ if k.__name__ == "UsageError")


def exit_code(err: YoloabError) -> int:
    """The exit code of an error: the first matching class in its MRO, else 1."""
    return next((EXIT_CODES[k] for k in type(err).__mro__ if k in EXIT_CODES), 1)


def _usage_error(err: Any) -> NoReturn:
    """Say a command line click could not read as one line, `error: ` and click's message, and exit with its code.

    Click would print the usage, a hint and a blank line first. A bare `yoloab` is not an error: click's help.
    """
    if type(err).__name__ == "NoArgsIsHelpError":  # click 8.2+ raises it to print the help
        raise err
    err_console.print(f"[bold red]error:[/] {escape(err.format_message())}", highlight=False)
    raise typer.Exit(err.exit_code) from None


class _Group(TyperGroup):
    """Runs a command and turns yoloab errors and click's usage errors into one line and an exit code."""

    def get_command(self, ctx, cmd_name):  # noqa: D102
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_metavars(command, ctx)
        return command

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: D102
        try:  # the options before the command's name (`yoloab --nope`)
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as err:
            _usage_error(err)

    def invoke(self, ctx):  # noqa: D102
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", YoloabWarning)
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except UsageError as err:  # the command's name and options, read here, or a BadParameter of a command
            _usage_error(err)
        except YoloabError as err:
            if os.environ.get("YOLOAB_DEBUG") == "1":
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
            raise typer.Exit(exit_code(err)) from None
        except KeyboardInterrupt:  # one a command does not handle itself (while its imports load, say)
            if os.environ.get("YOLOAB_DEBUG") == "1":
                raise
            err_console.print("stopped (Ctrl-C)", highlight=False)
            raise typer.Exit(130) from None


_PLAIN_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "file": "PATH", "directory": "DIR"}


def _plain_metavars(command, ctx) -> None:
    """Show plain metavars (INTEGER, PATH, local|ray) where Typer would print Python types (<list[Path]>)."""
    for param in command.params:
        display_type = getattr(param, "display_type", None)
        if param.metavar is not None or getattr(param, "is_flag", False) or display_type is None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()  # click adds the "..." of a repeatable argument itself
            param.display_type_rich = lambda ctx: None  # Typer would append the Python type after the name
            continue
        name = display_type(ctx).strip("<>").removeprefix("list[").removesuffix("]")
        param.metavar = _PLAIN_TYPES.get(name.lower(), name)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Print warnings of yoloab as one line on stderr, and any other warning as Python would."""
    if issubclass(category, YoloabWarning):
        err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


app = typer.Typer(
    cls=_Group,
    name="yoloab",
    help="Ablations and honest benchmarks of plug-in modules inside Ultralytics YOLO.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain help: Rich markup would swallow bracketed help text ("[default: ...]") and Typer's Rich panels print
    # Python types (<list[Path]>, <bool>) where click prints plain metavars (PATH, INTEGER).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"yoloab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Ablations and honest benchmarks of plug-in modules inside Ultralytics YOLO."""


def _register_commands() -> None:
    from . import catalog, profile, report, sweep, variants

    catalog.register(app)
    variants.register(app)
    profile.register(app)
    sweep.register(app)
    report.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="yoloab")
    except KeyboardInterrupt:  # Ctrl-C before a command runs (option parsing)
        err_console.print("stopped (Ctrl-C)", highlight=False)
        sys.exit(130)
