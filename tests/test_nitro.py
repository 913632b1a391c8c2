"""NitroClient against the fake NetScaler over real HTTP and HTTPS sockets on 127.0.0.1.

Covers authentication (session and header), session expiry, transport failures and retries,
the kept-alive connection (closed by the appliance while idle), TLS verification (default,
CA bundle, pin, insecure, REQUESTS_CA_BUNDLE), unreadable answers, bulk operations, and that
the password never leaks into exceptions or logs.
"""

from __future__ import annotations

import http.server
import logging
import socket
import ssl
import threading
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest

from ns_letsencrypt import httpconn
from ns_letsencrypt.errors import (
    NitroApiError,
    NitroAuthError,
    NitroConnectionError,
    NitroNotFound,
    NitroPermissionError,
)
from ns_letsencrypt.nitro import NitroClient, fetch_server_fingerprint
from tests.canned import CannedNitro
from tests.conftest import PASSWORD, USER, closed_port
from tests.fakens.server import make_management_cert, server_context


def client_for(fake: Any, **kw: Any) -> NitroClient:
    """A client for the fake over HTTPS, pinned unless the test says otherwise."""
    options: dict[str, Any] = {"pin": fake.cert_sha256, "timeout": (5.0, 10.0)}
    options.update(kw)
    url = options.pop("url", fake.url)
    password = options.pop("password", PASSWORD)
    return NitroClient(url, USER, password, **options)


def count(fake: Any, method: str, resource: str, action: Optional[str] = None) -> int:
    """How many requests of this kind reached the fake."""
    return sum(
        1 for r in fake.requests
        if r.method == method and r.resource == resource and r.action == action
    )


def open_sessions(fake: Any) -> int:
    with fake.state.lock:
        return len(fake.state.sessions)


def action_obj(name: str) -> dict[str, str]:
    return {"name": name, "type": "respondwith", "target": '"HTTP/1.1 200 OK\\r\\n\\r\\nx"'}


# -- authentication -----------------------------------------------------------------------


def test_session_login_runs_requests_and_logout_closes_the_session(fake: Any) -> None:
    with client_for(fake) as client:
        assert open_sessions(fake) == 1
        version = client.get("nsversion")
    assert "NS" in version[0]["version"]
    assert open_sessions(fake) == 0
    assert count(fake, "POST", "login") == 1
    assert count(fake, "POST", "logout") == 1
    assert [r.user for r in fake.requests if r.resource == "nsversion"] == [USER]


def test_logout_happens_when_the_body_of_the_with_block_raises(fake: Any) -> None:
    with pytest.raises(NitroNotFound), client_for(fake) as client:
        client.get("lbvserver", "no-such-vserver")
    assert open_sessions(fake) == 0


def test_header_auth_needs_no_login_and_leaves_no_session(fake: Any) -> None:
    with client_for(fake, auth="header") as client:
        assert client.get("nsversion")
    assert count(fake, "POST", "login") == 0
    assert open_sessions(fake) == 0
    assert [r.user for r in fake.requests] == [USER]


def test_header_auth_with_a_wrong_password_is_an_auth_error(fake: Any) -> None:
    with pytest.raises(NitroAuthError) as info, \
            client_for(fake, auth="header", password="wrong") as client:
        client.get("nsversion")
    assert info.value.errorcode == 354


def test_auto_auth_authenticates_each_request_without_a_session(fake: Any) -> None:
    with client_for(fake, auth="auto") as client:
        assert client.get("nsversion")
        client.add("responderaction", action_obj("le-acme-auto"))
    assert count(fake, "POST", "login") == 0 and count(fake, "POST", "logout") == 0
    assert open_sessions(fake) == 0
    assert fake.objects("responderaction", "le-acme-auto")


def test_auto_auth_falls_back_to_a_session_when_header_auth_is_disabled(fake: Any) -> None:
    fake.state.header_auth = False  # the appliance answers 401 / 1244
    with client_for(fake, auth="auto") as client:
        assert client.get("nsversion")
        assert client.get("hanode")
    assert count(fake, "POST", "login") == 1 and count(fake, "POST", "logout") == 1
    assert open_sessions(fake) == 0
    assert [r.status for r in fake.requests if r.resource == "nsversion"] == [401, 200]


def test_auto_auth_with_a_wrong_password_does_not_retry_as_a_session(fake: Any) -> None:
    with pytest.raises(NitroAuthError) as info, \
            client_for(fake, auth="auto", password="wrong") as client:
        client.get("nsversion")
    assert info.value.errorcode == 354
    assert count(fake, "POST", "login") == 0


def test_plain_http_works(fake: Any) -> None:
    with client_for(fake, url=fake.http_url, pin=None) as client:
        assert client.is_plain_http
        assert client.get("hanode")


def test_client_can_log_in_again_after_logout(fake: Any) -> None:
    client = client_for(fake)
    for _ in range(2):
        with client:
            assert client.get("nsversion")
    assert count(fake, "POST", "login") == 2
    assert open_sessions(fake) == 0


def test_only_our_session_token_is_sent_never_the_appliance_s_own_cookies() -> None:
    gui_cookies = ("SESSID=gui-state; path=/", "NSC_TMAS=gui-sso; path=/")
    with CannedNitro({"nsversion": {"nsversion": {"version": "x"}}}, cookies=gui_cookies) as ns:
        client = NitroClient(ns.url, USER, PASSWORD)
        for _ in range(2):
            with client:
                client.get("nsversion")
    # The token travels in our own Cookie header; the appliance's Set-Cookie is not kept,
    # so a stale session or GUI cookie can never ride along with a later request.
    sent = [r.headers.get("Cookie") for r in ns.received if r.resource != "login"]
    assert sent == ["NITRO_AUTH_TOKEN=token-1; sessionid=token-1"] * 2 + [
        "NITRO_AUTH_TOKEN=token-2; sessionid=token-2"] * 2  # nsversion and logout each


def test_session_token_is_taken_from_the_cookie_when_the_body_has_none() -> None:
    with CannedNitro({"nsversion": {"nsversion": {"version": "x"}}}, token_in_body=False) as ns, \
            NitroClient(ns.url, USER, PASSWORD) as client:
        client.get("nsversion")
    assert [r.headers.get("Cookie") for r in ns.received if r.resource == "nsversion"] == [
        "NITRO_AUTH_TOKEN=token-1; sessionid=token-1"]


def test_bad_password_is_an_auth_error_with_a_hint(fake: Any) -> None:
    with pytest.raises(NitroAuthError) as info, client_for(fake, password="wrong-password"):
        pass
    assert info.value.errorcode == 354
    assert info.value.hint and "NS_PASSWORD" in info.value.hint
    assert open_sessions(fake) == 0


def test_expired_session_is_renewed_once_and_the_call_succeeds(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="GET", resource="nsversion", kind="expire")
        assert client.get("nsversion")
    assert count(fake, "POST", "login") == 2
    assert open_sessions(fake) == 0


def test_session_lost_again_right_after_relogin_is_an_auth_error(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="GET", resource="nsversion", kind="expire", times=2)
        with pytest.raises(NitroAuthError) as info:
            client.get("nsversion")
    assert info.value.errorcode == 444
    assert count(fake, "POST", "login") == 2


def test_command_policy_denial_is_a_permission_error(fake: Any) -> None:
    fake.add_user("reader", "reader-pw", policies=[("ALLOW", r"^show .*")])
    with NitroClient(fake.url, "reader", "reader-pw", pin=fake.cert_sha256) as client:
        assert client.get("nsversion")
        with pytest.raises(NitroPermissionError) as info:
            client.action("nsconfig", "save", {})
    assert info.value.errorcode == 2138
    assert info.value.command and "save ns config" in info.value.command.lower()


# -- transport failures and retries -------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_closed_port_is_connection_refused(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{closed_port()}"
    with pytest.raises(NitroConnectionError) as info, \
            NitroClient(url, USER, PASSWORD, retries=0, pin="ab" * 32):
        pass
    assert info.value.reason == "connection refused"
    assert info.value.hint == "check NS_URL (scheme, address and port)"


def test_read_timeout_is_a_connection_error(fake: Any) -> None:
    with client_for(fake, timeout=(5.0, 0.3)) as client:
        fake.inject(method="POST", resource="nsconfig", action="save", kind="timeout", delay=1.5)
        with pytest.raises(NitroConnectionError) as info:
            client.action("nsconfig", "save", {})
    assert info.value.reason == "no answer within the read timeout"
    assert info.value.hint and "NS_TIMEOUT" in info.value.hint
    assert count(fake, "POST", "nsconfig", "save") == 1  # a POST is never repeated


def test_a_server_that_never_completes_the_handshake_is_a_connect_timeout() -> None:
    with socket.socket() as silent:  # the kernel accepts the TCP connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(NitroConnectionError) as info, \
                NitroClient(url, USER, PASSWORD, pin="ab" * 32, timeout=(0.3, 5.0), retries=0):
            pass
    assert info.value.reason == "connection timed out"
    assert info.value.hint and "NSIP" in info.value.hint


# -- the kept-alive connection ------------------------------------------------------------


def test_requests_of_a_client_share_one_connection(fake: Any) -> None:
    with client_for(fake) as client:
        for _ in range(3):
            client.get("nsversion")
        connection = client._connection._conn
        assert connection is not None and connection.sock is not None
        local = connection.sock.getsockname()
        client.get("hanode")
        assert client._connection._conn is connection
        assert connection.sock is not None and connection.sock.getsockname() == local


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("tls", [True, False])
def test_a_post_after_the_appliance_closed_the_idle_connection_lands_exactly_once(
    fake: Any, how: str, tls: bool
) -> None:
    options = {} if tls else {"url": fake.http_url, "pin": None}
    with client_for(fake, retries=0, **options) as client:
        client.get("nsversion")
        fake.close_management_connections(how)  # the appliance's keep-alive idle timeout
        client.add("responderaction", action_obj("le-acme-stale"))
        client.get("nsversion")
    assert count(fake, "POST", "responderaction") == 1
    assert [o["name"] for o in fake.objects("responderaction")] == ["le-acme-stale"]


@pytest.mark.parametrize("tls", [True, False])
def test_a_request_after_the_appliance_closed_the_idle_connection_needs_no_retry(
    fake: Any, tls: bool
) -> None:
    """A GET is one write: on the closed connection it would go out and meet only EOF."""
    options = {} if tls else {"url": fake.http_url, "pin": None}
    with client_for(fake, retries=0, **options) as client:
        client.get("nsversion")
        fake.close_management_connections("close")
        assert client.get("hanode")
    assert count(fake, "GET", "hanode") == 1


@pytest.mark.parametrize("tls", [True, False])
def test_a_post_written_into_a_connection_reset_just_before_is_sent_again_once(
    fake: Any, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    """The race the idle check cannot see: the appliance resets the connection between the
    check and the write. Writing fails, so nothing reached the appliance: sent once more."""
    options = {} if tls else {"url": fake.http_url, "pin": None}
    with client_for(fake, retries=0, **options) as client:
        client.get("nsversion")
        fake.close_management_connections("reset")
        monkeypatch.setattr(httpconn, "_closed_by_peer", lambda sock: False)
        client.add("responderaction", action_obj("le-acme-race"))
    assert count(fake, "POST", "responderaction") == 1
    assert [o["name"] for o in fake.objects("responderaction")] == ["le-acme-race"]


def test_get_is_retried_after_a_dropped_connection(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="GET", resource="hanode", kind="reset")
        assert client.get("hanode")
    assert count(fake, "GET", "hanode") == 2


def test_delete_is_retried_after_a_dropped_connection(fake: Any) -> None:
    with client_for(fake) as client:
        client.add("responderaction", action_obj("le-acme-del"))
        fake.inject(method="DELETE", resource="responderaction", kind="reset")
        client.delete("responderaction", "le-acme-del")
    assert fake.objects("responderaction") == []
    assert count(fake, "DELETE", "responderaction") == 2


def test_post_is_not_retried_after_a_dropped_connection(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="POST", resource="responderaction", kind="reset")
        with pytest.raises(NitroConnectionError):
            client.add("responderaction", action_obj("le-acme-post"))
    assert count(fake, "POST", "responderaction") == 1


def test_retries_give_up_after_the_configured_number(fake: Any) -> None:
    with client_for(fake, retries=1) as client:
        fake.inject(method="GET", resource="hanode", kind="reset", times=5)
        with pytest.raises(NitroConnectionError):
            client.get("hanode")
    assert count(fake, "GET", "hanode") == 2


# -- TLS ----------------------------------------------------------------------------------


def test_default_verification_rejects_the_self_signed_certificate(fake: Any) -> None:
    with pytest.raises(NitroConnectionError) as info, client_for(fake, pin=None):
        pass
    assert "verification failed" in info.value.reason
    assert info.value.hint and "NS_TLS_PIN" in info.value.hint and "NS_CA_BUNDLE" in info.value.hint
    assert fake.requests == []  # the handshake failed before any request was read


def test_ca_bundle_verifies_the_certificate(fake: Any) -> None:
    with client_for(fake, pin=None, ca_bundle=str(fake.cert_file)) as client:
        assert client.get("nsversion")


def test_pin_accepts_the_matching_certificate(fake: Any) -> None:
    with client_for(fake) as client:
        assert client.get("nsversion")


def test_wrong_pin_names_both_fingerprints(fake: Any) -> None:
    wrong = "ab" * 32
    with pytest.raises(NitroConnectionError) as info, client_for(fake, pin=wrong):
        pass
    text = str(info.value)
    assert wrong in text and fake.cert_sha256 in text
    assert info.value.hint and "NS_TLS_PIN" in info.value.hint
    assert fake.requests == []


def test_a_pin_mismatch_sends_not_a_single_byte(tmp_path: Path) -> None:
    cert, key, fingerprint = make_management_cert(tmp_path)
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        conn, _ = listener.accept()
        with server_context(cert, key).wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(5)
            try:
                while chunk := tls.recv(4096):
                    received.append(chunk)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    with listener, pytest.raises(NitroConnectionError) as info, \
            NitroClient(url, USER, PASSWORD, pin="ab" * 32, auth="header") as client:
        client.get("nsversion")
    thread.join(10)
    assert fingerprint in str(info.value)
    assert received == []  # neither the request nor the credentials in its headers


def test_insecure_logs_one_warning_and_emits_no_python_warning(
    fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with client_for(fake, pin=None, insecure=True) as client:
            client.get("nsversion")
            client.get("hanode")
    assert not seen
    ours = [r for r in caplog.records if r.name.startswith("ns_letsencrypt")]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING
    assert "NS_TLS_PIN" in ours[0].getMessage()


def test_requests_ca_bundle_from_the_environment_is_honoured(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.cert_file))
    with client_for(fake, pin=None) as client:
        assert client.get("nsversion")


def test_fetch_server_fingerprint_reads_the_certificate_without_credentials(fake: Any) -> None:
    assert fetch_server_fingerprint(fake.url) == fake.cert_sha256
    assert fake.requests == []


def test_fetch_server_fingerprint_of_a_closed_port_is_a_connection_error() -> None:
    with pytest.raises(NitroConnectionError, match="connection refused"):
        fetch_server_fingerprint(f"https://127.0.0.1:{closed_port()}")


# -- answers that are not NITRO JSON ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("html", 502, "text/html"),
        ("empty", 503, "empty body"),
        ("empty", 200, "empty"),
        ("badjson", 200, "not NITRO JSON"),
    ],
)
def test_unreadable_answers_are_api_errors(
    fake: Any, kind: str, status: int, expected: str
) -> None:
    with client_for(fake) as client:
        fake.inject(method="GET", resource="nsversion", kind=kind, status=status)
        with pytest.raises(NitroApiError) as info:
            client.get("nsversion")
    assert not isinstance(info.value, ValueError)  # never a bare JSONDecodeError
    assert expected in str(info.value)
    assert info.value.resource == "nsversion"


class _RedirectToHttps(http.server.BaseHTTPRequestHandler):
    """What an appliance with "secure access only" does with plain-HTTP management calls."""

    def do_POST(self) -> None:
        self.send_response(302)
        self.send_header("Location", "https://127.0.0.1/nitro/v1/config/login")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_redirect_is_an_api_error_naming_the_target() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RedirectToHttps)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(NitroApiError) as info, NitroClient(url, USER, PASSWORD):
            pass
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.http_status == 302
    assert "redirects to https://127.0.0.1/" in str(info.value)


def test_error_body_with_http_200_is_an_api_error(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="POST", resource="nsconfig", action="save", kind="error200",
                    errorcode=1097, message="Invalid argument value")
        with pytest.raises(NitroApiError) as info:
            client.action("nsconfig", "save", {})
    assert info.value.errorcode == 1097
    assert info.value.http_status == 200


def test_nitro_error_carries_status_code_and_message(fake: Any) -> None:
    with client_for(fake) as client:
        fake.inject(method="POST", resource="nsconfig", action="save", kind="error",
                    status=599, errorcode=1538,
                    message="Certificate and private key do not match")
        with pytest.raises(NitroApiError) as info:
            client.action("nsconfig", "save", {})
    assert (info.value.http_status, info.value.errorcode) == (599, 1538)
    assert "do not match" in str(info.value)


# -- bulk operations ----------------------------------------------------------------------


def test_bulk_add_creates_every_object_in_one_request(fake: Any) -> None:
    with client_for(fake) as client:
        answer = client.add("responderaction", [action_obj("le-acme-a"), action_obj("le-acme-b")])
    assert int(answer.get("errorcode", 0)) == 0
    assert sorted(o["name"] for o in fake.objects("responderaction")) == ["le-acme-a", "le-acme-b"]
    assert count(fake, "POST", "responderaction") == 1


def test_remove_many_uses_one_bulk_request_when_supported(fake: Any) -> None:
    names = ["le-acme-1", "le-acme-2", "le-acme-3"]
    with client_for(fake) as client:
        client.add("responderaction", [action_obj(n) for n in names])
        client.remove_many("responderaction", [{"name": n} for n in names])
    assert fake.objects("responderaction") == []
    assert count(fake, "POST", "responderaction", "rm") == 1
    assert count(fake, "DELETE", "responderaction") == 0


def test_remove_many_falls_back_to_one_delete_each(fake: Any) -> None:
    names = ["le-acme-1", "le-acme-2", "le-acme-3"]
    with fake.state.lock:
        fake.state.bulk_remove = False
    with client_for(fake) as client:
        client.add("responderaction", [action_obj(n) for n in names])
        client.remove_many("responderaction", [{"name": n} for n in names])
        # the client remembers: a second batch goes straight to DELETE
        client.add("responderaction", [action_obj("le-acme-4"), action_obj("le-acme-5")])
        client.remove_many("responderaction", [{"name": "le-acme-4"}, {"name": "le-acme-5"}])
    assert fake.objects("responderaction") == []
    assert count(fake, "POST", "responderaction", "rm") == 1
    assert count(fake, "DELETE", "responderaction") == 5


@pytest.mark.parametrize(("status", "errorcode"), [(599, 258), (409, 273), (599, 2138)])
def test_remove_many_falls_back_when_the_bulk_form_fails_otherwise(
    fake: Any, status: int, errorcode: int
) -> None:
    """An appliance may answer the undocumented bulk form with any error: DELETE decides."""
    names = ["le-acme-1", "le-acme-2"]
    with client_for(fake) as client:
        client.add("responderaction", [action_obj(n) for n in names])
        fake.inject(method="POST", resource="responderaction", action="rm", status=status,
                    errorcode=errorcode, message="refused")
        client.remove_many("responderaction", [{"name": n} for n in names])
    assert fake.objects("responderaction") == []
    assert count(fake, "DELETE", "responderaction") == 2


def test_remove_many_treats_missing_objects_as_removed(fake: Any) -> None:
    with fake.state.lock:
        fake.state.bulk_remove = False
    with client_for(fake) as client:
        client.add("responderaction", action_obj("le-acme-here"))
        client.remove_many("responderaction", [{"name": "le-acme-here"}, {"name": "le-acme-gone"}])
    assert fake.objects("responderaction") == []


# -- secrets ------------------------------------------------------------------------------


def test_password_appears_in_no_exception_and_no_log_record(
    fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for options in ({}, {"auth": "header"}):
        with client_for(fake, **options) as client:
            fake.inject(method="GET", resource="nsversion", kind="expire")
            client.get("nsversion")
            fake.inject(method="GET", resource="hanode", kind="html")
            with pytest.raises(NitroApiError) as api_error:
                client.get("hanode")
            texts.append(str(api_error.value))
    fake.add_user("other", PASSWORD + "x")
    for auth in ("session", "header"):
        with pytest.raises(NitroAuthError) as auth_error, \
                NitroClient(fake.url, "other", PASSWORD, auth=auth, pin=fake.cert_sha256) as c:
            c.get("nsversion")
        texts.append(str(auth_error.value))
    with pytest.raises(NitroConnectionError) as conn_error, \
            NitroClient(f"http://127.0.0.1:{closed_port()}", USER, PASSWORD):
        pass
    texts.append(str(conn_error.value))
    records = [record.getMessage() for record in caplog.records]
    assert records  # DEBUG logging was on, so the requests were logged
    for text in [*texts, *records, caplog.text]:
        assert PASSWORD not in text


def test_a_password_http_cannot_carry_is_a_clear_error_without_the_password(fake: Any) -> None:
    secret = "line\nbreak-" + PASSWORD
    with pytest.raises(NitroConnectionError) as info, \
            client_for(fake, auth="header", password=secret) as client:
        client.get("nsversion")
    assert "NS_PASSWORD" in (info.value.hint or "")
    assert PASSWORD not in str(info.value) and fake.requests == []


def test_a_pin_does_not_apply_to_plain_http(fake: Any) -> None:
    with client_for(fake, url=fake.http_url, pin="ab" * 32) as client:
        assert client.get("nsversion")
