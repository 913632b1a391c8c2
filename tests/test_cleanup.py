"""`ns-letsencrypt cleanup` on the fake NetScaler: dry run vs --yes, staging, prefixes, lock."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt import challenge, cli
from ns_letsencrypt.challenge import Challenge
from ns_letsencrypt.nitro import NitroClient
from tests.conftest import PASSWORD, fake_settings
from tests.pki import Hierarchy, make_ca, make_hierarchy, write_cert_dir
from tests.test_status import add_ca, add_leaf, leaf_cert, upload

TOKEN_OURS = "A" * 43
TOKEN_FRESH = "B" * 43
TOKEN_STALE = "C" * 43


@pytest.fixture
def home(fake_env: Path) -> Path:
    return fake_env


@pytest.fixture
def client(fake: Any) -> Any:
    from tests.conftest import USER

    with NitroClient(fake.url, USER, PASSWORD, pin=fake.cert_sha256) as nitro:
        yield nitro


def challenge_for(token: str) -> Challenge:
    return Challenge("www.example.test", token, token + ".thumbprint")


def populate(fake: Any, client: NitroClient) -> Hierarchy:
    """A realistic mess: a live certificate, leftovers of several kinds, and foreign objects."""
    settings = fake_settings(fake)
    challenge.deploy(client, settings, [challenge_for(TOKEN_OURS)])
    challenge.deploy(client, settings, [challenge_for(TOKEN_FRESH)], owner="otherhost0000")
    challenge.deploy(client, settings, [challenge_for(TOKEN_STALE)], owner="otherhost0000",
                     now=time.time() - 3 * 86400)
    client.add("responderaction", {"name": "le-acme-handmade", "type": "respondwith",
                                   "target": '"hello"'})
    client.add("responderaction", {"name": "admin-act", "type": "respondwith",
                                   "target": '"admin"'})

    live = make_hierarchy("L")
    add_ca(client, "le-int-live", live.issuer)
    add_leaf(client, "le-www", leaf_cert(live.issuer, ["www.example.test"], 80), "le-int-live")
    fake.add_sslvserver("vs-ssl")
    fake.bind_certkey("vs-ssl", "le-www")

    old = make_hierarchy("O", length=2)  # an old chain nothing uses any more
    add_ca(client, "le-int-old2", old.intermediates[1])
    add_ca(client, "le-int-old1", old.intermediates[0], link="le-int-old2")
    add_ca(client, "other-ca", make_hierarchy("X").issuer)  # not ours: stays
    upload(client, "le-www-0ld.crt", b"superseded")
    upload(client, "le-www-0ld.key", b"superseded")
    upload(client, "other.crt", b"not ours")
    return live


def run_cleanup(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["cleanup", *args])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, out


def certkey_names(fake: Any) -> set[str]:
    return {ck["certkey"] for ck in fake.certkeys()}


def responder_names(fake: Any) -> set[str]:
    return ({o["name"] for o in fake.objects("responderpolicy")}
            | {o["name"] for o in fake.objects("responderaction")})


def test_dry_run_lists_exactly_what_would_go_and_changes_nothing(
        fake: Any, client: Any, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(fake, client)
    names_before, files_before = certkey_names(fake), set(fake.files())
    responders_before = responder_names(fake)
    writes_before = len(fake.writes())

    code, out = run_cleanup(capsys, "--json")

    plan = json.loads(out)
    ours = challenge.object_names(fake_settings(fake), TOKEN_OURS)
    stale = challenge.object_names(fake_settings(fake), TOKEN_STALE)
    assert code == 0 and plan["done"] is False
    assert plan["policies"] == sorted([ours[1], stale[1]])
    assert plan["actions"] == sorted([ours[0], stale[0]])
    assert plan["certkeys"] == ["le-int-old1", "le-int-old2"]
    assert plan["unlink"] == ["le-int-old1"]
    assert plan["files"] == ["le-int-old1.crt", "le-int-old2.crt", "le-www-0ld.crt",
                             "le-www-0ld.key"]
    assert len(fake.writes()) == writes_before
    assert (certkey_names(fake), set(fake.files())) == (names_before, files_before)
    assert responder_names(fake) == responders_before

    code, out = run_cleanup(capsys)
    assert "would remove certkey le-int-old1" in out
    assert "would remove file le-www-0ld.key" in out
    assert out.rstrip().endswith("run again with --yes to remove the above")


def test_yes_removes_the_plan_and_nothing_else(
        fake: Any, client: Any, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(fake, client)
    fresh = challenge.object_names(fake_settings(fake), TOKEN_FRESH)
    ours = challenge.object_names(fake_settings(fake), TOKEN_OURS)

    code, out = run_cleanup(capsys, "--yes")

    assert code == 0, out
    assert "removed certkey le-int-old2" in out
    assert certkey_names(fake) >= {"le-www", "le-int-live", "other-ca"}
    assert not certkey_names(fake) & {"le-int-old1", "le-int-old2"}
    files = set(fake.files())
    assert {"other.crt", "le-int-live.crt", "le-www.crt", "le-www.key"} <= files
    assert not files & {"le-www-0ld.crt", "le-www-0ld.key", "le-int-old1.crt"}
    responders = responder_names(fake)
    assert set(fresh) <= responders  # another installation's, still fresh
    assert {"le-acme-handmade", "admin-act"} <= responders
    assert not set(ours) & responders
    assert any(r.resource == "nsconfig" and r.action == "save" for r in fake.writes())

    code, out = run_cleanup(capsys)
    assert (code, out.strip()) == (0, "nothing to clean up")


def test_staging_certificates_go_with_their_chain_unless_bound(
        fake: Any, client: Any, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_ca("(STAGING) Pretend Pear X1")
    staging = Hierarchy(root, [make_ca("(STAGING) Counterfeit Cabbage R11", root)])
    add_ca(client, "le-stg-int", staging.issuer)
    unbound = leaf_cert(staging.issuer, ["test.example.test"], 80)
    add_leaf(client, "le-test", unbound, "le-stg-int")
    add_leaf(client, "le-shop", leaf_cert(staging.issuer, ["shop.example.test"], 80),
             "le-stg-int")
    fake.add_sslvserver("vs-shop")
    fake.bind_certkey("vs-shop", "le-shop")
    add_leaf(client, "le-prod", leaf_cert(make_hierarchy("P").issuer, ["p.example.test"], 80),
             None)
    write_cert_dir(home / "certs" / "test.example.test", unbound, staging)

    code, out = run_cleanup(capsys)
    assert code == 0
    assert "would remove certkey le-test" not in out  # not without --staging

    code, out = run_cleanup(capsys, "--staging", "--yes")

    assert code == 0, out
    assert "removed certkey le-test" in out
    assert "kept le-shop: staging certificate bound to vs-shop" in out
    assert f"rm -r {home / 'certs' / 'test.example.test'}" in out
    names = certkey_names(fake)
    assert "le-test" not in names
    assert {"le-shop", "le-stg-int", "le-prod"} <= names  # le-stg-int still serves le-shop
    assert "le-test.crt" not in fake.files() and "le-shop.crt" in fake.files()


def test_yes_refuses_while_a_run_holds_the_lock(
        fake: Any, client: Any, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(fake, client)
    with open(home / ".ns-letsencrypt.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code = cli.main(["cleanup", "--yes"])
    _, err = capsys.readouterr()

    assert code == 2
    assert "a renewal run holds" in err
    assert "le-int-old1" in certkey_names(fake)
