"""NITRO requests per challenge hook call, counted from the fake NetScaler's request log.

For N = 1, 3, 20, 100 names: one ``deploy_challenge`` and one ``clean_challenge`` call with all
N triples (HOOK_CHAIN=yes), and N calls with one triple each (HOOK_CHAIN=no), for the default
NS_AUTH=auto (per-request authentication in challenge hooks), session (login/logout) and header
authentication. The hook handlers run in-process, exactly as
``ns-letsencrypt hook`` runs them (settings, login, work, pre-flight, logout); wall times
therefore exclude the ~0.1-0.3 s Python start of each real hook process. Target with
HOOK_CHAIN=yes: at most 5 requests per call, login and logout included, whatever N.
"""

from __future__ import annotations

import time
from typing import Any

from ns_letsencrypt.config import Settings
from ns_letsencrypt.hook import run_hook

COUNTS = (1, 3, 20, 100)
TARGET = 5
THUMBPRINT = "KxPl8CqV3nJx0aQ4o2bS8mE1gD9yT6uW5rZ7hL0klY4"
USER, PASSWORD = "nsroot", "bench-password-0"


def triples(count: int, salt: str) -> list[list[str]]:
    """``count`` distinct DOMAIN TOKEN KEY_AUTH triples."""
    found = []
    for i in range(count):
        token = f"{salt}{i:04d}".ljust(43, "x")
        found.append([f"name{i}.example.test", token, f"{token}.{THUMBPRINT}"])
    return found


def measure(fake: Any, settings: Settings, hook: str, args: list[str]) -> tuple[int, float]:
    """(NITRO requests, wall seconds) of one hook call."""
    before = len(fake.requests)
    started = time.perf_counter()
    status = run_hook(hook, args, lambda: settings)
    wall = time.perf_counter() - started
    if status:
        raise RuntimeError(f"{hook} exited {status}")
    return len(fake.requests) - before, wall


def chained(fake: Any, settings: Settings, count: int) -> dict[str, Any]:
    """HOOK_CHAIN=yes: one call each for all names."""
    args = [a for t in triples(count, "chain") for a in t]
    deploy, deploy_wall = measure(fake, settings, "deploy_challenge", args)
    clean, clean_wall = measure(fake, settings, "clean_challenge", args)
    return {"deploy_requests": deploy, "clean_requests": clean,
            "deploy_wall_s": round(deploy_wall, 4), "clean_wall_s": round(clean_wall, 4)}


def unchained(fake: Any, settings: Settings, count: int) -> dict[str, Any]:
    """HOOK_CHAIN=no: one call per name (dehydrated deploys all, validates, cleans all)."""
    calls = triples(count, "single")
    deploys = [measure(fake, settings, "deploy_challenge", t) for t in calls]
    cleans = [measure(fake, settings, "clean_challenge", t) for t in calls]
    return {
        "calls": count,
        "deploy_requests_per_call": sorted({n for n, _ in deploys}),
        "clean_requests_per_call": sorted({n for n, _ in cleans}),
        "total_requests": sum(n for n, _ in deploys + cleans),
        "total_wall_s": round(sum(w for _, w in deploys + cleans), 4),
    }


def one_auth_mode(auth: str) -> dict[str, Any]:
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        settings = Settings(url=fake.url, username=USER, password=PASSWORD, auth=auth,
                            tls_pin=fake.cert_sha256, vserver="web", vserver_type="lb",
                            preflight="warn",
                            preflight_address=f"127.0.0.1:{fake.dataplane_port}")
        result: dict[str, Any] = {}
        for count in COUNTS:
            result[str(count)] = {"hook_chain_yes": chained(fake, settings, count),
                                  "hook_chain_no": unchained(fake, settings, count)}
        leftovers = [o["name"] for o in fake.objects("responderpolicy")]
    result["objects_left"] = len(leftovers)
    chain_counts = [result[str(c)]["hook_chain_yes"] for c in COUNTS]
    result["max_requests_per_call_chain_yes"] = max(
        max(r["deploy_requests"], r["clean_requests"]) for r in chain_counts)
    result["target_met"] = result["max_requests_per_call_chain_yes"] <= TARGET
    return result


def run() -> dict[str, Any]:
    """Request counts and wall times for every authentication mode (auto is the default)."""
    return {"target_requests_per_call": TARGET, "counts": list(COUNTS),
            "auto_auth_default": one_auth_mode("auto"),
            "session_auth": one_auth_mode("session"), "header_auth": one_auth_mode("header")}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
