"""The README's config reference, generated from the knob table.

    python -m training.config.reference                   # print it
    python -m training.config.reference --write README.md  # update README.md in place
    python -m training.config.reference --check README.md  # exit 1 when README.md is stale

The reference sits in the README between ``BEGIN`` and ``END``; everything outside the
markers is left as it is. ``tests/test_knobs.py`` fails when the README is stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import textwrap
from pathlib import Path

from training.config.document import Config
from training.config.knobs import Leaf, leaves

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"
HEADER = "| key | default | allowed | meaning |\n|---|---|---|---|\n"


def config_reference() -> str:
    """The Markdown of every section: its note, then one table row per key."""
    config = Config()
    top = [leaf for leaf in leaves(config) if "." not in leaf.key]
    parts = ["### Top level\n\n" + HEADER + "".join(_row(leaf) for leaf in top)]
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        text = f"### `{f.name}`\n\n"
        note = _section_note(type(section))
        if note:
            text += note + "\n\n"
        parts.append(text + HEADER + "".join(_row(leaf) for leaf in leaves(section, f.name + ".")))
    return "\n".join(parts)


def _section_note(cls: type) -> str:
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses write when there is no docstring
        return ""
    return textwrap.fill(" ".join(inspect.cleandoc(doc).split()), width=90)


def _row(leaf: Leaf) -> str:
    cells = (f"`{leaf.key}`", f"`{json.dumps(leaf.value)}`", allowed_text(leaf), leaf.knob.help)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def allowed_text(leaf: Leaf) -> str:
    """What a key accepts, in the README's words: a range, choices, what null and 0 mean."""
    row = leaf.knob
    if row.widget == "switch":
        text = "`true`, `false`"
    elif row.widget == "layers":
        text = f"{row.range_text(compact=True)} or " + ", ".join(f"`{json.dumps(c)}`" for c in row.choices)
    elif row.widget == "int_list":
        text = f"each in {row.range_text(compact=True)}"
    elif row.choices:
        text = ", ".join(f"`{choice}`" for choice in row.choices)
    elif row.widget == "weights":
        text = "`imagenet`, `none`, or a file path"
    elif row.widget == "folder":
        text = "a folder path"
    elif row.has_range:
        text = row.range_text(compact=True) + (f" {row.unit}" if row.unit else "")
    else:
        text = ""
    if row.none_text:
        text += f"; `null` = {row.none_text}"
    if row.zero_text:
        text += f"; 0 = {row.zero_text}"
    return text


def replace_reference(readme: str, reference: str) -> str:
    """``readme`` with the text between the markers replaced by ``reference``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"The README must hold {BEGIN} and then {END} around the config reference.")
    return readme[:start + len(BEGIN)] + "\n" + reference + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.config.reference",
                                     description="Print or update the README's config reference.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", type=Path, help="update this file between the markers")
    group.add_argument("--check", metavar="README", type=Path, help="exit 1 when this file is stale")
    args = parser.parse_args(argv)
    reference = config_reference()
    path = args.write or args.check
    if path is None:
        sys.stdout.write(reference)
        return 0
    try:
        text = path.read_text(encoding="utf-8")
        updated = replace_reference(text, reference)
    except (OSError, ValueError) as error:
        print(f"Cannot update the config reference: {error}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{path}: the config reference is stale; run "
                  f"python -m training.config.reference --write {path}", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
