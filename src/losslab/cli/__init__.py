"""The ``losslab`` command line: one module per subcommand, imported when the parser is built.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``handler=run`` (a function taking the parsed arguments and returning an exit code). Heavy
imports (matplotlib, pandas, data code) stay inside the handlers, so ``losslab --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

# The order here is the order of ``losslab --help``.
_COMMAND_MODULES = (
    "list_cmd",
    "plot_cmd",
    "reproduce_cmd",
    "regress_cmd",
    "compare_cmd",
    "report_cmd",
    "data_cmd",
    "bench_cmd",
)


class CommandError(Exception):
    """A user error: printed as ``losslab: error: ...`` with exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    from losslab import __version__

    parser = argparse.ArgumentParser(
        prog="losslab",
        description="Loss functions for PyTorch, and a lab to compare them on your task.",
    )
    parser.add_argument("--version", action="version", version=f"losslab {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"losslab.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            # the data warnings are for the user: one plain line each, like the errors below
            warnings.showwarning = _user_warning_printer(args.command, warnings.showwarning)
            code = int(args.handler(args) or 0)
        # flush here, so that a closed pipe surfaces below rather than at interpreter exit
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (``losslab list | head``): as the Python docs recommend, point
        # stdout at devnull so the flush at exit does not raise again, and exit quietly.
        _silence_stdout()
        return 1
    except (CommandError, ValueError, TypeError, FileNotFoundError) as error:
        # Argument and data errors carry a message written for the user.
        print(f"losslab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"losslab {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130


def _user_warning_printer(command: str, fallback):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from losslab.data._core import DataWarning  # here: only when a warning is shown
        from losslab.experiments.classification.storage.validation import StoreRowWarning

        if issubclass(category, (DataWarning, StoreRowWarning)):
            print(f"losslab {command}: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # stdout is not a real file (captured in tests): nothing is flushed at exit


if __name__ == "__main__":
    raise SystemExit(main())
