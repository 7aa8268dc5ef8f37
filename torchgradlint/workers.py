"""Worker processes for ``check -j N`` and ``fix -j N`` that die with their parent.

CI runners and editors stop a linter by killing it (SIGTERM, SIGKILL) or with Ctrl-C (SIGINT to
the whole process group). The workers must not outlive it, holding its standard output open:

- each worker asks the kernel to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG`` on
  Linux) and, elsewhere, a watchdog thread exits when the parent's pid changes;
- workers ignore SIGINT: Ctrl-C is the parent's to handle;
- the parent turns SIGTERM into :class:`Terminated` while the pool runs, and on it or on
  Ctrl-C terminates every worker at once instead of waiting for the queued work;
- a worker exits through ``SystemExit`` on SIGTERM, so ``finally`` blocks run (a fix being
  written removes its temporary file).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import threading
import time
from itertools import repeat
from typing import Callable, List, Sequence

EXIT_TERMINATED = 128 + 15
WATCHDOG_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


class Terminated(BaseException):
    """The parent got SIGTERM: stop like for Ctrl-C (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` swallows it)."""


def _exit_on_sigterm(signum, frame) -> None:
    sys.exit(EXIT_TERMINATED)


def _die_with(parent: int) -> None:
    """Worker initializer: follow the parent ``parent`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request: nobody will signal us
        os._exit(EXIT_TERMINATED)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_SECONDS)
        os._exit(EXIT_TERMINATED)

    threading.Thread(target=watch, name="torchgradlint-parent-watchdog", daemon=True).start()


def _in_worker(task: Callable, item, *arguments):
    try:
        return task(item, *arguments)
    except SystemExit:  # SIGTERM: the task's ``finally`` blocks ran; the executor must not
        os._exit(EXIT_TERMINATED)  # go on with the next item


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def run_parallel(task: Callable, items: Sequence, jobs: int, *arguments) -> List:
    """``[task(item, *arguments) for item in items]``, in ``jobs`` worker processes when there
    are several items and jobs (in this process when processes are not available)."""
    if jobs <= 1 or len(items) <= 1:
        return [task(item, *arguments) for item in items]
    from concurrent.futures.process import BrokenProcessPool

    workers = min(jobs, len(items))
    chunksize = max(1, len(items) // (workers * 4))
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    pool = None
    try:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, initializer=_die_with, initargs=(os.getpid(),))
        results = list(pool.map(_in_worker, repeat(task), items, *(repeat(a) for a in arguments),
                                chunksize=chunksize))
        pool.shutdown(wait=True)
        pool = None
        return results
    except (OSError, NotImplementedError, BrokenProcessPool):
        _stop(pool)
        pool = None
        # no process support here (or a worker died): work in this process
        return [task(item, *arguments) for item in items]
    except BaseException:  # Ctrl-C, SIGTERM: stop every worker now, not after the queue
        _stop(pool)
        pool = None
        raise
    finally:
        if pool is not None:
            _stop(pool)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop(pool) -> None:
    if pool is None:
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            process.terminate()
        except (OSError, AttributeError, ValueError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 2.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
