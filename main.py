"""Finetune Studio: `python main.py gui | train | config | predict | check | overfit | lr-find | export`
(see README.md)."""

from __future__ import annotations

import os
import sys

# As a shell reports a process ended by SIGPIPE (128 + 13): the reader of the output went away.
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    _tolerant_output()
    try:
        code = _dispatch(args)
        # Output to a pipe is buffered: a reader that went away shows up here, not at exit.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `python main.py predict RUN folder | head -1`: stop quietly, like any Unix tool.
        _silence_output()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:  # Ctrl+C before a command had set up its own handling
        return EXIT_INTERRUPTED


def _dispatch(args: list[str]) -> int:
    if not args or args[0] == "gui":
        from gui.app import main as gui_main

        return gui_main(args[1:])
    from training.cli.main import main as cli_main

    return cli_main(args)


def _tolerant_output() -> None:
    """File names that are not valid UTF-8 reach Python as lone surrogates; printed with a
    strict encoder (e.g. PYTHONIOENCODING=utf-8) they would raise UnicodeEncodeError.
    Print them as backslash escapes instead."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass  # replaced by something that is not a text file (a test's capture): leave it


def _silence_output() -> None:
    # Python flushes stdout again at exit; pointing it at devnull keeps that flush from
    # printing "Exception ignored ... BrokenPipeError".
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(devnull, stream.fileno())
            except (AttributeError, ValueError, OSError):
                pass
        os.close(devnull)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
