"""What the rotation service reaches outside the database, gathered so tests can swap it.

`Deps` holds the API Keys client factory, the Gemini verification call, the sleep used between
retries and the random source that spreads rotation dates. Production code uses the defaults.

`crash_point` is a TEST HOOK: when the environment variable KEYWARD_TEST_CRASH_AT names the step
just journaled, the process kills itself with SIGKILL, so the crash-safety test can stop a real
rotation at every step boundary deterministically. It does nothing when the variable is unset.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.google.apikeys import ApiKeysClient
    from keyward.google.gemini import Verification

CRASH_ENV = "KEYWARD_TEST_CRASH_AT"
# TEST HOOK too: SIGSTOP instead of SIGKILL, so a test can pause a leader mid-rotation (as a stalled
# VM or a long GC pause would) and let it go on after another daemon took over.
PAUSE_ENV = "KEYWARD_TEST_PAUSE_AT"
# How often to ask whether a key operation is done; creating a key takes Google a second or two.
POLL_INTERVAL = 0.5


def default_client(ctx: "Context", sleep: Callable[[float], None]) -> "ApiKeysClient":
    from keyward.google.apikeys import ApiKeysClient
    from keyward.google.auth import load_credentials

    rotation = ctx.config.rotation
    return ApiKeysClient(load_credentials(ctx.config.google.credentials),
                         retry_budget=rotation.retry_budget.total_seconds(),
                         operation_timeout=rotation.operation_timeout.total_seconds(),
                         poll_interval=POLL_INTERVAL, sleep=sleep)


def default_verify(key_string: str) -> "Verification":
    from keyward.google.gemini import verify_key

    return verify_key(key_string)


@dataclass
class Deps:
    """The rotation service's outside world; every field has the production default."""

    client: Callable[["Context", Callable[[float], None]], "ApiKeysClient"] = default_client
    verify: Callable[[str], "Verification"] = default_verify
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = field(default=random.random)


def crash_point(step: str) -> None:
    """Test hook: SIGKILL this process right here when KEYWARD_TEST_CRASH_AT == `step` (SIGSTOP it,
    once, when KEYWARD_TEST_PAUSE_AT == `step`)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) == step:
        os.environ.pop(PAUSE_ENV)  # once
        os.kill(os.getpid(), signal.SIGSTOP)
