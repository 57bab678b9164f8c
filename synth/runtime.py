"""Thread policy, seeding and Ctrl-C: the pieces of global state synthguard owns.

Threads. On 2 shared cores, CTGAN ran 0.28 s/epoch with one torch thread and joblib's sequential
backend, and 6.8 s/epoch with two torch threads while another process held a core (24x slower):
oversubscription, not compute, dominated. ``limited_threads`` caps torch, BLAS/OpenMP and joblib
for the duration of a fit, so parallelism comes from running *fits* side by side, one thread
each, never from threads fighting inside one fit. ctgan also starts a joblib process pool for
tables of 500+ rows; the sequential joblib backend keeps it in-process.

Seeding. SDV and ctgan draw from numpy's and torch's global generators during ``fit``.
``seeded`` is the one place where synthguard touches global RNG state: it seeds them, runs the
block, and restores the previous state, so a caller's own random streams are left as they were.

Ctrl-C. Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a
garbage-collector or weakref callback (SQLAlchemy's, during an audit's shadow fits) the
exception is printed as "ignored" and the run goes on as if nothing happened. ``catch_interrupts``
latches the signal as well, and ``check_interrupt`` (called at every progress report) raises it
again, so a Ctrl-C is never lost, only delayed to the next checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import numpy as np

from synth.errors import ParamError

SEED_MAX = 2**32 - 1
"""The largest seed synthguard takes (seeds run from 0, as `--seed` says)."""

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def check_threads(threads: int) -> int:
    if threads < 1:
        raise ParamError(f"threads ({threads}) must be >= 1")
    return threads


def set_process_threads(threads: int) -> None:
    """Set thread counts for this process and the processes it starts (call at start-up)."""
    check_threads(threads)
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)


@contextlib.contextmanager
def limited_threads(threads: int = 1) -> Iterator[None]:
    """Cap torch, BLAS/OpenMP and joblib to ``threads`` inside the block, then restore."""
    check_threads(threads)
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads), parallel_config(backend="sequential"):
            yield
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and (if loaded) torch's global generators; restore on exit."""
    torch = sys.modules.get("torch")
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state() if torch is not None else None
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None and torch_state is not None:
            torch.random.set_rng_state(torch_state)


def child_seeds(seed: int, count: int) -> list[int]:
    """Independent child seeds derived from one seed (numpy SeedSequence)."""
    return [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(seed).spawn(count)
    ]


_interrupted = threading.Event()


def _latch_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def catch_interrupts() -> None:
    """Latch SIGINT (see the module note); a SIGINT the process ignores stays ignored (call in
    the main thread at start-up; clears an earlier latch)."""
    _interrupted.clear()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _latch_interrupt)


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived since start-up (even one dropped on the way)."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
