"""Reading files that come from elsewhere, without hanging, crashing or running out of memory.

Every small text or JSON file the app reads from a user's disk (a config, a run folder's
``config.json``, ``summary.json``, ``checkpoint/state.json``, ``labels.json``) goes through
``read_text`` / ``read_json``:

- only regular files are opened: a FIFO would block ``open`` forever, ``/dev/zero`` would
  never end, a folder raises a confusing error;
- the size is bounded before anything is read;
- the text must be UTF-8; JSON nested deeper than Python's recursion limit is refused
  instead of raising ``RecursionError``.

``path_problem`` answers "can this path be used?" without raising, even for a component
over 255 bytes or a folder that cannot be entered, where ``Path.exists()`` raises on
Python 3.11.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

# A config or run-folder JSON file is a few kB; a history of 10,000 epochs is a few MB.
MAX_JSON_BYTES = 16 * 1024**2


class FileReadError(ValueError):
    """A file cannot be read as asked; the message names it and says what to do."""


def file_kind(path: str | os.PathLike) -> str:
    """"file", "folder", "missing", or what else the path is ("named pipe", "device", ...).

    Never raises: a path that cannot even be looked at (a name over 255 bytes, a folder
    that cannot be entered) is "missing" or "unreadable" rather than an exception.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"
    except PermissionError:
        return "unreadable"
    except OSError as error:
        return "missing" if error.errno in (36, 40) else "unreadable"  # ENAMETOOLONG, ELOOP
    except ValueError:  # an embedded NUL byte
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def is_regular_file(path: str | os.PathLike) -> bool:
    return file_kind(path) == "file"


def is_folder(path: str | os.PathLike) -> bool:
    return file_kind(path) == "folder"


def path_problem(path: str | os.PathLike, *, want: str = "file") -> str:
    """Why ``path`` is not a usable ``want`` ("file" or "folder"), or "" when it is."""
    kind = file_kind(path)
    if kind == want:
        return ""
    shown = display_path(path)
    if len(shown) > 200:
        shown = shown[:120] + " ... " + shown[-40:]
    if kind == "missing":
        name_too_long = any(len(os.fsencode(part)) > 255 for part in Path(os.fsdecode(path)).parts)
        if name_too_long:
            return f"{shown} cannot exist: a part of that path is longer than 255 bytes"
        return f"{shown} does not exist"
    if kind == "unreadable":
        return f"{shown} cannot be reached (permission denied on it or on a folder above it)"
    article = "a" if kind[0] not in "aeiou" else "an"
    return f"{shown} is {article} {kind}, not a {want}"


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (kept by Python as lone
    surrogates) are shown as ``\\xff`` escapes, which any terminal, JSON reader or widget takes."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        return path.decode("utf-8", "backslashreplace")
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeError:
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def read_text(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``.

    Raises:
        FileReadError: not a regular file, too large, unreadable or not UTF-8.
    """
    problem = path_problem(path)
    if problem:
        raise FileReadError(f"Cannot read the {what}: {problem}.")
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the check, open returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise FileReadError(f"Cannot read the {what}: {os.fsdecode(path)} is not a regular file.")
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise FileReadError(f"Cannot read the {what} {os.fsdecode(path)}: "
                            f"{error.strerror or error}.") from None
    if len(data) > max_bytes:
        raise FileReadError(f"The {what} {os.fsdecode(path)} is larger than {max_bytes // 1024**2} MB; "
                            "it is not a file this app wrote or reads.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FileReadError(f"The {what} {os.fsdecode(path)} is not UTF-8 text (invalid byte at "
                            f"position {error.start}); save it as UTF-8.") from None


def parse_json(text: str, *, what: str = "file") -> Any:
    """``json.loads`` that reports nesting too deep for Python as an error, not a crash."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FileReadError(f"The {what} is not valid JSON: {error}") from None
    except ValueError:  # Python reads integers of at most 4300 digits
        raise FileReadError(f"The {what} holds a number too long to be real (over 4300 "
                            "digits); it was not read.") from None
    except RecursionError:
        raise FileReadError(f"The {what} is nested too deeply to be a real {what}; it was not read.") from None


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, what: str = "file") -> Any:
    """``read_text`` then ``parse_json``; the error messages name ``path``.

    Raises:
        FileReadError: as ``read_text``, or not valid JSON.
    """
    text = read_text(path, max_bytes=max_bytes, what=what)
    try:
        return parse_json(text, what=what)
    except FileReadError as error:
        raise FileReadError(f"{os.fsdecode(path)}: {error}") from None
