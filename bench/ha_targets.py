"""Several appliances and HA pairs (issue 10): wall time across targets, requests of an HA renewal.

- ``targets_deploy``: a first certificate deploy (the ``deploy`` command's work: follow the
  primary, upload, CA certkey, certkey, link, verify, save) to 1 and to 5 independent fakes, each
  answering every NITRO request 50 ms late; targets run in parallel, so the 5-target wall time
  should stay within 1.5x the 1-target time (``ratio_5_to_1``).
- ``ha_renewal``: a renewal on a fake HA pair with NS_HA_VERIFY=warn: requests the primary
  received (including the file sync) and the read-only requests of the peer check on the
  secondary, with their sequences.

Run: ``python -m bench ha``; prints JSON. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ns_letsencrypt import cmd_deploy
from ns_letsencrypt.config import Settings
from tests import pki
from tests.fakens import FakeNetScaler
from tests.fakens.ha import FakeHaPair

USER, PASSWORD = "nsroot", "bench-password-ha"
LATENCY = 0.05
RUNS = 3


def _settings(fake: Any, name: str = "", pin: str = "", **extra: Any) -> Settings:
    return Settings(url=fake.url, username=USER, password=PASSWORD,
                    tls_pin=pin or fake.cert_sha256, target=name, **extra)


def _files(base: Path, hierarchy: pki.Hierarchy, tag: str) -> dict[str, Path]:
    leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com"])
    return pki.write_cert_dir(base / tag, leaf, hierarchy)


def _deploy(settings: Settings, files: dict[str, Path]) -> float:
    """The ``deploy`` command over ``settings`` (its targets, if any); wall seconds."""
    args = argparse.Namespace(cert=str(files["cert"]), key=str(files["key"]),
                              chain=str(files["chain"]), domain=None, alias=None, json=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cmd_deploy.run_deploy(args, lambda: settings)
    return time.perf_counter() - started


def _deploy_to(count: int, files: dict[str, Path]) -> float:
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeNetScaler(users={USER: PASSWORD}))
                 for _ in range(count)]
        for fake in fakes:
            fake.state.latency = LATENCY
        if count == 1:
            settings = _settings(fakes[0])
        else:
            targets = tuple(_settings(f, f"t{i}") for i, f in enumerate(fakes))
            settings = Settings(url="", username=USER, password=PASSWORD,
                                target_names=tuple(t.target for t in targets), targets=targets)
        return _deploy(settings, files)


def targets_deploy(base: Path) -> dict[str, Any]:
    files = _files(base, pki.make_hierarchy("T"), "targets")
    one = sorted(_deploy_to(1, files) for _ in range(RUNS))[RUNS // 2]
    five = sorted(_deploy_to(5, files) for _ in range(RUNS))[RUNS // 2]
    return {"latency_per_request_s": LATENCY, "runs": RUNS, "wall_1_target_s": round(one, 3),
            "wall_5_targets_s": round(five, 3), "ratio_5_to_1": round(five / one, 2),
            "target_ratio": 1.5}


def _sequence(log: Sequence[Any]) -> list[str]:
    return [f"{r.method} {r.resource}" + (f"?action={r.action}" if r.action else "")
            for r in log]


def ha_renewal(base: Path) -> dict[str, Any]:
    hierarchy = pki.make_hierarchy("H")
    with FakeHaPair(users={USER: PASSWORD}) as pair:
        pins = f"{pair.a.cert_sha256},{pair.b.cert_sha256}"
        settings = _settings(pair.a, pin=pins, ha_verify="warn")
        _deploy(settings, _files(base, hierarchy, "first"))
        start_a, start_b = len(pair.a.requests), len(pair.b.requests)
        wall = _deploy(settings, _files(base, hierarchy, "renewal"))
        on_a, on_b = pair.a.requests[start_a:], pair.b.requests[start_b:]
        return {
            "primary_requests": len(on_a), "secondary_requests": len(on_b),
            "total_requests": len(on_a) + len(on_b), "wall_s": round(wall, 3),
            "secondary_writes": len([r for r in on_b if r.method != "GET"
                                     and r.resource not in ("login", "logout")]),
            "secondary_failures": len(pair.failures),
            "primary_sequence": _sequence(on_a), "secondary_sequence": _sequence(on_b),
        }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        return {"targets_deploy": targets_deploy(Path(tmp)),
                "ha_renewal": ha_renewal(Path(tmp))}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
