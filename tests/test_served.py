"""NS_VERIFY_SERVED: after a deploy, a TLS handshake with the VIP checks what clients receive.

The VIP is the fake's SSL data plane (it serves the certkey bound to its SSL vserver, with the
intermediates its links reach); the trust store is the test hierarchy's root in a file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt.config import load_settings
from ns_letsencrypt.errors import ConfigError, DeployError
from tests.conftest import closed_port
from tests.test_deploy import Issuer, bind, certkey, run, serial_of, served


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


def roots_file(tmp_path: Path, issuer: Issuer, name: str = "roots.pem") -> str:
    path = tmp_path / name
    path.write_bytes(issuer.hierarchy.root.pem)
    return str(path)


def checking(fake: Any, tmp_path: Path, issuer: Issuer, mode: str = "on") -> dict[str, Any]:
    return {"verify_served": mode, "verify_address": f"127.0.0.1:{fake.tls_port}",
            "verify_ca_bundle": roots_file(tmp_path, issuer)}


def test_renewal_served_with_a_verifying_chain_passes(
        fake: Any, tmp_path: Path, issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    options = checking(fake, tmp_path, issuer)
    first = run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert first.action == "added"  # nothing bound yet: not checked
    bind(fake, "le-www.example.com")
    with caplog.at_level(logging.INFO, logger="ns_letsencrypt"):
        renewed = run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert renewed.action == "updated"
    assert served(fake, issuer.hierarchy.root, "www.example.com") == serial_of(issuer.last)
    assert "the VIP serves serial" in caplog.text


def test_vip_serving_another_certificate_fails_the_run_but_keeps_the_deploy(
        fake: Any, tmp_path: Path, issuer: Issuer) -> None:
    options = checking(fake, tmp_path, issuer)
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    run(fake, issuer.issue(["shop.example.com"]), "shop.example.com", **options)
    bind(fake, "le-shop.example.com")  # the VIP the check reaches serves shop, not www
    with pytest.raises(DeployError) as info:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert info.value.step == "served"
    assert f"not the new {issuer.last.cert.serial_number:X}" in str(info.value)
    assert "bind its certkey" in str(info.value)
    www = certkey(fake, "le-www.example.com")
    assert www is not None and www["serial"].lstrip("0") == f"{issuer.last.cert.serial_number:X}"


def test_warn_mode_only_logs(fake: Any, tmp_path: Path, issuer: Issuer,
                             caplog: pytest.LogCaptureFixture) -> None:
    options = checking(fake, tmp_path, issuer, mode="warn")
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    run(fake, issuer.issue(["shop.example.com"]), "shop.example.com", **options)
    bind(fake, "le-shop.example.com")
    with caplog.at_level(logging.WARNING, logger="ns_letsencrypt"):
        result = run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert result.action == "updated"
    assert "served certificate:" in caplog.text and "not the new" in caplog.text


def test_chain_that_does_not_verify_is_named(fake: Any, tmp_path: Path, issuer: Issuer) -> None:
    options = checking(fake, tmp_path, issuer)
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    bind(fake, "le-www.example.com")
    other = Issuer(tmp_path / "other", tag="B")
    options["verify_ca_bundle"] = roots_file(tmp_path, other, "other-roots.pem")
    with pytest.raises(DeployError) as info:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert "does not verify" in str(info.value)
    assert "linked to every intermediate" in str(info.value)


def test_unreachable_vip_is_reported(fake: Any, tmp_path: Path, issuer: Issuer) -> None:
    options = checking(fake, tmp_path, issuer)
    run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    bind(fake, "le-www.example.com")
    options["verify_address"] = f"127.0.0.1:{closed_port()}"
    with pytest.raises(DeployError) as info:
        run(fake, issuer.issue(["www.example.com"]), "www.example.com", **options)
    assert "no TLS answer" in str(info.value) and "NS_VERIFY_ADDRESS" in str(info.value)


def test_off_by_default_and_validated(tmp_path: Path) -> None:
    base = {"NS_URL": "https://127.0.0.1", "NS_USER": "u", "NS_PASSWORD": "p",
            "NS_VSERVER_TYPE": "global"}
    assert load_settings(environ=base, install_dir=tmp_path).verify_served == "off"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={**base, "NS_VERIFY_SERVED": "maybe",
                               "NS_VERIFY_CA_BUNDLE": str(tmp_path / "missing.pem"),
                               "NS_VERIFY_ADDRESS": "vip:99999"}, install_dir=tmp_path)
    text = str(info.value)
    assert "NS_VERIFY_SERVED" in text and "NS_VERIFY_CA_BUNDLE" in text
    assert "NS_VERIFY_ADDRESS" in text


def test_a_root_in_the_chain_sent_is_reported(tmp_path: Path, issuer: Issuer) -> None:
    """A server that sends leaf, intermediate and root (the fake never sends a root)."""
    import socket
    import ssl
    import threading

    from cryptography.hazmat.primitives import serialization

    from ns_letsencrypt import served
    from ns_letsencrypt.certs import parse_certificate
    from ns_letsencrypt.config import Settings
    from tests import pki

    leaf = pki.make_leaf(issuer.hierarchy.issuer, ["www.example.com"])
    (tmp_path / "full.pem").write_bytes(leaf.pem + issuer.hierarchy.chain_pem(with_root=True))
    (tmp_path / "key.pem").write_bytes(leaf.key_pem(serialization.PrivateFormat.PKCS8))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "full.pem", tmp_path / "key.pem")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer_once() -> None:
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                conn.close()

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        settings = Settings(url="https://127.0.0.1", username="u", password="p",
                            verify_served="on",
                            verify_address=f"127.0.0.1:{listener.getsockname()[1]}",
                            verify_ca_bundle=roots_file(tmp_path, issuer))
        problems = served.check(settings, parse_certificate(leaf.pem))
        thread.join(timeout=10)
    assert len(problems) == 1 and "sends the root CN=Test Root A" in problems[0]
