"""``python -m bench``: run every benchmark and print one JSON document on stdout.

Sections: CLI start-up, challenge deploy+clean request counts (``challenge_requests``), deploy and
reconciliation request counts (``deploy_requests``), and end-to-end issuance with pebble
(``e2e_issuance``). Each section module exposes ``run() -> dict``. A section that fails is
reported under its name as ``{"error": ...}`` instead of hiding the others' figures; the exit
status is 1 when any section failed. Progress goes to stderr.

    python -m bench                  # everything
    python -m bench startup e2e      # only the named sections (startup challenge deploy
                                     # reconcile200 e2e bind certbot quiet dns01 lifecycle runs
                                     # ha)
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from typing import Any

SECTIONS = {
    "startup": "bench.startup",
    "challenge": "bench.challenge_requests",
    "deploy": "bench.deploy_requests",
    "reconcile200": "bench.deploy_requests",  # its no-op reconciliation with 200 certificates
    "e2e": "bench.e2e_issuance",
    "bind": "bench.bind_requests",  # NS_BIND: first issuance with two bindings, a no-op day
    "certbot": "bench.certbot_requests",  # issue 12: certbot issuance next to dehydrated
    "quiet": "bench.quiet_runs",  # issue 14: what a scheduled run prints and logs
    "dns01": "bench.dns01",  # issue 11: dns-01 deploy+clean and wildcard issuance
    "lifecycle": "bench.lifecycle",  # issue 13: ARI, metrics, notifications in a daily run
    "runs": "bench.run_requests",  # whole runs through the cron scripts: request budgets
    "ha": "bench.ha_targets",  # issue 10: deploy to 1 and 5 targets, HA-pair renewal requests
}
LARGE_RECONCILE = 200


def reconcile_200() -> dict[str, Any]:
    """The deploy module's no-op reconciliation benchmark with 200 certificates."""
    import tempfile
    from pathlib import Path

    from bench.deploy_requests import noop_reconcile

    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        figures = noop_reconcile(Path(tmp), LARGE_RECONCILE)
    # its keys are named after its default of 50 certificates; "certificates" says how many
    return {key.replace("_50", f"_{LARGE_RECONCILE}"): value for key, value in figures.items()}


def run_section(name: str) -> dict[str, Any]:
    """Import and run one section; a failure becomes an ``error`` entry."""
    started = time.perf_counter()
    try:
        if name == "reconcile200":
            result: dict[str, Any] = reconcile_200()
        else:
            result = dict(importlib.import_module(SECTIONS[name]).run())
    except Exception as exc:  # a benchmark harness reports, it does not stop at the first failure
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["section_wall_s"] = round(time.perf_counter() - started, 2)
    return result


def main(argv: list[str]) -> int:
    """Run the requested sections (all by default) and print the JSON document."""
    unknown = [name for name in argv if name not in SECTIONS]
    if unknown:
        print(f"bench: unknown section(s) {unknown}; choose from {list(SECTIONS)}",
              file=sys.stderr)
        return 2
    document: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for name in argv or list(SECTIONS):
        print(f"bench: running {name} ...", file=sys.stderr)
        document[name] = run_section(name)
    print(json.dumps(document, indent=2, sort_keys=False))
    return 1 if any(isinstance(v, dict) and "error" in v for v in document.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
