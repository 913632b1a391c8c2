"""Start-up cost of the CLI: ``ns-letsencrypt --version`` against a bare ``import requests``.

The hook starts one Python process per dehydrated hook call, so start-up is paid many times per
run. Target: the CLI's median is at most 1.5x the median of ``python -c "import requests"``,
measured in the same run on the same interpreter (interleaved, so machine noise hits both).
"""

from __future__ import annotations

from typing import Any

from .common import child_env, median_seconds, python, time_command

RUNS = 15
TARGET_RATIO = 1.5


def run(runs: int = RUNS) -> dict[str, Any]:
    """Median wall seconds of both commands, their ratio, and whether the target is met."""
    env = child_env()
    cli = [python(), "-m", "ns_letsencrypt", "--version"]
    bare = [python(), "-c", "import requests"]
    empty = [python(), "-c", "pass"]
    time_command(cli, 2, env)  # warm the page cache and __pycache__ before measuring
    time_command(bare, 2, env)
    cli_samples: list[float] = []
    bare_samples: list[float] = []
    empty_samples: list[float] = []
    for _ in range(runs):
        cli_samples += time_command(cli, 1, env)
        bare_samples += time_command(bare, 1, env)
        empty_samples += time_command(empty, 1, env)
    cli_median = median_seconds(cli_samples)
    bare_median = median_seconds(bare_samples)
    ratio = round(cli_median / bare_median, 3)
    return {
        "runs": runs,
        "cli_version_median_s": cli_median,
        "import_requests_median_s": bare_median,
        "python_empty_median_s": median_seconds(empty_samples),
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
    }
