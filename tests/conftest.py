"""Shared fixtures: a clean environment, a running fake NetScaler, Settings pointing at it.

Tests never reach beyond 127.0.0.0/8: every server here listens on 127.0.0.1 with a random
port, and proxy variables are removed so that requests cannot route loopback traffic away.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ns_letsencrypt.config import Settings

# End-to-end fixtures (pebble, dehydrated, a fake on the validation port): see tests/stack.py.
pytest_plugins = ["tests.stack"]

# A distinctive password, so a leak into any output can be searched for.
PASSWORD = "Pw-s3cr3t-7f0d!x"
USER = "nsroot"

_CLEARED_PREFIXES = ("NS_",)
_CLEARED_NAMES = (
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove NS_* settings, proxies and CA-bundle overrides the developer's shell may carry."""
    cleared = {name.lower() for name in _CLEARED_NAMES}
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name.lower() in cleared:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def restore_package_logger() -> Iterator[None]:
    """Undo cli.main's logging set-up (handler on the then-current stderr, no propagation),
    so that a later test's caplog sees records and nothing writes to a closed capture."""
    logger = logging.getLogger("ns_letsencrypt")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def fake() -> Iterator[Any]:
    """A started FakeNetScaler: user nsroot (PASSWORD), an HTTP lb vserver ``web`` on port 80."""
    from tests.fakens import FakeNetScaler

    with FakeNetScaler(users={USER: PASSWORD}) as server:
        server.add_lbvserver("web", servicetype="HTTP", port=80, state="UP")
        yield server


def fake_settings(fake: Any, **overrides: Any) -> Settings:
    """Settings for the fake over HTTPS, pinned to its certificate, challenge vserver ``web``."""
    values: dict[str, Any] = {
        "url": fake.url, "username": USER, "password": PASSWORD,
        "tls_pin": fake.cert_sha256, "vserver": "web", "vserver_type": "lb",
        "timeout_connect": 5.0, "timeout_read": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


def closed_port() -> int:
    """A loopback TCP port nobody listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def fake_env(tmp_path: Any, fake: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """CLI settings for ``fake`` in the environment, NS_LE_HOME = an empty tmp dir (returned)."""
    for name, value in {"NS_LE_HOME": str(tmp_path), "NS_URL": fake.url, "NS_USER": USER,
                        "NS_PASSWORD": PASSWORD, "NS_TLS_PIN": fake.cert_sha256,
                        "NS_VSERVER": "web"}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After the results: the fault matrix's table (cases and survivors), if it ran."""
    import sys

    matrix = sys.modules.get("tests.test_fault_matrix")
    if matrix is not None:
        matrix.write_summary(terminalreporter)
