"""The ``kinoit`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
this module only builds the parser and turns expected errors into one line on
stderr and a non-zero exit (2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from kinoit import __version__
from kinoit.cli import jobs as jobs_commands
from kinoit.cli import media as media_commands
from kinoit.cli import store as store_commands
from kinoit.errors import KinoitError

EXIT_ERROR = 2

Handler = Callable[[argparse.Namespace], int | None]


# An error message longer than this is cut (ffmpeg stderr tails can be long).
MAX_ERROR_CHARS = 500


def one_line(message: str) -> str:
    """``message`` on one line (runs of whitespace, newlines included, become one space)."""
    text = " ".join(message.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit 2 (the
    usage stays available with --help). Subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = OneLineParser(
        prog="kinoit",
        description="Distributed, content-addressed video transcoding.",
    )
    parser.add_argument("--version", action="version", version=f"kinoit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (store_commands, media_commands, jobs_commands):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kinoit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        code = handler(args)
    except KinoitError as exc:
        print(f"kinoit: {one_line(exc.message)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kinoit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `kinoit cat CID | head` closes stdout early; that is not an error.
        return 0
    except (OSError, UnicodeError) as exc:  # a file that cannot be read or is not text
        print(f"kinoit: {one_line(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return EXIT_ERROR
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
