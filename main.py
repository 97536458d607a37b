"""Finetune Studio: `python main.py gui | train | config | predict | check | overfit | lr-find`
(see README.md)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] == "gui":
        from gui.app import main as gui_main

        return gui_main(args[1:])
    from training.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
