"""NITRO requests of a certbot issuance next to a dehydrated one (1 and 5 names).

``issuance``: one real issuance per case against pebble and one fake NetScaler, counting every
request the fake received during the run: dehydrated (``hooks/ns-hook.sh``; HOOK_CHAIN=yes
and no) and certbot (``certbot certonly --manual`` with ``ns-letsencrypt certbot auth|cleanup|
deploy``). Every case uses names of its own, so each deploys a new certkey.

``certbot_calls``: the certbot hooks in-process, called as certbot's manual plugin calls them
(one auth call per challenge counting down CERTBOT_REMAINING_CHALLENGES, then one cleanup call
per challenge), with the requests of each call; the dehydrated hook's per-call figures are
``python -m bench challenge`` (4 per deploy_challenge, 3 per clean_challenge with NS_AUTH=auto).

Run: ``python -m bench certbot``; prints JSON.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .common import require_stack_tools, run_counted

COUNTS = (1, 5)
THUMBPRINT = "KxPl8CqV3nJx0aQ4o2bS8mE1gD9yT6uW5rZ7hL0klY4"


def _dehydrated(work: Path, pebble: Any, fake: Any, names: list[str],
                hook_chain: str) -> dict[str, Any]:
    from tests.stack import DEHYDRATED, HOOK, _base_env, hook_env, write_config

    account = pebble.new_account(work / "account")
    config = write_config(work / "dehydrated", pebble, HOOK, account, hook_chain)
    env = {**_base_env(), **hook_env(work, fake), "TMPDIR": str(work)}
    argv = [DEHYDRATED, "-c", "-f", str(config), *(a for n in names for a in ("-d", n))]
    return _count(fake, lambda: subprocess.run(argv, capture_output=True, text=True, env=env,
                                               timeout=600))


def _certbot(work: Path, pebble: Any, fake: Any, names: list[str]) -> dict[str, Any]:
    from tests.certbot_stack import Certbot

    return _count(fake, lambda: Certbot(work, pebble, fake).issue(*names, check=False))


def _count(fake: Any, run: Any) -> dict[str, Any]:
    log, seconds = run_counted(fake, "issuance", run)
    return {"nitro_requests": len(log),
            "writes": sum(1 for r in log if r.method != "GET"),
            "wall_s": round(seconds, 2)}


def issuance() -> dict[str, Any]:
    """Every case against one pebble and one fake NetScaler."""
    from tests.fakens import FakeNetScaler
    from tests.stack import PASSWORD, USER, Pebble, free_port

    require_stack_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-certbot-"))
    port = free_port()
    (work / "pebble").mkdir()
    pebble = Pebble(work / "pebble", port)
    result: dict[str, Any] = {}
    try:
        pebble.start()
        with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=port) as fake:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            for count in COUNTS:
                case: dict[str, Any] = {}
                for client in ("dehydrated_chain_yes", "dehydrated_chain_no", "certbot"):
                    names = [f"{client.replace('_', '-')}-{count}-{i}.bench.test"
                             for i in range(count)]
                    run_dir = work / f"{client}-{count}"
                    run_dir.mkdir()
                    if client == "certbot":
                        case[client] = _certbot(run_dir, pebble, fake, names)
                    else:
                        case[client] = _dehydrated(run_dir, pebble, fake, names,
                                                   "yes" if client.endswith("yes") else "no")
                result[f"{count}_names"] = case
    finally:
        pebble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def certbot_calls() -> dict[str, Any]:
    """Requests of each certbot hook call, in-process (NS_AUTH=auto), for 1 and 5 names."""
    from ns_letsencrypt import certbot
    from ns_letsencrypt.config import Settings
    from tests.fakens import FakeNetScaler
    from tests.stack import PASSWORD, USER

    work = Path(tempfile.mkdtemp(prefix="bench-certbot-calls-"))
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(work)  # the hooks' spool
    result: dict[str, Any] = {}
    try:
        with FakeNetScaler(users={USER: PASSWORD}) as fake:
            fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
            settings = Settings(url=fake.url, username=USER, password=PASSWORD,
                                tls_pin=fake.cert_sha256, vserver="web", vserver_type="lb",
                                preflight="warn",
                                preflight_address=f"127.0.0.1:{fake.dataplane_port}")
            for count in COUNTS:
                names = [f"call{count}-{i}.bench.test" for i in range(count)]
                envs = [_env(names, i) for i in range(count)]
                auth = [_requests(fake, lambda e=e: certbot.auth(e, lambda: settings))
                        for e in envs]
                cleanup = [_requests(fake, lambda e=e, o=o: certbot.cleanup(
                    {**e, "CERTBOT_AUTH_OUTPUT": o}, lambda: settings))[0]
                    for e, (_, o) in zip(envs, auth)]
                result[f"{count}_names"] = {"auth_requests_per_call": [n for n, _ in auth],
                                            "cleanup_requests_per_call": cleanup}
            result["objects_left"] = len(fake.objects("responderpolicy"))
    finally:
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(work, ignore_errors=True)
    return result


def _env(names: list[str], index: int) -> dict[str, str]:
    token = f"bench{index:04d}".ljust(43, "x")
    return {"CERTBOT_DOMAIN": names[index], "CERTBOT_VALIDATION": f"{token}.{THUMBPRINT}",
            "CERTBOT_TOKEN": token, "CERTBOT_ALL_DOMAINS": ",".join(names),
            "CERTBOT_REMAINING_CHALLENGES": str(len(names) - index - 1)}


def _requests(fake: Any, call: Any) -> tuple[int, str]:
    """(requests, stdout) of one hook call: the auth hook's stdout is certbot's AUTH_OUTPUT."""
    before = len(fake.requests)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call()
    return len(fake.requests) - before, out.getvalue().strip()


def run() -> dict[str, Any]:
    return {"certbot_calls": certbot_calls(), "issuance": issuance()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
