"""NITRO requests of certificate deployment, counted from the fake NetScaler's request log.

Scenarios (each one NITRO session, login and logout included, configuration saved once at the
end exactly as ``ns-letsencrypt deploy`` does):

- ``first_deploy``: a new certificate with one intermediate (upload 3 files, CA certkey, certkey,
  link, verify, save); ``first_deploy_2_intermediates``: the Gen-Y shape with two;
- ``renewal``: same issuer, rotated key (upload cert + key, update, verify, delete the two
  superseded files, save) - target <= 12;
- ``renewal_new_issuer``: the issuer changed (new CA certkey, unlink/relink, old CA removed);
- ``hook_deploy_cert``: the renewal as the ``deploy_cert`` hook process runs it (no save there:
  ``exit_hook`` saves);
- ``noop_reconcile_50``: 50 certificates already deployed, one process - target <= 5.

Run: ``python -m bench deploy`` (or ``python -m bench.deploy_requests``); prints JSON.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ns_letsencrypt import appliance, deploy, reconcile
from ns_letsencrypt.config import Settings
from ns_letsencrypt.hook import run_hook
from ns_letsencrypt.session import open_client
from tests import pki
from tests.fakens import FakeNetScaler

USER, PASSWORD = "nsroot", "bench-password-0"
RENEWAL_TARGET = 12
RECONCILE_TARGET = 5
RECONCILE_CERTS = 50


def _settings(fake: Any) -> Settings:
    return Settings(url=fake.url, username=USER, password=PASSWORD, tls_pin=fake.cert_sha256)


def _measure(fake: Any, action: Callable[[], Any]) -> dict[str, Any]:
    """Requests (count and sequence) and wall time of ``action``."""
    before = len(fake.requests)
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    log = fake.requests[before:]
    return {
        "requests": len(log),
        "wall_s": round(wall, 4),
        "sequence": [f"{r.method} {r.resource}" + (f"?action={r.action}" if r.action else "")
                     for r in log],
    }


def _issue(base: Path, hierarchy: pki.Hierarchy, name: str, tag: str) -> dict[str, Path]:
    leaf = pki.make_leaf(hierarchy.issuer, [name])
    return pki.write_cert_dir(base / f"{name}-{tag}", leaf, hierarchy)


def _deploy_run(fake: Any, files: dict[str, Path], name: str) -> Callable[[], None]:
    settings = _settings(fake)

    def action() -> None:
        with open_client(settings) as client:
            result = deploy.deploy_cert(client, settings, name, str(files["key"]),
                                        str(files["cert"]), str(files["chain"]))
            appliance.finish_run(client, settings, result.changed)
    return action


def _hook_run(fake: Any, files: dict[str, Path], name: str) -> Callable[[], None]:
    settings = _settings(fake)
    args = [name, str(files["key"]), str(files["cert"]), str(files["fullchain"]),
            str(files["chain"]), "0"]

    def action() -> None:
        status = run_hook("deploy_cert", args, lambda: settings)
        if status:
            raise RuntimeError(f"deploy_cert hook exited {status}")
    return action


def deploy_scenarios(base: Path) -> dict[str, Any]:
    """First deploy, renewal (same and new issuer), the hook's deploy_cert."""
    results: dict[str, Any] = {}
    one, other = pki.make_hierarchy("B", 1), pki.make_hierarchy("N", 1)
    two = pki.make_hierarchy("Y", 2)
    name = "www.example.com"
    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        results["first_deploy"] = _measure(fake, _deploy_run(fake, _issue(base, one, name, "1"),
                                                             name))
        renewal = _measure(fake, _deploy_run(fake, _issue(base, one, name, "2"), name))
        renewal["target"] = RENEWAL_TARGET
        renewal["within_target"] = renewal["requests"] <= RENEWAL_TARGET
        results["renewal"] = renewal
        results["renewal_new_issuer"] = _measure(
            fake, _deploy_run(fake, _issue(base, other, name, "3"), name))
        results["hook_deploy_cert"] = _measure(
            fake, _hook_run(fake, _issue(base, other, name, "4"), name))
    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        results["first_deploy_2_intermediates"] = _measure(
            fake, _deploy_run(fake, _issue(base, two, name, "5"), name))
    return results


def noop_reconcile(base: Path, count: int = RECONCILE_CERTS) -> dict[str, Any]:
    """``count`` certificates already on the appliance: one reconcile process."""
    hierarchy = pki.make_hierarchy("R", 1)
    names = [f"host{i:02d}.example.com" for i in range(count)]
    dh = base / "dehydrated"
    (dh / "certs").mkdir(parents=True)
    (dh / "domains.txt").write_text("\n".join(names) + "\n")
    for name in names:
        leaf = pki.make_leaf(hierarchy.issuer, [name])
        pki.write_cert_dir(dh / "certs" / name, leaf, hierarchy)
    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        settings = _settings(fake)

        def run_once() -> None:
            with open_client(settings) as client:
                result = reconcile.reconcile(client, settings, dh / "domains.txt", dh / "certs")
                appliance.finish_run(client, settings, result.changed)

        initial = _measure(fake, run_once)
        noop = _measure(fake, run_once)
    noop.update({"certificates": count, "target": RECONCILE_TARGET,
                 "within_target": noop["requests"] <= RECONCILE_TARGET})
    initial.pop("sequence")
    return {"initial_reconcile_50": initial, "noop_reconcile_50": noop}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        base = Path(tmp)
        results = deploy_scenarios(base / "deploy")
        results.update(noop_reconcile(base / "reconcile"))
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
