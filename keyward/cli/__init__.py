"""The `keyward` command. `keyward current` takes a fast path that never imports click, SQLAlchemy or
the Google libraries, because scripts call it on every start; everything else goes through click."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["current"]:
        from keyward.cli.current import fast_main

        code = fast_main(args[1:])
        if code is not None:
            sys.exit(code)
    from keyward.cli.app import cli

    cli.main(args=args, prog_name="keyward")
