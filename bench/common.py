"""Helpers shared by the benchmarks: timing, medians, and the repository's location.

Benchmarks measure; they never assert. Every figure is returned as plain JSON-able data so that
``python -m bench`` can print one document.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parent.parent


def wall(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, its result)."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run_counted(fake: Any, what: str, run: Callable[[], Any]) -> tuple[list[Any], float]:
    """Run ``run`` (it returns a CompletedProcess) against ``fake``; the NITRO requests it sent
    and its seconds. A failed run raises, naming ``what`` with the end of its output."""
    before = len(fake.requests)
    seconds, done = wall(run)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout[-2000:]}"
                           f"{done.stderr[-2000:]}")
    return fake.requests[before:], seconds


def require_stack_tools() -> None:
    """Raise, naming them, when tools the test stack needs (pebble, dehydrated...) are missing."""
    from tests.stack import missing_tools

    missing = missing_tools()
    if missing:
        raise RuntimeError(f"missing tools: {', '.join(missing)} (run 'make deps')")


def median_seconds(samples: Sequence[float]) -> float:
    """The median, rounded to milliseconds (finer digits are noise on a shared machine)."""
    return round(statistics.median(samples), 4)


def time_command(
    argv: Sequence[str], runs: int, env: Optional[dict[str, str]] = None
) -> list[float]:
    """Wall seconds of ``runs`` executions of a child process (stdout/stderr discarded)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            list(argv), cwd=REPO, env=env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        samples.append(time.perf_counter() - started)
    return samples


def child_env(**extra: str) -> dict[str, str]:
    """The current environment with the repository on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def python() -> str:
    """The interpreter running the benchmarks (the venv's under ``make bench``)."""
    return sys.executable
