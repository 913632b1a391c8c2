"""load_settings: sources and their precedence, validation messages, the legacy file, secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ns_letsencrypt.config import Settings, load_settings, redact
from ns_letsencrypt.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
# Distinctive, so that a leak into any message or log record can be searched for.
PASSWORD = "Cfg-pw-9q#Xz$v!"
PIN = "ab" * 32
BASE = {
    "NS_URL": "https://10.0.0.5",
    "NS_USER": "nsle",
    "NS_PASSWORD": PASSWORD,
    "NS_VSERVER": "web",
}

LEGACY = f"""\
nitroNSIP = "192.168.2.54"
nitroUser = "nsle"
nitroPass = "{PASSWORD}"
passplain = "..."
connectiontype = "https"
nspairname = "le-"
nscert = "le-cert"
nskey = "le-privkey"
nschainname = "le-chain"
nschain = "le-chain.pem"
nscertpath = "/nsconfig/ssl/"
nsrespact = "le-responder-act"
nsresppol = "le-responder-pol"
polpristart = 20
nsvip = "csw-http"
viptype = "csw"
"""

EQUIVALENT_ENV = f"""\
NS_URL=https://192.168.2.54
NS_USER=nsle
NS_PASSWORD='{PASSWORD}'
NS_CERTKEY_PREFIX=le-
NS_CERT_PATH=/nsconfig/ssl
NS_PRIORITY_START=20
NS_VSERVER=csw-http
NS_VSERVER_TYPE=cs
"""


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Any:
    """caplog at INFO, even if cli.main already stopped our logger from propagating."""
    monkeypatch.setattr(logging.getLogger("ns_letsencrypt"), "propagate", True)
    caplog.set_level(logging.INFO)
    return caplog


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(tmp_path: Path, drop: tuple[str, ...] = (), **env: str) -> Settings:
    """Settings from BASE plus ``env`` as the environment; no files unless the test wrote them."""
    environ = {key: value for key, value in {**BASE, **env}.items() if key not in drop}
    return load_settings(environ=environ, install_dir=tmp_path)


def problems_of(tmp_path: Path, drop: tuple[str, ...] = (), **env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, drop, **env)
    assert PASSWORD not in str(info.value)
    return info.value.problems


def only_problem(tmp_path: Path, **env: str) -> str:
    problems = problems_of(tmp_path, **env)
    assert len(problems) == 1, problems
    return problems[0]


# -- defaults and plain values ----------------------------------------------------------


def test_minimal_environment_gives_defaults_and_records_sources(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert (settings.url, settings.username, settings.password) == (
        "https://10.0.0.5", "nsle", PASSWORD)
    assert settings == Settings(url="https://10.0.0.5", username="nsle", password=PASSWORD,
                                vserver="web")
    assert settings.sources["url"] == "env NS_URL"
    assert settings.sources["password"] == "env NS_PASSWORD"
    assert settings.sources["timeout_read"] == "default"


def test_every_option_is_parsed_and_normalised(tmp_path: Path) -> None:
    bundle = write(tmp_path / "ca.pem", "not checked here\n")
    settings = load(
        tmp_path, NS_AUTH="HEADER", NS_CA_BUNDLE=str(bundle), NS_TIMEOUT="3, 30",
        NS_RETRIES="0", NS_VSERVER_TYPE="CSW", NS_CERT_PATH="/nsconfig/ssl/le/",
        NS_CERTKEY_PREFIX="acme_", NS_CHALLENGE_PREFIX="acme-ch.", NS_PRIORITY_START="2147483000",
        NS_PREFLIGHT="On", NS_PREFLIGHT_ADDRESS="[::1]:8080", NS_SAVE_CONFIG="never",
        NS_ALLOW_KEY_OVER_HTTP="True", NS_CERTKEY_MAX_LEN="127",
        NS_CERTKEY_NAMES="WWW.Example.com=le-server-www, *.shop.example.org=le-shop,",
    )
    assert settings.auth == "header"
    assert settings.ca_bundle == str(bundle)
    assert settings.timeout == (3.0, 30.0)
    assert settings.retries == 0
    assert settings.vserver_type == "cs"
    assert settings.cert_path == "/nsconfig/ssl/le"
    assert (settings.certkey_prefix, settings.challenge_prefix) == ("acme_", "acme-ch.")
    assert settings.priority_start == 2147483000
    assert (settings.preflight, settings.preflight_address) == ("on", "[::1]:8080")
    assert settings.save_config == "never"
    assert settings.allow_key_over_http is True
    assert settings.certkey_max_len == 127
    assert settings.certkey_names == {"www.example.com": "le-server-www",
                                      "*.shop.example.org": "le-shop"}
    assert settings.sources["timeout_connect"] == settings.sources["timeout_read"] == (
        "env NS_TIMEOUT")


@pytest.mark.parametrize(("given", "expected"), [
    ("https://10.0.0.5/", "https://10.0.0.5"),
    ("HTTPS://NS1.Example.com:8443", "https://ns1.example.com:8443"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("  https://adc.lan  ", "https://adc.lan"),
])
def test_url_is_normalised(tmp_path: Path, given: str, expected: str) -> None:
    assert load(tmp_path, NS_URL=given).url == expected


def test_single_timeout_number_sets_both(tmp_path: Path) -> None:
    assert load(tmp_path, NS_TIMEOUT="12.5").timeout == (12.5, 12.5)


def test_pin_is_normalised_to_lower_case_hex(tmp_path: Path) -> None:
    colons = ":".join(["AB"] * 32)
    assert load(tmp_path, NS_TLS_PIN=colons).tls_pin == PIN


def test_global_binding_needs_no_vserver(tmp_path: Path) -> None:
    settings = load(tmp_path, drop=("NS_VSERVER",), NS_VSERVER_TYPE="global")
    assert (settings.vserver, settings.vserver_type) == (None, "global")


def test_insecure_is_a_setting(tmp_path: Path) -> None:
    assert load(tmp_path, NS_TLS_VERIFY="Insecure").tls_insecure is True
    assert load(tmp_path, NS_TLS_VERIFY="yes").tls_insecure is False


@pytest.mark.parametrize(("given", "expected"), [
    ("yes", True), ("1", True), ("TRUE", True), ("no", False), ("0", False), ("False", False)])
def test_boolean_spellings(tmp_path: Path, given: str, expected: bool) -> None:
    assert load(tmp_path, NS_ALLOW_KEY_OVER_HTTP=given).allow_key_over_http is expected


def test_empty_value_means_not_set(tmp_path: Path) -> None:
    assert load(tmp_path, NS_CA_BUNDLE="", NS_TIMEOUT=" ").timeout == (5.0, 60.0)


# -- error messages ---------------------------------------------------------------------


def test_url_without_scheme_says_what_to_write(tmp_path: Path) -> None:
    assert only_problem(tmp_path, NS_URL="10.0.0.5") == (
        'NS_URL (from environment): needs a scheme: write "https://10.0.0.5" '
        '(or "http://10.0.0.5" for plain HTTP)')


@pytest.mark.parametrize(("given", "expected"), [
    ("ftp://10.0.0.5", "the scheme must be https:// or http://"),
    ("https://10.0.0.5/nitro/v1", "must be scheme, host and optional port only"),
    ("https://10.0.0.5?x=1", "must be scheme, host and optional port only"),
    ("https://10.0.0.5:99999", "the port must be a number from 1 to 65535"),
    ("https://10.0.0.5:0", "the port must be a number from 1 to 65535"),
    ("https://", "has no valid host name or IP address"),
    ("https://300.1.1.1", "has no valid host name or IP address"),
    ("https://bad_host-.example", "has no valid host name or IP address"),
    ("https://::1", "has no valid host name or IP address"),
])
def test_bad_url(tmp_path: Path, given: str, expected: str) -> None:
    problem = only_problem(tmp_path, NS_URL=given)
    assert problem.startswith("NS_URL (from environment): ")
    assert expected in problem


def test_url_with_credentials_is_refused_without_echo(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, NS_URL=f"https://nsle:{PASSWORD}@10.0.0.5")
    assert "must not contain a user name or password" in problem
    assert "nsle:" not in problem


@pytest.mark.parametrize("given", ["ab", "g" * 64, "ab" * 33, "sha256:" + PIN])
def test_bad_pin(tmp_path: Path, given: str) -> None:
    problem = only_problem(tmp_path, NS_TLS_PIN=given)
    assert problem.startswith("NS_TLS_PIN (from environment): must be a SHA-256 fingerprint: "
                              "64 hex digits, colons allowed, got ")


def test_pin_and_insecure_contradict(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, NS_TLS_PIN=PIN, NS_TLS_VERIFY="insecure")
    assert "NS_TLS_PIN (from environment) and NS_TLS_VERIFY (from environment)" in problem
    assert "remove one of them" in problem


def test_ca_bundle_and_insecure_contradict(tmp_path: Path) -> None:
    bundle = write(tmp_path / "ca.pem", "x")
    assert "NS_CA_BUNDLE (from environment) and NS_TLS_VERIFY" in only_problem(
        tmp_path, NS_CA_BUNDLE=str(bundle), NS_TLS_VERIFY="insecure")


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, NS_CA_BUNDLE=str(tmp_path / "missing.pem"))
    assert problem.startswith(f"NS_CA_BUNDLE (from environment): {tmp_path / 'missing.pem'} "
                              "does not exist")


@pytest.mark.parametrize(("key", "given", "expected"), [
    ("NS_AUTH", "basic", 'must be one of auto | session | header, got "basic"'),
    ("NS_TLS_VERIFY", "no", 'must be one of yes | insecure, got "no"'),
    ("NS_VSERVER_TYPE", "gslb", 'must be one of lb | cs | global, got "gslb"'),
    ("NS_PREFLIGHT", "maybe", 'must be one of on | warn | off, got "maybe"'),
    ("NS_SAVE_CONFIG", "sometimes", 'must be one of always | changed | never, got "sometimes"'),
    ("NS_ALLOW_KEY_OVER_HTTP", "perhaps", 'must be yes or no (true/false, 1/0), got "perhaps"'),
])
def test_bad_enum(tmp_path: Path, key: str, given: str, expected: str) -> None:
    assert only_problem(tmp_path, **{key: given}) == f"{key} (from environment): {expected}"


@pytest.mark.parametrize(("key", "given", "low", "high"), [
    ("NS_RETRIES", "11", 0, 10),
    ("NS_RETRIES", "-1", 0, 10),
    ("NS_RETRIES", "two", 0, 10),
    ("NS_RETRIES", "1.5", 0, 10),
    ("NS_PRIORITY_START", "0", 1, 2147483000),
    ("NS_PRIORITY_START", "2147483001", 1, 2147483000),
    ("NS_CERTKEY_MAX_LEN", "7", 8, 127),
    ("NS_CERTKEY_MAX_LEN", "128", 8, 127),
])
def test_bad_integer(tmp_path: Path, key: str, given: str, low: int, high: int) -> None:
    assert only_problem(tmp_path, **{key: given}) == (
        f'{key} (from environment): must be a whole number from {low} to {high}, got "{given}"')


@pytest.mark.parametrize(("given", "expected"), [
    ("fast", 'must be a number or "connect,read", got "fast"'),
    ("1,2,3", 'must be a number or "connect,read", got "1,2,3"'),
    ("nan", 'must be a number or "connect,read", got "nan"'),
    ("0", 'seconds must be greater than 0, got "0"'),
    ("5,-1", 'seconds must be greater than 0, got "5,-1"'),
])
def test_bad_timeout(tmp_path: Path, given: str, expected: str) -> None:
    assert only_problem(tmp_path, NS_TIMEOUT=given) == f"NS_TIMEOUT (from environment): {expected}"


def test_bad_value_in_env_file_names_the_file(tmp_path: Path) -> None:
    env_file = write(tmp_path / "ns.env", "NS_TIMEOUT=fast\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=str(env_file), environ=BASE, install_dir=tmp_path)
    assert info.value.problems == [
        f'NS_TIMEOUT (from .env {env_file}): must be a number or "connect,read", got "fast"']


def test_missing_required_settings_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"NS_VSERVER_TYPE": "global"}, install_dir=tmp_path)
    text = str(info.value)
    assert len(info.value.problems) == 3
    assert text.startswith("3 configuration problems: ")
    for needle in ("NS_URL is required", "NS_USER is required",
                   "NS_PASSWORD or NS_PASSWORD_FILE is required"):
        assert needle in text


def test_both_password_sources_in_one_place(tmp_path: Path) -> None:
    secret = write(tmp_path / "pw", PASSWORD + "\n")
    assert only_problem(tmp_path, NS_PASSWORD_FILE=str(secret)) == (
        "NS_PASSWORD and NS_PASSWORD_FILE (from environment) are both set; set exactly one")


def test_password_from_a_higher_source_wins_over_the_other_kind(tmp_path: Path) -> None:
    secret = write(tmp_path / "pw", "from-file\n")
    env_file = write(tmp_path / ".env", f"NS_PASSWORD_FILE={secret}\n")
    settings = load_settings(environ=BASE, env_file=str(env_file), install_dir=tmp_path)
    assert (settings.password, settings.sources["password"]) == (PASSWORD, "env NS_PASSWORD")


def test_password_file_first_line_stripped(tmp_path: Path) -> None:
    secret = write(tmp_path / "pw", f"  {PASSWORD}  \r\nsecond line ignored\n")
    settings = load(tmp_path, drop=("NS_PASSWORD",), NS_PASSWORD_FILE=str(secret))
    assert settings.password == PASSWORD
    assert settings.sources["password"] == "env NS_PASSWORD_FILE"


def test_password_file_relative_to_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc" / "pw", PASSWORD)
    env_file = write(tmp_path / "etc" / "ns.env", "NS_PASSWORD_FILE=pw\n")
    environ = {key: value for key, value in BASE.items() if key != "NS_PASSWORD"}
    settings = load_settings(environ=environ, env_file=str(env_file), install_dir=tmp_path)
    assert settings.password == PASSWORD


@pytest.mark.parametrize("name", ["missing", "adir"])
def test_unreadable_password_file_names_the_path(tmp_path: Path, name: str) -> None:
    (tmp_path / "adir").mkdir()
    path = tmp_path / name
    problem = only_problem(tmp_path, NS_PASSWORD="", NS_PASSWORD_FILE=str(path))
    assert problem.startswith(f"NS_PASSWORD_FILE (from environment): {path}: cannot read (")


def test_empty_password_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pw", "\n")
    assert only_problem(tmp_path, NS_PASSWORD="", NS_PASSWORD_FILE=str(path)) == (
        f"NS_PASSWORD_FILE (from environment): {path} is empty; its first line must be the "
        "password")


@pytest.mark.parametrize("vserver_type", ["lb", "cs", "csw"])
def test_vserver_type_needs_vserver(tmp_path: Path, vserver_type: str) -> None:
    problem = only_problem(tmp_path, NS_VSERVER="", NS_VSERVER_TYPE=vserver_type)
    assert problem.startswith("NS_VSERVER_TYPE (from environment) is ")
    assert "needs NS_VSERVER" in problem


def test_default_vserver_type_needs_vserver(tmp_path: Path) -> None:
    assert only_problem(tmp_path, NS_VSERVER="").startswith(
        "NS_VSERVER_TYPE (default) is lb, which needs NS_VSERVER")


@pytest.mark.parametrize(("key", "given", "expected"), [
    ("NS_CHALLENGE_PREFIX", "le acme-", "(no spaces)"),
    ("NS_CHALLENGE_PREFIX", "-le", 'start with a letter, digit or "_"'),
    ("NS_CHALLENGE_PREFIX", "le/acme", "then only letters, digits"),
    ("NS_CHALLENGE_PREFIX", "x" * 41, "must be at most 40 characters, got 41"),
    ("NS_CERTKEY_PREFIX", "le!", "(no spaces)"),
    ("NS_CERTKEY_PREFIX", "x" * 22, "leaves fewer than 10 characters"),
    ("NS_VSERVER", "web/80", "and spaces"),
    ("NS_CERT_PATH", "nsconfig/ssl", "must be an absolute path on the appliance"),
    ("NS_PREFLIGHT_ADDRESS", "example.com:http", "the port must be a number"),
    ("NS_PREFLIGHT_ADDRESS", "exa mple.com", "must be a host name or IP address"),
    ("NS_CERTKEY_NAMES", "www.example.com", 'entries must look like "www.example.com=le-www"'),
    ("NS_CERTKEY_NAMES", "www..example.com=le-www", "entries must look like"),
    ("NS_CERTKEY_NAMES", "a.example=le a", "certkey names must"),
    ("NS_CERTKEY_NAMES", "a.example=x,A.example=y", "a.example is listed twice"),
    ("NS_CERTKEY_NAMES", "a.example=" + "x" * 32, "longer than 31 characters"),
])
def test_bad_names(tmp_path: Path, key: str, given: str, expected: str) -> None:
    problem = only_problem(tmp_path, **{key: given})
    assert problem.startswith(f"{key} (from environment)")
    assert expected in problem


def test_vserver_names_may_contain_spaces(tmp_path: Path) -> None:
    assert load(tmp_path, NS_VSERVER="web 80").vserver == "web 80"


def test_longer_certkey_names_when_max_len_allows(tmp_path: Path) -> None:
    settings = load(tmp_path, NS_CERTKEY_MAX_LEN="63", NS_CERTKEY_NAMES="a.example=" + "x" * 40)
    assert settings.certkey_names == {"a.example": "x" * 40}


def test_several_errors_are_reported_at_once(tmp_path: Path) -> None:
    env_file = write(tmp_path / ".env", "NS_RETRIES=99\nNS_AUTH=kerberos\n")
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={"NS_URL": "10.0.0.5", "NS_TLS_PIN": "xyz", "NS_PASSWORD": PASSWORD},
            env_file=str(env_file), install_dir=tmp_path,
        )
    problems = info.value.problems
    assert len(problems) == 6, problems
    assert problems[0].startswith("NS_URL (from environment): needs a scheme")
    assert any(p.startswith(f"NS_RETRIES (from .env {env_file})") for p in problems)
    assert any(p.startswith(f"NS_AUTH (from .env {env_file})") for p in problems)
    assert any(p.startswith("NS_TLS_PIN (from environment)") for p in problems)
    assert "NS_USER is required: the NITRO user name" in problems
    assert any("needs NS_VSERVER" in p for p in problems)
    assert str(info.value).startswith("6 configuration problems: ")


def test_unknown_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"NS_NOPE \(from command line\): not a setting"):
        load_settings(environ=BASE, overrides={"NS_NOPE": "1"}, install_dir=tmp_path)


# -- sources and precedence -------------------------------------------------------------


def test_precedence_flag_env_dotenv_legacy_default(tmp_path: Path) -> None:
    legacy = write(tmp_path / "mynsconfig.py",
                   'nsvip = "legacy-vs"\npolpristart = 40\nnspairname = "old-"\n'
                   'nscertpath = "/legacy/ssl"\n')
    write(tmp_path / ".env", "NS_VSERVER=dotenv-vs\nNS_PRIORITY_START=30\n"
                             "NS_CERTKEY_PREFIX=dot-\n")
    environ = {**BASE, "NS_VSERVER": "env-vs", "NS_PRIORITY_START": "20"}
    settings = load_settings(environ=environ, overrides={"NS_VSERVER": "flag-vs"},
                             install_dir=tmp_path)
    assert settings.vserver == "flag-vs"
    assert settings.priority_start == 20
    assert settings.certkey_prefix == "dot-"
    assert settings.cert_path == "/legacy/ssl"
    assert settings.save_config == "changed"
    assert settings.sources["vserver"] == "flag"
    assert settings.sources["priority_start"] == "env NS_PRIORITY_START"
    assert settings.sources["certkey_prefix"] == f".env {tmp_path / '.env'}"
    assert settings.sources["cert_path"] == f"mynsconfig.py {legacy} (nscertpath)"
    assert settings.sources["save_config"] == "default"


def test_install_dir_defaults_to_ns_le_home(tmp_path: Path) -> None:
    write(tmp_path / ".env", "NS_RETRIES=7\n")
    settings = load_settings(environ={**BASE, "NS_LE_HOME": str(tmp_path)})
    assert settings.retries == 7


def test_explicit_env_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=str(missing), environ=BASE, install_dir=tmp_path)
    assert info.value.problems == [f".env {missing}: cannot read (No such file or directory)"]


def test_explicit_legacy_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "mynsconfig.py"
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(legacy_file=str(missing), environ=BASE, install_dir=tmp_path)


def test_env_file_key_without_value(tmp_path: Path) -> None:
    env_file = write(tmp_path / ".env", "NS_RETRIES\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=BASE, install_dir=tmp_path)
    assert info.value.problems == [
        f"NS_RETRIES (from .env {env_file}): has no value; write NS_RETRIES=value"]


def test_unknown_env_file_keys_are_warned_about(tmp_path: Path, logs: Any) -> None:
    write(tmp_path / ".env", "NS_RETRYS=3\nOTHER=1\n")
    load(tmp_path)
    assert "ignoring unknown settings NS_RETRYS, OTHER" in logs.text


def test_near_miss_in_environment_is_warned_about(tmp_path: Path, logs: Any) -> None:
    load(tmp_path, NS_PASSWROD="x", NS_SOMETHING_ELSE="y")
    assert "NS_PASSWROD is not a setting; did you mean NS_PASSWORD?" in logs.text
    assert "NS_SOMETHING_ELSE" not in logs.text


def test_env_file_values_are_not_interpolated(tmp_path: Path) -> None:
    write(tmp_path / ".env", "NS_PASSWORD=a${HOME}b\n")
    settings = load_settings(environ={**BASE, "NS_PASSWORD": ""}, install_dir=tmp_path)
    assert settings.password == "a${HOME}b"


# -- the legacy mynsconfig.py -----------------------------------------------------------


def test_legacy_file_equals_equivalent_env_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    legacy = write(tmp_path / "a" / "mynsconfig.py", LEGACY)
    env_file = write(tmp_path / "b" / ".env", EQUIVALENT_ENV)
    from_legacy = load_settings(legacy_file=str(legacy), environ={}, install_dir=tmp_path)
    from_env = load_settings(env_file=str(env_file), environ={}, install_dir=tmp_path)
    assert from_legacy == from_env
    assert from_legacy.vserver_type == "cs"
    assert from_legacy.sources["url"] == f"mynsconfig.py {legacy} (nitroNSIP)"
    assert from_legacy.sources["vserver_type"] == f"mynsconfig.py {legacy} (viptype)"


def test_legacy_notes_deprecation_superseded_and_unknown_names(tmp_path: Path, logs: Any) -> None:
    write(tmp_path / "mynsconfig.py", LEGACY)
    load_settings(environ={}, install_dir=tmp_path)
    deprecations = [r for r in logs.records if "is deprecated" in r.getMessage()]
    assert len(deprecations) == 1
    assert deprecations[0].levelno == logging.WARNING
    for rename in ("connectiontype + nitroNSIP -> NS_URL", "nitroUser -> NS_USER",
                   "nitroPass -> NS_PASSWORD", "nspairname -> NS_CERTKEY_PREFIX",
                   "nscertpath -> NS_CERT_PATH", "polpristart -> NS_PRIORITY_START",
                   "nsvip -> NS_VSERVER", "viptype -> NS_VSERVER_TYPE"):
        assert rename in deprecations[0].getMessage()
    superseded = [r for r in logs.records if "no longer used" in r.getMessage()]
    assert len(superseded) == 1
    assert superseded[0].levelno == logging.INFO
    assert "nscert, nskey, nschainname, nschain, nsrespact, nsresppol" in (
        superseded[0].getMessage())
    unknown = [r for r in logs.records if "unknown variables" in r.getMessage()]
    assert [r.levelno for r in unknown] == [logging.WARNING]
    assert "passplain" in unknown[0].getMessage()


def test_legacy_file_with_code_is_never_executed(tmp_path: Path) -> None:
    touched = tmp_path / "touched"
    opened = tmp_path / "opened"
    legacy = write(tmp_path / "mynsconfig.py", (
        'nitroUser = "nsle"\n'
        f'import os; os.system("touch {touched}")\n'
        f'open("{opened}", "w").write("x")\n'
        'nitroPass = os.environ["SECRET"]\n'
        'nitroNSIP = "10.0." + "0.5"\n'
        'def f():\n    pass\n'
    ))
    with pytest.raises(ConfigError) as info:
        load_settings(legacy_file=str(legacy), environ={}, install_dir=tmp_path)
    assert not touched.exists()
    assert not opened.exists()
    where = f"mynsconfig.py {legacy}"
    for expected in (f"{where} line 2: an import is not a plain assignment of a literal",
                     f"{where} line 2: a function call is not",
                     f"{where} line 3: a function call is not",
                     f"{where} line 4: an assignment of a computed value is not",
                     f"{where} line 5: an assignment of a computed value is not",
                     f"{where} line 6: a statement (FunctionDef) is not"):
        assert any(p.startswith(expected) for p in info.value.problems), expected


def test_legacy_syntax_error_names_the_line(tmp_path: Path) -> None:
    legacy = write(tmp_path / "mynsconfig.py", 'nitroUser = "nsle"\nnitroPass = "oops\n')
    with pytest.raises(ConfigError) as info:
        load_settings(environ=BASE, install_dir=tmp_path)
    assert info.value.problems[0].startswith(f"mynsconfig.py {legacy} line 2: not valid Python")
    assert "oops" not in str(info.value)


def test_legacy_values_must_be_strings(tmp_path: Path) -> None:
    legacy = write(tmp_path / "mynsconfig.py", 'nitroUser = 5\nnscert = 1.5\npolpristart = "15"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(environ=BASE, install_dir=tmp_path)
    assert info.value.problems == [
        f"nitroUser (from mynsconfig.py {legacy}): must be a quoted string, got a int",
        f"nscert (from mynsconfig.py {legacy}): must be a quoted string, got a float",
    ]


def test_legacy_bad_values_name_the_legacy_variable(tmp_path: Path) -> None:
    legacy = write(tmp_path / "mynsconfig.py", 'connectiontype = "ftp"\nviptype = "gslb"\n'
                                               "polpristart = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={k: v for k, v in BASE.items() if k != "NS_URL"},
                      install_dir=tmp_path)
    where = f"(from mynsconfig.py {legacy})"
    assert info.value.problems == [
        f'connectiontype {where}: must be "https" or "http", got "ftp"',
        f'viptype {where}: must be one of lb | cs | global, got "gslb"',
        f'polpristart {where}: must be a whole number from 1 to 2147483000, got "0"',
        "NS_URL is required: the appliance's management address, e.g. NS_URL=https://10.0.0.5",
    ]


def test_legacy_http_and_default_scheme(tmp_path: Path) -> None:
    write(tmp_path / "mynsconfig.py", 'nitroNSIP = "10.0.0.9"\nconnectiontype = "HTTP"\n')
    environ = {k: v for k, v in BASE.items() if k != "NS_URL"}
    assert load_settings(environ=environ, install_dir=tmp_path).url == "http://10.0.0.9"
    write(tmp_path / "mynsconfig.py", 'nitroNSIP = "10.0.0.9"\n')
    assert load_settings(environ=environ, install_dir=tmp_path).url == "https://10.0.0.9"


# -- file formats -----------------------------------------------------------------------


def test_crlf_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    legacy = tmp_path / "a" / "mynsconfig.py"
    legacy.write_bytes(LEGACY.replace("\n", "\r\n").encode())
    env_file = tmp_path / "crlf.env"
    env_file.write_bytes(EQUIVALENT_ENV.replace("\n", "\r\n").encode())
    from_legacy = load_settings(legacy_file=str(legacy), environ={}, install_dir=tmp_path)
    from_env = load_settings(env_file=str(env_file), environ={}, install_dir=tmp_path)
    assert from_legacy == from_env
    assert from_env.password == PASSWORD
    assert from_env.vserver_type == "cs"


@pytest.mark.parametrize("name", [".env", "mynsconfig.py", "pw"])
def test_non_utf8_file_is_a_clear_config_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"# ok\nNS_RETRIES=1\n# caf\xe9\n" if name != "pw" else b"p\xe4ss\n")
    environ = {**BASE, "NS_PASSWORD_FILE": str(path), "NS_PASSWORD": ""} if name == "pw" else BASE
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, install_dir=tmp_path)
    line = 1 if name == "pw" else 3
    assert info.value.problems == [
        f"{_label(name, path)}: not UTF-8 text (invalid byte on line {line}); save it as UTF-8"]


def _label(name: str, path: Path) -> str:
    if name == "pw":
        return f"NS_PASSWORD_FILE (from environment): {path}"
    return f"{name} {path}"


def test_empty_files_are_fine(tmp_path: Path) -> None:
    write(tmp_path / ".env", "")
    write(tmp_path / "mynsconfig.py", "")
    assert load(tmp_path).sources["url"] == "env NS_URL"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes("\ufeffNS_RETRIES=4\n".encode())
    assert load(tmp_path).retries == 4


# -- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".env", "mynsconfig.py", "pw"])
def test_password_file_readable_by_others_is_warned_about(
        tmp_path: Path, logs: Any, name: str) -> None:
    path = tmp_path / name
    text = {".env": f"NS_PASSWORD='{PASSWORD}'\n", "mynsconfig.py": f'nitroPass = "{PASSWORD}"\n',
            "pw": PASSWORD}[name]
    write(path, text, mode=0o640)
    environ = {k: v for k, v in BASE.items() if k != "NS_PASSWORD"}
    if name == "pw":
        environ["NS_PASSWORD_FILE"] = str(path)
    assert load_settings(environ=environ, install_dir=tmp_path).password == PASSWORD
    warnings = [r.getMessage() for r in logs.records if "chmod" in r.getMessage()]
    assert warnings == [f"{path} holds the NITRO password and is readable by group or others "
                        f"(mode 0640); run: chmod 600 {path}"]


def test_private_password_file_is_not_warned_about(tmp_path: Path, logs: Any) -> None:
    write(tmp_path / ".env", f"NS_PASSWORD={PASSWORD}\n", mode=0o600)
    write(tmp_path / "other.env", "NS_RETRIES=1\n", mode=0o644)
    load_settings(environ={k: v for k, v in BASE.items() if k != "NS_PASSWORD"},
                  install_dir=tmp_path)
    load_settings(environ=BASE, env_file=str(tmp_path / "other.env"), install_dir=tmp_path)
    assert "chmod" not in logs.text


@pytest.mark.parametrize("env", [
    {"NS_URL": f"https://u:{PASSWORD}@10.0.0.5"},
    {"NS_VSERVER_TYPE": PASSWORD},
    {"NS_TIMEOUT": PASSWORD, "NS_RETRIES": PASSWORD, "NS_TLS_PIN": PASSWORD},
    {"NS_USER": "", "NS_CERTKEY_NAMES": f"a.example={PASSWORD}"},
])
def test_password_never_in_errors_or_logs(tmp_path: Path, logs: Any, env: dict[str, str]) -> None:
    write(tmp_path / ".env", f"NS_PASSWORD={PASSWORD}\nNS_BOGUS={PASSWORD}\n", mode=0o644)
    write(tmp_path / "mynsconfig.py", f'nitroPass = "{PASSWORD}"\npassplain = "{PASSWORD}"\n',
          mode=0o644)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **env)
    assert PASSWORD not in str(info.value)
    assert all(PASSWORD not in problem for problem in info.value.problems)
    assert logs.records
    assert all(PASSWORD not in record.getMessage() for record in logs.records)


def test_redact_replaces_plain_and_escaped_password(tmp_path: Path) -> None:
    settings = load(tmp_path)
    text = f'login {PASSWORD} / {{"password": "{PASSWORD}"}} / Cfg-pw-9q%23Xz%24v%21'
    assert redact(text, settings) == 'login *** / {"password": "***"} / ***'


def test_settings_repr_hides_password(tmp_path: Path) -> None:
    assert PASSWORD not in repr(load(tmp_path))


# -- the shipped example files ----------------------------------------------------------


def test_env_example_loads(tmp_path: Path) -> None:
    settings = load_settings(env_file=str(REPO / ".env.example"),
                             environ={"NS_PASSWORD": PASSWORD}, install_dir=tmp_path)
    assert settings.url.startswith("https://")
    assert settings.username != "nsroot"


def test_env_example_documents_every_setting_with_its_default() -> None:
    from ns_letsencrypt.config import SETTING_NAMES

    text = (REPO / ".env.example").read_text(encoding="utf-8")
    for name in SETTING_NAMES:
        assert f"{name}=" in text, name
    assert text.count("# default: ") >= len(SETTING_NAMES) - 4  # URL, USER, PASSWORD(_FILE)


def test_legacy_example_loads_without_default_credentials(tmp_path: Path) -> None:
    example = REPO / "mynsconfig.py.example"
    settings = load_settings(legacy_file=str(example), environ={"NS_PASSWORD": PASSWORD},
                             install_dir=tmp_path)
    assert settings.username != "nsroot"
    assert "nsroot" not in example.read_text(encoding="utf-8").replace("not nsroot", "")
    assert settings.vserver


def test_unparsable_env_file_line_is_reported_without_its_text(tmp_path: Path) -> None:
    env_file = write(tmp_path / ".env", f"NS_RETRIES=1\nNS_PASSWORD {PASSWORD}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=BASE, install_dir=tmp_path)
    assert info.value.problems == [
        f".env {env_file} line 2: not a NAME=value line (quote values that contain spaces or #)"]


def test_password_from_file_never_in_errors(tmp_path: Path) -> None:
    secret = write(tmp_path / "pw", PASSWORD)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, NS_PASSWORD="", NS_PASSWORD_FILE=str(secret), NS_AUTH=PASSWORD)
    assert PASSWORD not in str(info.value)
    assert 'NS_AUTH (from environment): must be one of auto | session | header, got "***"' in str(
        info.value)
