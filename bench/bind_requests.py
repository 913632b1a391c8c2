"""NITRO requests of a scheduled day with and without ``NS_BIND``, counted by the fake NetScaler.

Each case runs the real ``ns-cronjob.sh`` twice (dehydrated + pebble + ``hooks/ns-hook.sh`` + the
closing ``ns-letsencrypt reconcile``, as cron runs it) against a fresh fake NetScaler:

- ``first_issuance``: one certificate is issued, deployed and (with ``NS_BIND``) bound;
- ``noop_day``: the next day, nothing is due: startup check, sweep, reconciliation, no write.

Cases: ``two_bindings`` (``NS_BIND`` lists two SSL vservers for the certificate: one with SNI
disabled that holds a hand-installed default certificate, one with SNI enabled) and
``no_bind`` (``NS_BIND`` empty: the budget of a no-op day without bindings is 8 requests).
Requests are reported in total, as writes, and those on SSL vservers and their bindings.

Run: ``python -m bench bind`` (or ``python -m bench.bind_requests``); prints JSON.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .common import REPO, require_stack_tools

NAME = "www.bind.test"
NOOP_BUDGET = 8
BIND_RESOURCES = ("sslvserver", "sslprofile", "sslvserver_sslcertkey_binding")


def _counts(requests: list[Any]) -> dict[str, Any]:
    writes = [r for r in requests if r.method != "GET" and r.resource not in ("login", "logout")]
    binding = [r for r in requests if r.resource in BIND_RESOURCES]
    return {
        "requests": len(requests),
        "writes": len(writes),
        "binding_reads": sum(1 for r in binding if r.method == "GET"),
        "binding_writes": sum(1 for r in binding if r.method != "GET"),
        "sequence": [f"{r.method} {r.resource}" + (f"?action={r.action}" if r.action else "")
                     for r in requests],
    }


def _hand_installed(fake: Any, vserver: str) -> None:
    """An admin's own certificate, bound as the vserver's default before our first run."""
    from tests import pki

    hierarchy = pki.make_hierarchy("ADM")
    leaf = pki.make_leaf(hierarchy.issuer, [NAME])
    with tempfile.TemporaryDirectory() as tmp:
        files = pki.write_cert_dir(Path(tmp), leaf, hierarchy)
        api = fake.api
        for kind in ("cert", "key"):
            body = {"systemfile": {"filename": f"admin.{kind}", "filelocation": "/nsconfig/ssl",
                                   "fileencoding": "BASE64",
                                   "filecontent": base64.b64encode(
                                       files[kind].read_bytes()).decode()}}
            _nitro(api, "POST", "systemfile", body)
    _nitro(api, "POST", "sslcertkey",
           {"sslcertkey": {"certkey": "admin-www", "cert": "admin.cert", "key": "admin.key"}})
    fake.bind_certkey(vserver, "admin-www")
    fake.requests.clear()  # the set-up is not part of the figures


def _nitro(api: Any, method: str, resource: str, body: dict[str, Any]) -> None:
    from tests.stack import PASSWORD, USER

    headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD,
               "Content-Type": "application/json"}
    reply = api.handle(method, f"/nitro/v1/config/{resource}", headers,
                       json.dumps(body).encode())
    if reply.status >= 300:
        raise RuntimeError(f"set-up {method} {resource} failed: {reply.body[:200]!r}")


def _home(work: Path, pebble: Any, fake: Any, bind: str) -> dict[str, str]:
    """NS_LE_HOME with config.sh and domains.txt; the environment of ns-cronjob.sh."""
    from tests.stack import DEHYDRATED, _base_env, hook_env, write_config

    home = work / "home"
    account = pebble.new_account(work / "account")
    config = write_config(home, pebble, REPO / "hooks" / "ns-hook.sh", account)
    config.rename(home / "config.sh")
    (home / "domains.txt").write_text(f"{NAME}\n")
    env = {**_base_env(), **hook_env(work, fake), "NS_LE_HOME": str(home),
           "TMPDIR": str(work), "DEHYDRATED": shutil.which(DEHYDRATED) or DEHYDRATED}
    if bind:
        env["NS_BIND"] = bind
    return env


def _day(fake: Any, env: dict[str, str]) -> dict[str, Any]:
    before = len(fake.requests)
    done = subprocess.run([str(REPO / "ns-cronjob.sh")], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ns-cronjob.sh failed ({done.returncode}): {done.stderr[-2000:]}")
    return _counts(fake.requests[before:])


def case(work: Path, pebble: Any, bind: bool) -> dict[str, Any]:
    from tests.fakens import FakeNetScaler
    from tests.stack import PASSWORD, USER

    with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=pebble.http_port) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        entries = ""
        if bind:
            fake.add_sslvserver("vs-www")  # SNI disabled, holds the admin's certificate
            fake.add_sslvserver("cs-main", sni=True)
            _hand_installed(fake, "vs-www")
            entries = f"{NAME}=vs-www,cs-main"
        env = _home(work, pebble, fake, entries)
        first = _day(fake, env)
        noop = _day(fake, env)
        if bind:
            first["bound"] = {vs: fake.ssl_bindings(vs) for vs in ("vs-www", "cs-main")}
    noop["budget_without_bind"] = NOOP_BUDGET
    return {"first_issuance": first, "noop_day": noop}


def run() -> dict[str, Any]:
    from tests.stack import Pebble, free_port

    require_stack_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-bind-"))
    pebble = Pebble(work / "pebble", free_port())
    (work / "pebble").mkdir()
    try:
        pebble.start()
        results = {"two_bindings": case(work / "bind", pebble, bind=True),
                   "no_bind": case(work / "plain", pebble, bind=False)}
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
