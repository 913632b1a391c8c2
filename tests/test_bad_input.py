"""Bad-input corpus: whatever an admin (or a broken disk) hands us, we say what is wrong.

Every case feeds one bad input through the real command line (``cli.main``) against a running
fake NetScaler: settings from the environment, ``.env``, ``mynsconfig.py`` or flags; hook
arguments; dehydrated's certificate files; ``domains.txt``; ``config.sh``. Each must end with a
clear message naming the problem, the exit status the README documents for it, no traceback,
and **no write request** on the appliance (``fake.writes() == []``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests import pki
from tests.test_fault_matrix import (
    PASSWORD,
    Result,
    Stage,
    admin_hierarchy,
    deploy_args,
    hierarchy,
    staged,
)

CONFIG, CHALLENGE = 2, 7  # README exit codes: usage/configuration, challenge not deployable
CHALLENGE_ARGS = ["hook", "deploy_challenge", "a.example.com", "tok-1", "tok-1.thumb"]


@dataclass(frozen=True)
class Case:
    """One bad input: ``make`` writes files / edits ``stage.env`` and returns the argv."""

    id: str
    make: Callable[[Stage], list[str]]
    status: int
    says: str  # lower-case text the message must contain


def run_any(stage: Stage, argv: list[str]) -> Result:
    """Like ``stage.run``, but argparse's own exit (usage errors) counts as a result too."""
    try:
        return stage.run(*argv)
    except SystemExit as exc:  # argparse prints usage and exits 2 before our code runs
        return Result(int(exc.code or 0), "", "")


# -- settings from the environment ---------------------------------------------------------


def env_case(case_id: str, says: str, **values: str) -> Case:
    """A deploy_challenge run with NS_* variables changed (an empty value removes one)."""

    def make(stage: Stage) -> list[str]:
        for key, value in values.items():
            if value:
                stage.env[key] = value
            else:
                stage.env.pop(key, None)
        return list(CHALLENGE_ARGS)

    return Case(case_id, make, CONFIG, says)


ENV_CASES = [
    env_case("env-url-missing", "ns_url is required", NS_URL=""),
    env_case("env-url-without-scheme", "needs a scheme", NS_URL="127.0.0.1:443"),
    env_case("env-url-ftp-scheme", "scheme must be https", NS_URL="ftp://127.0.0.1"),
    env_case("env-url-with-credentials", "must not contain a user name",
             NS_URL="https://nsroot:x@127.0.0.1"),
    env_case("env-url-without-host", "ns_url", NS_URL="https://:443"),
    env_case("env-user-missing", "ns_user is required", NS_USER=""),
    env_case("env-password-missing", "ns_password", NS_PASSWORD=""),
    env_case("env-timeout-not-a-number", "ns_timeout", NS_TIMEOUT="soon"),
    env_case("env-timeout-negative", "ns_timeout", NS_TIMEOUT="-1"),
    env_case("env-retries-not-a-number", "ns_retries", NS_RETRIES="two"),
    env_case("env-retries-too-many", "ns_retries", NS_RETRIES="99"),
    env_case("env-priority-zero", "ns_priority_start", NS_PRIORITY_START="0"),
    env_case("env-priority-float", "ns_priority_start", NS_PRIORITY_START="10.5"),
    env_case("env-vserver-type-unknown", "ns_vserver_type", NS_VSERVER_TYPE="gslb"),
    env_case("env-vserver-missing-for-lb", "ns_vserver", NS_VSERVER=""),
    env_case("env-preflight-unknown", "ns_preflight", NS_PREFLIGHT="sometimes"),
    env_case("env-save-config-unknown", "ns_save_config", NS_SAVE_CONFIG="weekly"),
    env_case("env-auth-unknown", "ns_auth", NS_AUTH="basic"),
    env_case("env-pin-malformed", "ns_tls_pin", NS_TLS_PIN="12:34:zz"),
    env_case("env-tls-verify-unknown", "ns_tls_verify", NS_TLS_VERIFY="maybe"),
    env_case("env-ca-bundle-missing", "ns_ca_bundle", NS_TLS_PIN="",
             NS_CA_BUNDLE="/nonexistent/ca.pem"),
    env_case("env-password-file-missing", "ns_password_file", NS_PASSWORD="",
             NS_PASSWORD_FILE="/nonexistent/password"),
    env_case("env-password-file-is-a-directory", "ns_password_file", NS_PASSWORD="",
             NS_PASSWORD_FILE="/"),
    env_case("env-allow-key-over-http-not-a-boolean", "ns_allow_key_over_http",
             NS_ALLOW_KEY_OVER_HTTP="perhaps"),
    env_case("env-certkey-max-len-too-long", "ns_certkey_max_len", NS_CERTKEY_MAX_LEN="500"),
    env_case("env-challenge-prefix-invalid", "ns_challenge_prefix",
             NS_CHALLENGE_PREFIX="le acme!"),
]


# -- .env and mynsconfig.py files ----------------------------------------------------------


def file_case(case_id: str, says: str, option: str, content: bytes, *, drop: tuple[str, ...] = (),
              status: int = CONFIG) -> Case:
    """``test`` with a settings file (``--env-file`` or ``--legacy-config``) holding ``content``."""

    def make(stage: Stage) -> list[str]:
        path = stage.tmp / "settings-file"
        path.write_bytes(content)
        for key in drop:
            stage.env.pop(key, None)
        return [option, str(path), "test"]

    return Case(case_id, make, status, says)


def missing_file_case(case_id: str, option: str, target: str) -> Case:
    def make(stage: Stage) -> list[str]:
        path = stage.tmp / "absent" if target == "missing" else stage.tmp
        return [option, str(path), "test"]

    return Case(case_id, make, CONFIG, "cannot read")


ENDPOINT = ("NS_URL", "NS_USER")  # dropped from the environment so the file must supply them
MARKER = "/tmp/ns-le-bad-input-code-ran"
FILE_CASES = [
    missing_file_case("dotenv-missing", "--env-file", "missing"),
    missing_file_case("dotenv-is-a-directory", "--env-file", "directory"),
    file_case("dotenv-empty", "ns_url is required", "--env-file", b"", drop=ENDPOINT),
    file_case("dotenv-crlf-with-bad-value", 'got "soon"', "--env-file",
              b"NS_URL=https://127.0.0.1\r\nNS_TIMEOUT=soon\r\n", drop=(*ENDPOINT, "NS_TIMEOUT")),
    file_case("dotenv-not-utf8", "not utf-8", "--env-file", b"NS_VSERVER=w\xe9b\xff\n"),
    file_case("dotenv-not-name-value", "not a name=value line", "--env-file",
              b"NS_URL https://127.0.0.1\n"),
    file_case("dotenv-wrong-type", "ns_retries", "--env-file", b"NS_RETRIES=[1, 2]\n",
              drop=("NS_RETRIES",)),
    missing_file_case("legacy-missing", "--legacy-config", "missing"),
    file_case("legacy-contains-code", "never run", "--legacy-config",
              f"import os\nos.system('touch {MARKER}')\nnitroNSIP = '127.0.0.1'\n".encode()),
    file_case("legacy-wrong-type", "polpristart", "--legacy-config",
              b"nitroNSIP = '127.0.0.1'\nnitroUser = 'nsroot'\npolpristart = 'abc'\n",
              drop=ENDPOINT),
    file_case("legacy-unknown-vserver-type", "viptype", "--legacy-config",
              b"nitroNSIP = '127.0.0.1'\nnitroUser = 'nsroot'\nviptype = 'gslb'\n",
              drop=(*ENDPOINT, "NS_VSERVER_TYPE")),
    file_case("legacy-syntax-error", "not valid python", "--legacy-config",
              b"nitroNSIP = '127.0.0.1\n"),
    file_case("legacy-empty", "ns_url is required", "--legacy-config", b"", drop=ENDPOINT),
    file_case("legacy-not-utf8", "utf-8", "--legacy-config", b"nitroUser = 'ns\xffroot'\n"),
]


# -- command-line arguments and hook arguments ---------------------------------------------


def argv_case(case_id: str, argv: list[str], status: int, says: str) -> Case:
    return Case(case_id, lambda stage: list(argv), status, says)


def challenge_case(case_id: str, domain: str, says: str, token: str = "tok-1") -> Case:
    return argv_case(case_id, ["hook", "deploy_challenge", domain, token, f"{token}.thumb"],
                     CHALLENGE, says)


ARGV_CASES = [
    argv_case("cli-unknown-command", ["frobnicate"], CONFIG, ""),
    argv_case("cli-unknown-vserver-type-flag", ["--vserver-type", "gslb", "test"], CONFIG, ""),
    argv_case("cli-url-flag-without-scheme", ["--url", "10.0.0.5", "test"], CONFIG,
              "needs a scheme"),
    argv_case("cli-challenge-without-arguments", ["challenge"], CONFIG, ""),
    argv_case("cli-reconcile-without-directory", ["reconcile"], CONFIG, "--basedir"),
    argv_case("hook-challenge-not-triples", ["hook", "deploy_challenge", "a.example.com", "t"],
              CHALLENGE, "triples"),
    challenge_case("hook-wildcard-with-http01", "*.example.com", "wildcard"),
    challenge_case("hook-invalid-domain", "exa mple.com", "not a valid dns name"),
    challenge_case("hook-domain-too-long", ("a" * 60 + ".") * 5 + "com", "longer than 253"),
    challenge_case("hook-label-too-long", "a" * 64 + ".example.com", "not a valid dns name"),
    challenge_case("hook-ip-address", "192.0.2.7", "ip address"),
    challenge_case("hook-token-not-base64url", "a.example.com", "token", token="to/ken"),
]


# -- certificate files for deploy_cert ------------------------------------------------------


def cert_case(case_id: str, says: str, spoil: Callable[[Stage, dict[str, Path]], None]) -> Case:
    """``hook deploy_cert`` with dehydrated's files spoiled in one way."""

    def make(stage: Stage) -> list[str]:
        files = stage.issue(case_id, ["www.example.com"])
        spoil(stage, files)
        return deploy_args(files)

    return Case(case_id, make, CONFIG, says)


def _garbage_chain(stage: Stage, files: dict[str, Path]) -> None:
    files["chain"].write_text("garbage\n-----BEGIN CERTIFICATE-----\nnot base64\n"
                              "-----END CERTIFICATE-----\n")


def _other_key(stage: Stage, files: dict[str, Path]) -> None:
    files["key"].write_bytes(stage.issue("other", ["www.example.com"])["key"].read_bytes())


def _encrypted_key(stage: Stage, files: dict[str, Path]) -> None:
    leaf = pki.make_leaf(stage.hierarchy.issuer, ["www.example.com"])
    files["cert"].write_bytes(leaf.pem)
    files["key"].write_bytes(leaf.key_pem(password=b"Pw-passphrase"))


def _wrong_chain(stage: Stage, files: dict[str, Path]) -> None:
    files["chain"].write_bytes(admin_hierarchy().chain_pem())


def _fullchain_as_cert(stage: Stage, files: dict[str, Path]) -> None:
    files["cert"].write_bytes(files["fullchain"].read_bytes())


def _key_is_directory(stage: Stage, files: dict[str, Path]) -> None:
    files["key"].unlink()
    files["key"].mkdir()


CERT_CASES = [
    cert_case("cert-chain-garbage", "not a clean pem", _garbage_chain),
    cert_case("cert-key-does-not-match", "is not the private key", _other_key),
    cert_case("cert-key-encrypted", "encrypted", _encrypted_key),
    cert_case("cert-empty-file", "found 0", lambda s, f: f["cert"].write_bytes(b"")),
    cert_case("cert-missing", "cannot read", lambda s, f: f["cert"].unlink()),
    cert_case("cert-not-utf8", "not a clean pem",
              lambda s, f: f["cert"].write_bytes(b"\xff\xfe\x00binary")),
    cert_case("cert-chain-of-another-ca", "did not issue", _wrong_chain),
    cert_case("cert-chain-empty", "holds no intermediate",
              lambda s, f: f["chain"].write_bytes(b"")),
    cert_case("cert-fullchain-as-cert", "exactly one certificate", _fullchain_as_cert),
    cert_case("cert-key-is-a-directory", "cannot read", _key_is_directory),
    cert_case("cert-key-is-a-certificate", "expected a private key",
              lambda s, f: f["key"].write_bytes(f["cert"].read_bytes())),
]


# -- domains.txt (reconcile) and config.sh (register) ---------------------------------------


def domains_case(case_id: str, content: bytes, says: str, status: int = CONFIG) -> Case:
    def make(stage: Stage) -> list[str]:
        base = stage.tmp / "dehydrated"
        (base / "certs").mkdir(parents=True, exist_ok=True)
        (base / "domains.txt").write_bytes(content)
        return ["reconcile", "--domains-txt", str(base / "domains.txt"),
                "--certs-dir", str(base / "certs")]

    return Case(case_id, make, status, says)


def config_sh_case(case_id: str, content: bytes | None, email: str, says: str) -> Case:
    def make(stage: Stage) -> list[str]:
        home = stage.tmp / "home"
        home.mkdir(exist_ok=True)
        if content is not None:
            (home / "config.sh").write_bytes(content)
        stage.env["NS_LE_HOME"] = str(home)
        stage.env["DEHYDRATED"] = "/bin/false"  # must never be reached
        return ["register", "--email", email]

    return Case(case_id, make, CONFIG, says)


EMAIL_AWARE = b'CONTACT_EMAIL="${NS_LE_CONTACT_EMAIL:-}"\n'
DEHYDRATED_CASES = [
    domains_case("domains-two-aliases", b"a.example.com >x >y\n", "at most one"),
    domains_case("domains-label-too-long", b"www." + b"a" * 64 + b".example.com\n",
                 "not a valid dns name"),
    domains_case("domains-invalid-name", b"exa_mple.com\n", "not a valid dns name"),
    domains_case("domains-name-too-long", ("a" * 60 + ".").encode() * 5 + b"com\n",
                 "longer than 253"),
    domains_case("domains-one-certificate-on-two-lines",
                 b"a.example.com b.example.com\na.example.com c.example.com\n", "both use"),
    domains_case("domains-not-utf8", b"a.ex\xffample.com\n", "utf-8"),
    domains_case("domains-crlf-and-invalid", b"a.example.com\r\n-bad-.example.com\r\n",
                 "line 2"),
    config_sh_case("config-sh-missing", None, "admin@example.com", "config.sh not found"),
    config_sh_case("config-sh-ignores-email", b"CA=letsencrypt-test\n", "admin@example.com",
                   "ns_le_contact_email"),
    config_sh_case("config-sh-bad-email", EMAIL_AWARE, "not-an-address", "not a valid e-mail"),
]

CASES = ENV_CASES + FILE_CASES + ARGV_CASES + CERT_CASES + DEHYDRATED_CASES


@pytest.fixture
def stage() -> Iterator[Stage]:
    with staged(hierarchy()) as ready:
        yield ready


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_before_any_write(stage: Stage, case: Case) -> None:
    result = run_any(stage, case.make(stage))
    text = result.out + result.err
    assert result.status == case.status, text
    assert "Traceback" not in text and PASSWORD not in text
    if case.says:
        lines = [line for line in text.splitlines() if case.says in line.lower()]
        assert lines, f"no line says {case.says!r}:\n{text}"
    assert stage.fake.writes() == []
    assert not Path(MARKER).exists(), "mynsconfig.py was executed"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


def test_empty_domains_txt_says_so(stage: Stage) -> None:
    """An empty domains.txt is no error (nothing to do), but the run says why it did nothing."""
    result = run_any(stage, domains_case("empty", b"", "").make(stage))
    assert result.status == 0, result.err
    assert "0 certificate" in result.err.lower() or "no certificate" in result.err.lower()
    assert stage.fake.writes() == []


def test_a_name_in_two_certificates_is_a_warning(stage: Stage) -> None:
    """Legal (an RSA and an ECDSA certificate under two aliases), but probably a slip."""
    case = domains_case("shared", b"a.example.com b.example.com\nc.example.com b.example.com\n",
                        "")
    result = run_any(stage, case.make(stage))
    assert result.status == 0, result.err
    assert any("WARNING" in line and "b.example.com" in line for line in result.err.splitlines())
    assert stage.fake.writes() == []


def test_crlf_domains_txt_is_read_like_lf(stage: Stage) -> None:
    """Windows line endings are tolerated: the names carry no stray carriage return."""
    case = domains_case("crlf", b"a.example.com\r\nb.example.com\r\n", "")
    result = run_any(stage, case.make(stage))
    assert result.status == 0, result.err
    assert "\r" not in result.err
    assert "a.example.com" in result.err and stage.fake.writes() == []
