"""NS_TARGETS end to end: real dehydrated + pebble + hooks/ns-hook.sh + two independent fakes.

pebble validates through the second target's data plane only, so a challenge that is not on
every target fails; what each fake holds afterwards is the outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography import x509

from tests.conftest import PASSWORD, USER
from tests.fakens import FakeNetScaler
from tests.stack import Pebble, Stack

NAME = "www.example.test"
CERTKEY = "le-www.example.test"


@pytest.fixture
def dc1() -> Iterator[FakeNetScaler]:
    with FakeNetScaler(users={USER: PASSWORD}) as fake:
        fake.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        yield fake


@pytest.fixture
def dc2(dataplane_port: int) -> Iterator[FakeNetScaler]:
    """The target pebble's validation requests reach."""
    with FakeNetScaler(users={USER: PASSWORD}, dataplane_port=dataplane_port) as fake:
        fake.add_lbvserver("web2", servicetype="HTTP", port=80, state="UP")
        yield fake


@pytest.fixture
def acme(tmp_path: Path, pebble: Pebble, dc1: FakeNetScaler, dc2: FakeNetScaler) -> Stack:
    stack = Stack(tmp_path, pebble, dc1)
    for key in ("NS_URL", "NS_TLS_PIN", "NS_PREFLIGHT_ADDRESS"):
        stack.env.pop(key)
    stack.env.update({
        "NS_TARGETS": "dc1 dc2",
        "NS_DC1_URL": dc1.url, "NS_DC1_TLS_PIN": dc1.cert_sha256,
        "NS_DC1_PREFLIGHT_ADDRESS": f"127.0.0.1:{dc1.dataplane_port}",
        "NS_DC2_URL": dc2.url, "NS_DC2_TLS_PIN": dc2.cert_sha256, "NS_DC2_VSERVER": "web2",
        "NS_DC2_PREFLIGHT_ADDRESS": f"127.0.0.1:{dc2.dataplane_port}",
        "NS_PREFLIGHT": "on",
    })
    return stack


def pem_serial(path: Path) -> int:
    return int(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def held_serial(fake: FakeNetScaler) -> Optional[int]:
    found = [c for c in fake.certkeys() if c["certkey"] == CERTKEY]
    return int(str(found[0]["serial"]).replace(":", ""), 16) if found else None


def challenge_answers(fake: FakeNetScaler) -> list[Any]:
    return [r for r in fake.dataplane_requests
            if "/.well-known/acme-challenge/" in r.path and r.status == 200]


def test_challenges_on_every_target_and_the_certificate_on_both(
        acme: Stack, dc1: FakeNetScaler, dc2: FakeNetScaler) -> None:
    result = acme.run_dehydrated("-c", "-d", NAME)

    issued = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(dc1) == held_serial(dc2) == issued
    assert challenge_answers(dc1)  # our pre-flight found it there
    assert len(challenge_answers(dc2)) > 1  # pre-flight and the CA's validation
    assert "[dc1]" in result.stderr and "[dc2]" in result.stderr
    for fake in (dc1, dc2):  # cleaned everywhere
        assert not [p for p in fake.objects("responderpolicy") if p["name"].startswith("le-")]


def test_a_refusing_target_fails_the_run_by_name_and_the_next_run_converges_it(
        acme: Stack, dc1: FakeNetScaler, dc2: FakeNetScaler) -> None:
    acme.run_dehydrated("-c", "-d", NAME)
    first = pem_serial(acme.certdir(NAME) / "cert.pem")
    dc1.inject("POST", "systemfile", None, kind="error", status=599, errorcode=1001,
               message="Resource busy", times=1000)

    result = acme.run_dehydrated("-c", "-x", "-d", NAME, check=False)  # forced renewal

    renewed = pem_serial(acme.certdir(NAME) / "cert.pem")
    assert renewed != first
    assert result.returncode != 0
    assert "deploy_cert failed on 1 of 2 targets: dc1 (step 'upload'): " in result.stderr
    assert "dc2 (step" not in result.stderr
    assert held_serial(dc2) == renewed and held_serial(dc1) == first  # old one keeps serving

    dc1.clear_faults()
    acme.run_dehydrated("-c", "-d", NAME)  # not due: no new issuance
    assert pem_serial(acme.certdir(NAME) / "cert.pem") == renewed
    assert held_serial(dc1) == held_serial(dc2) == renewed


def test_a_challenges_only_target_gets_no_certificate(
        acme: Stack, dc1: FakeNetScaler, dc2: FakeNetScaler) -> None:
    acme.env["NS_DC2_ROLE"] = "challenges"
    acme.run_dehydrated("-c", "-d", NAME)
    assert held_serial(dc1) == pem_serial(acme.certdir(NAME) / "cert.pem")
    assert held_serial(dc2) is None
    assert len(challenge_answers(dc2)) > 1
