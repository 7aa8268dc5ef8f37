"""A CPU-time limit for one call of the linter in the test process (shared by the robustness
and property suites)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class TimeLimit(BaseException):
    """A BaseException, so that the linter's own ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimit in the main thread once this process has used ``seconds`` of CPU time
    (POSIX ``ITIMER_PROF``: a busy machine does not trip it); elsewhere, no limit."""
    usable = hasattr(signal, "setitimer") and hasattr(signal, "SIGPROF") and \
        threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TimeLimit(f"still running after {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
