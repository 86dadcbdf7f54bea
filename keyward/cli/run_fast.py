"""`keyward run` without click: the daemon runs for months, and click (with what it imports) would
stay resident in it for nothing, 1.3 MB of the idle daemon's RSS (bench/daemon_memory.py). The
plain form, root options (--config FILE, --debug) then `run`, takes this path; `--once`, `--help`
and anything else go through click. Errors become the same messages and exit codes as there
(keyward.cli.app)."""

from __future__ import annotations

import logging
import os
import sys


def fast_main(args: list[str]) -> int | None:
    """Run the daemon from raw arguments; return its exit code, or None to let click handle them."""
    config_path, debug = None, False
    it = iter(args)
    for arg in it:
        if arg == "--config":
            config_path = next(it, None)
            if config_path is None:
                return None
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
        elif arg == "--debug":
            debug = True
        elif arg == "run":
            if next(it, None) is not None:
                return None  # options of `run` (--once, --help) or mistakes: click's
            return run(config_path or os.environ.get("KEYWARD_CONFIG") or None, debug)
        else:
            return None
    return None


def run(config_path: str | None, debug: bool) -> int:
    """What `keyward run` does through click: logging, the configuration, the daemon."""
    from keyward.errors import KeywardError
    from keyward.keystrings import redact

    try:
        from keyward.config import find_config_path, load_config
        from keyward.daemon import Daemon
        from keyward.log import setup_logging

        if not logging.getLogger().handlers:
            setup_logging("debug" if debug else "warning", stream=sys.stderr)
        config = load_config(find_config_path(config_path))
        setup_logging("debug" if debug else config.log_level, stream=sys.stderr)
        return Daemon(config_path).run()
    except KeywardError as exc:
        return _report(exc, debug, f"keyward: error: {redact(str(exc))}", exc.exit_code)
    except KeyboardInterrupt:
        print("keyward: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # named as click's path names it; no traceback without --debug
        from keyward.errors import InternalError
        from keyward.failures import named

        error = named(exc)
        hint = "\n  (run with --debug for the traceback)" if isinstance(error, InternalError) else ""
        return _report(exc, debug, f"keyward: error: {redact(str(error))}{hint}", error.exit_code)


def _report(exc: BaseException, debug: bool, message: str, code: int) -> int:
    from keyward.keystrings import redact

    if debug:
        import traceback

        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
    print(message, file=sys.stderr)
    return code
