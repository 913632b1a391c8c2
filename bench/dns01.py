"""dns-01: deploy+clean cost for 1, 20 and 100 names, and a 20-name wildcard-plus-apex issuance.

Deploy+clean runs the hook's dns-01 operations in-process (``dns.flow.deploy`` then
``dns.flow.clean``: publish, wait until every authoritative server shows the values, remove)
against the fake NetScaler's ADNS (NITRO requests counted on the fake) and against a real BIND
(RFC 2136 + TSIG). The issuance is real dehydrated + pebble (validating against BIND or the
fake's ADNS) + ``hooks/ns-hook.sh`` with ``HOOK_CHAIN=yes``: one certificate for ten names and
their wildcards, the hook timed from outside as in ``e2e_issuance``. Target: the time inside
our hook is under 10 % of the wall time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO
from .e2e_issuance import TARGET_SHARE, hook_seconds, hook_wrapper

SIZES = (1, 20, 100)
VALUE = "v" * 43


def _records(count: int, zone: str) -> list[Any]:
    from ns_letsencrypt.dns.base import TxtRecord

    # half the names twice (a wildcard and its apex share one name), as in real orders
    return [TxtRecord(f"_acme-challenge.h{i // 2:03d}.{zone}", f"{VALUE[:-3]}{i:03d}")
            for i in range(count)]


def deploy_clean(settings: Any, count: int, zone: str, fake: Any = None) -> dict[str, Any]:
    """One deploy and one clean of ``count`` values; wall seconds and NITRO requests."""
    from ns_letsencrypt.dns import flow
    from ns_letsencrypt.dns.state import StateFile

    records = _records(count, zone)
    with tempfile.TemporaryDirectory(prefix="bench-dns-state-") as home:
        state = StateFile(Path(home))
        before = len(fake.requests) if fake is not None else 0
        started = time.perf_counter()
        flow.deploy(settings, records, state)
        deployed = time.perf_counter()
        problems = flow.clean(settings, records, state)
        ended = time.perf_counter()
    if problems:
        raise RuntimeError(f"clean failed: {problems}")
    figures: dict[str, Any] = {"values": count, "deploy_s": round(deployed - started, 3),
                               "clean_s": round(ended - deployed, 3),
                               "wall_s": round(ended - started, 3)}
    if fake is not None:
        requests = fake.requests[before:]
        figures["nitro_requests"] = len(requests)
        figures["nitro_requests_by_kind"] = sorted({f"{r.method} {r.resource}"
                                                    for r in requests})
    return figures


def adns_deploy_clean() -> list[dict[str, Any]]:
    from ns_letsencrypt.config import Settings
    from tests.conftest import PASSWORD, USER
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        fake.enable_adns(("bench.test",))
        settings = Settings(url=fake.url, username=USER, password=PASSWORD,
                            tls_pin=fake.cert_sha256, vserver="web", dns="adns", dns_wait=60.0)
        return [deploy_clean(settings, size, "bench.test", fake) for size in SIZES]


def rfc2136_deploy_clean(work: Path) -> list[dict[str, Any]]:
    from ns_letsencrypt.config import Settings
    from tests.dnsstack import Bind

    bind = Bind(work / "bind-dc", zone="bench.test").start()
    try:
        settings = Settings(url="https://127.0.0.1:1", username="u", password="p",
                            vserver="web", dns="rfc2136", dns_server=bind.address,
                            dns_tsig_key_file=str(bind.key_file),
                            dns_nameservers=(bind.address,), dns_wait=60.0)
        return [deploy_clean(settings, size, "bench.test") for size in SIZES]
    finally:
        bind.stop()


def issuance(work: Path, mode: str, hosts: int = 10) -> dict[str, Any]:
    """dehydrated -c for one certificate of ``hosts`` names plus their wildcards."""
    from tests.conftest import PASSWORD, USER
    from tests.dnsstack import Bind, DnsPebble
    from tests.fakens import FakeNetScaler
    from tests.stack import DEHYDRATED, _base_env, free_port, hook_env, write_config

    base = work / f"issue-{mode}"
    base.mkdir()
    bind = Bind(base / "bind", zone="bench.test").start() if mode == "rfc2136" else None
    names = [n for i in range(hosts) for n in (f"h{i:02d}.bench.test", f"*.h{i:02d}.bench.test")]
    try:
        with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=free_port()) as fake:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            dns_port = bind.port if bind is not None else fake.enable_adns(("bench.test",))
            pebble = DnsPebble(base / "pebble", fake.dataplane_port, dns_port)
            (base / "pebble").mkdir()
            pebble.start()
            try:
                env = {**_base_env(), **hook_env(base, fake), "TMPDIR": str(base),
                       "NS_DNS": mode, "NS_DNS_WAIT": "60"}
                if bind is not None:
                    env.update(NS_DNS_SERVER=bind.address, NS_DNS_NAMESERVERS=bind.address,
                               NS_DNS_TSIG_KEY_FILE=str(bind.key_file))
                wrapper, times = hook_wrapper(base)
                account = pebble.new_account(base / "account")
                config = write_config(base / "dehydrated", pebble, wrapper, account, "yes")
                (base / "dehydrated" / "domains.txt").write_text(" ".join(names) + " > bench\n")
                started = time.perf_counter()
                done = subprocess.run([DEHYDRATED, "-c", "-f", str(config)], cwd=REPO,
                                      capture_output=True, text=True, env=env, timeout=600)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(f"dehydrated failed: {done.stdout[-1500:]}"
                                       f"{done.stderr[-1500:]}")
                left = fake.txt_records() if bind is None else bind.all_txt()
            finally:
                pebble.stop()
    finally:
        if bind is not None:
            bind.stop()
    inside, calls, per_name = hook_seconds(times)
    return {"mode": mode, "names": len(names), "hook_chain": "yes", "wall_s": round(wall, 3),
            "hook_s": round(inside, 3), "hook_share": round(inside / wall, 4),
            "hook_calls": calls, "hook_s_by_name": per_name, "txt_left": len(left),
            "target_met": inside / wall < TARGET_SHARE}


def run() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-dns01-"))
    try:
        return {
            "deploy_clean_adns": adns_deploy_clean(),
            "deploy_clean_rfc2136": rfc2136_deploy_clean(work),
            "issuance_20_names": [issuance(work, "rfc2136"), issuance(work, "adns")],
            "target_hook_share": TARGET_SHARE,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
