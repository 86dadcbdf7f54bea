"""`keyward current [--pool NAME] [--check]`: print the published key for scripts.

It runs before click is imported (see keyward.cli.main): scripts call it on every start, so it must
cost little more than the interpreter itself. It prints the key and nothing else on stdout.
`--check` also exits 1 when every project of the pool is exhausted (the key is still printed).
"""

from __future__ import annotations

import sys

USAGE = "usage: keyward current [--pool NAME] [--check] [--config FILE]"


def fast_main(args: list[str], config_path: str | None = None) -> int | None:
    """Run `current` from raw arguments; return the exit code, or None to let click handle them."""
    pool, check = "default", False
    it = iter(args)
    try:
        for arg in it:
            if arg == "--pool":
                pool = next(it)
            elif arg.startswith("--pool="):
                pool = arg.split("=", 1)[1]
            elif arg == "--check":
                check = True
            elif arg == "--config":
                config_path = next(it)
            elif arg.startswith("--config="):
                config_path = arg.split("=", 1)[1]
            else:
                return None  # --help and mistakes get click's full treatment
    except StopIteration:
        print(f"keyward: error: {args[-1]} needs a value\n{USAGE}", file=sys.stderr)
        return 2
    return run(pool, check, config_path)


def run(pool: str, check: bool, config_path: str | None) -> int:
    try:
        from keyward.published import fast_current

        secret = None if check else fast_current(pool, config_path)
        if secret is None:
            from keyward.client import current_key

            secret = current_key(pool, config_path=config_path)
        sys.stdout.write(secret + "\n")
        sys.stdout.flush()
        if check:
            from keyward.client import read_published_state
            from keyward.config import find_config_path, load_config

            config = load_config(find_config_path(config_path))
            state = read_published_state(config.runtime_dir, pool) or {}
            if state.get("all_exhausted"):
                print(f"keyward: warning: every project of pool {pool!r} is exhausted", file=sys.stderr)
                return 1
        return 0
    except Exception as exc:  # named here too: this path runs before click's edge exists
        from keyward.errors import KeywardError  # here, not above: the answer path never needs it
        from keyward.failures import named
        from keyward.keystrings import redact

        error = exc if isinstance(exc, KeywardError) else named(exc)
        print(f"keyward: error: {redact(str(error))}", file=sys.stderr)
        return error.exit_code
