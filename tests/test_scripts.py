"""ns-cronjob.sh, ns-forcerenew.sh and tools/common.sh.

With a stub dehydrated and a stub Python (both record their arguments): discovery order (bash
and Python agree), the missing-dehydrated message, the lock, argument plumbing, the final
``ns-letsencrypt reconcile``, exit codes, timestamps. End to end with pebble + real dehydrated +
the fake NetScaler (tests/stack.py): issue, renew nothing, force one certificate while the other
is not re-issued, a certificate the appliance lost and cannot take fails the run until it is
deployed again, register. Quiet runs (issue 14): what the cron mail of a quiet day, a renewal,
a cleanup and a failure holds, and the log file that keeps every run's transcript.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from ns_letsencrypt import register
from ns_letsencrypt.certs import read_certificate
from ns_letsencrypt.errors import ConfigError

pytest_plugins = ["tests.stack"]

REPO = Path(__file__).resolve().parent.parent
CRON = REPO / "ns-cronjob.sh"
FORCE = REPO / "ns-forcerenew.sh"
COMMON = REPO / "tools" / "common.sh"
RUNLOG = REPO / "tools" / "runlog.sh"
LIFECYCLE = REPO / "tools" / "lifecycle.sh"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ")
# What the scripts need from PATH, without dehydrated.
TOOLS = ("bash", "readlink", "dirname", "basename", "flock", "mkdir", "mktemp", "rm", "sed",
         "tr", "paste", "cat", "sleep", "touch", "cp", "env", "wc", "mv")


def stub(path: Path, body: str = "") -> Path:
    """An executable bash script that appends its arguments to $STUB_LOG, then runs ``body``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/bash\nprintf "%s\\n" "$0 $*" >>"$STUB_LOG"\n' + body + "\n")
    path.chmod(0o755)
    return path


def tool_dir(tmp: Path) -> Path:
    """A PATH directory with the basic tools and no dehydrated."""
    bin_dir = tmp / "toolbin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(found)
    return bin_dir


class Install:
    """A copy of the scripts in a temporary install dir, with a stub dehydrated on PATH."""

    def __init__(self, tmp: Path) -> None:
        self.code = tmp / "code"
        (self.code / "tools").mkdir(parents=True)
        for script in (CRON, FORCE):
            shutil.copy2(script, self.code / script.name)
        shutil.copy2(COMMON, self.code / "tools" / "common.sh")
        shutil.copy2(RUNLOG, self.code / "tools" / "runlog.sh")
        shutil.copy2(LIFECYCLE, self.code / "tools" / "lifecycle.sh")
        (self.code / "dehydrated").mkdir()  # the submodule, not checked out
        self.home = tmp / "home"
        self.home.mkdir()
        (self.home / "config.sh").write_text('WELLKNOWN="${BASEDIR}/.acme-challenges"\n')
        (self.home / "domains.txt").write_text(
            "# certificates\nwww.example.test example.test\n"
            "  Shop.Example.test  shop2.example.test>shop\n\nmail.example.test\n")
        self.log = tmp / "stub.log"
        self.bin = tool_dir(tmp)
        self.path_dehydrated = stub(tmp / "pathbin" / "dehydrated",
                                    'for a in "$@"; do case "$prev" in --domains-txt) '
                                    'cat "$a" >>"$STUB_LOG";; esac; prev="$a"; done')
        self.python = stub(tmp / "pybin" / "python", 'exit "${PY_EXIT:-0}"')
        self.env = {"PATH": f"{self.path_dehydrated.parent}:{self.bin}",
                    "NS_LE_HOME": str(self.home), "STUB_LOG": str(self.log),
                    "HOME": str(tmp), "NS_LE_PYTHON": str(self.python)}

    def reconcile_call(self, domains_txt: Optional[Path] = None,
                       certs_dir: Optional[Path] = None) -> str:
        """How the scripts run ``ns-letsencrypt reconcile`` (dehydrated's default paths)."""
        return (f"{self.python} -m ns_letsencrypt reconcile "
                f"--domains-txt {domains_txt or self.home / 'domains.txt'} "
                f"--certs-dir {certs_dir or self.home / 'certs'}")

    def ari_call(self) -> str:
        """How ns-cronjob.sh asks which certificates ARI says to renew (issue 13)."""
        return f"{self.python} -m ns_letsencrypt ari --due --config {self.home / 'config.sh'}"

    def run_end_call(self, status: int = 0) -> str:
        """How ns-cronjob.sh ends a run: notifications and metrics (issue 13)."""
        return (f"{self.python} -m ns_letsencrypt run-end --exit-status {status} "
                f"--certs-dir {self.home / 'certs'}")

    def run(self, script: str, *args: str, env: Optional[dict[str, str]] = None,
            wait: bool = True) -> Any:
        argv = [str(self.code / script), *args]
        full_env = {**self.env, **(env or {})}
        if not wait:
            return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=60)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def inst(tmp_path: Path) -> Install:
    return Install(tmp_path)


# -- argument plumbing, logging, exit codes (stub dehydrated) --------------------------------


def test_cronjob_renews_then_archives_with_timestamped_logs(inst: Install) -> None:
    result = inst.run("ns-cronjob.sh")

    assert result.returncode == 0, result.stderr
    config = inst.home / "config.sh"
    assert inst.calls() == [f"{inst.path_dehydrated} --cron --config {config}",
                            inst.ari_call(),
                            inst.reconcile_call(),
                            f"{inst.path_dehydrated} --cleanup --config {config}",
                            inst.run_end_call()]
    assert (inst.home / ".acme-challenges").is_dir()
    assert (result.stdout, result.stderr) == ("", "")  # quiet: nothing changed, nothing said
    lines = (inst.home / "log" / "ns-letsencrypt.log").read_text().splitlines()
    assert lines and all(STAMP.match(line) for line in lines)
    assert re.search(r"ns-cronjob.sh\[\d+\]: run started$", lines[0])
    assert "ns-cronjob.sh: renewing what is due" in lines[1]
    assert lines[-1].endswith("run ended with exit status 0")


@pytest.mark.parametrize("how", [("-v",), ("--verbose",), "info", "DEBUG"])
def test_cronjob_verbose_shows_every_line_as_it_happens(inst: Install, how: Any) -> None:
    env = {"NS_LOG_LEVEL": how} if isinstance(how, str) else {}
    args = how if isinstance(how, tuple) else ()

    result = inst.run("ns-cronjob.sh", *args, env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(STAMP.match(line) for line in lines)
    assert "ns-cronjob.sh: renewing what is due" in lines[0]
    log = (inst.home / "log" / "ns-letsencrypt.log").read_text()
    assert all(line in log for line in lines)


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("--force",), {}, "unknown argument '--force'; usage: ns-cronjob.sh [-v]"),
    ((), {"NS_LOG_LEVEL": "loud"}, "NS_LOG_LEVEL=loud is not a log level"),
    ((), {"NS_LOG_MAX_KB": "1M"}, "NS_LOG_MAX_KB=1M is not a positive number of KiB"),
])
def test_cronjob_bad_verbosity_or_log_setting_is_a_setup_error(
        inst: Install, args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    result = inst.run("ns-cronjob.sh", *args, env=env)

    assert result.returncode == 2
    assert expected in result.stderr
    assert inst.calls() == []


def test_log_file_is_private_kept_bounded_and_can_be_moved_or_turned_off(
        inst: Install, tmp_path: Path) -> None:
    log = inst.home / "log" / "ns-letsencrypt.log"
    assert inst.run("ns-cronjob.sh").returncode == 0
    assert log.stat().st_mode & 0o777 == 0o600
    log.write_text("x" * 3000 + "\n")

    assert inst.run("ns-cronjob.sh", env={"NS_LOG_MAX_KB": "2"}).returncode == 0
    assert (inst.home / "log" / "ns-letsencrypt.log.1").read_text() == "x" * 3000 + "\n"
    assert "run started" in log.read_text() and "x" * 10 not in log.read_text()

    elsewhere = tmp_path / "var" / "nsle.log"
    assert inst.run("ns-cronjob.sh", env={"NS_LOG_FILE": str(elsewhere)}).returncode == 0
    assert "renewing what is due" in elsewhere.read_text()

    before = log.read_text()
    result = inst.run("ns-cronjob.sh", env={"NS_LOG_FILE": "off"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert log.read_text() == before


def test_unwritable_log_file_is_one_warning_and_the_run_goes_on(inst: Install) -> None:
    (inst.home / "log").write_text("a file where the directory would go")

    result = inst.run("ns-cronjob.sh")

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"WARNING: cannot write the log file {inst.home}/log/ns-letsencrypt.log; this run is not "
        "logged (set NS_LOG_FILE to a writable file, or NS_LOG_FILE=off)"]
    assert len(inst.calls()) == 5  # dehydrated, ari, reconcile, dehydrated --cleanup, run-end


def test_forcerenew_without_arguments_forces_everything(inst: Install) -> None:
    result = inst.run("ns-forcerenew.sh")

    assert result.returncode == 0, result.stderr
    assert inst.calls() == [
        f"{inst.path_dehydrated} --cron --force --config {inst.home / 'config.sh'}",
        inst.reconcile_call()]
    lines = result.stdout.splitlines()  # run by hand: every line as it happens, and logged
    assert lines and all(STAMP.match(line) for line in lines)
    assert "ns-forcerenew.sh: forcing renewal of every certificate" in lines[0]
    log = (inst.home / "log" / "ns-letsencrypt.log").read_text()
    assert all(line in log for line in lines)


def test_forcerenew_selects_whole_lines_by_any_name_or_alias(inst: Install) -> None:
    result = inst.run("ns-forcerenew.sh", "EXAMPLE.test", "shop", "shop2.example.test")

    assert result.returncode == 0, result.stderr
    call, *selected, reconcile = inst.calls()
    assert call.startswith(f"{inst.path_dehydrated} --cron --force --config ")
    assert "--domains-txt" in call
    assert selected == ["www.example.test example.test",
                        "shop.example.test  shop2.example.test>shop"]
    assert reconcile == inst.reconcile_call()  # every certificate, not only the forced ones
    assert not list(inst.home.glob(".forcerenew-domains.*"))  # the subset file is removed


def test_forcerenew_unknown_name_does_nothing(inst: Install) -> None:
    result = inst.run("ns-forcerenew.sh", "www.example.test", "nope.example.test")

    assert result.returncode == 2
    assert "not in " in result.stderr and "nope.example.test" in result.stderr
    assert inst.calls() == []


def test_dehydrated_failure_is_the_exit_status(inst: Install) -> None:
    stub(inst.path_dehydrated, "echo 'ERROR: Challenge is invalid' >&2; exit 3")

    result = inst.run("ns-cronjob.sh")

    assert result.returncode == 3
    # no --cleanup after a failed run; its end is still reported (notifications, metrics)
    assert inst.calls()[1:] == [inst.run_end_call(3)]
    err = result.stderr.splitlines()
    assert any(STAMP.match(line) and line.endswith("ERROR: Challenge is invalid") for line in err)
    assert "dehydrated --cron failed with exit status 3" in result.stderr


@pytest.mark.parametrize("script", ["ns-cronjob.sh", "ns-forcerenew.sh"])
def test_failed_reconcile_is_the_exit_status(inst: Install, script: str) -> None:
    stub(inst.python, 'echo "deploy failed at step \'add certkey\'" >&2; exit 8')

    result = inst.run(script)

    assert result.returncode == 8
    calls = [call for call in inst.calls() if " ari " not in call and " run-end " not in call]
    assert calls[-1] == inst.reconcile_call()  # and no --cleanup after it
    assert "deploy failed at step 'add certkey'" in result.stderr
    assert "ns-letsencrypt reconcile failed with exit status 8" in result.stderr


def test_reconcile_uses_the_paths_config_sh_gives_dehydrated(inst: Install,
                                                              tmp_path: Path) -> None:
    elsewhere = tmp_path / "state"
    (inst.home / "config.sh").write_text(
        f'BASEDIR="{elsewhere}"\nWELLKNOWN="${{BASEDIR}}/wk"\n'
        'DOMAINS_TXT="${BASEDIR}/names.txt"\n')

    assert inst.run("ns-cronjob.sh").returncode == 0
    assert inst.reconcile_call(elsewhere / "names.txt", elsewhere / "certs") in inst.calls()

    (inst.home / "config.sh").write_text('CERTDIR="/srv/certs"\n')
    inst.log.unlink()
    assert inst.run("ns-cronjob.sh").returncode == 0
    assert inst.reconcile_call(certs_dir=Path("/srv/certs")) in inst.calls()


@pytest.mark.parametrize("case", ["explicit", "venv", "path"])
def test_reconcile_finds_python_like_the_hook(inst: Install, tmp_path: Path, case: str) -> None:
    record = 'printf "%s PYTHONPATH=%s\\n" "$0" "$PYTHONPATH" >>"$PY_LOG"'
    explicit = stub(tmp_path / "explicit" / "python", record)
    venv = stub(inst.code / ".venv" / "bin" / "python", record)
    on_path = stub(tmp_path / "pathbin" / "python3", record)
    env = {"PY_LOG": str(tmp_path / "py.log"), "NS_LE_PYTHON": "",
           "PATH": f"{on_path.parent}:{inst.env['PATH']}"}
    if case == "explicit":
        env["NS_LE_PYTHON"] = str(explicit)
    if case == "path":
        shutil.rmtree(inst.code / ".venv")

    result = inst.run("ns-cronjob.sh", env=env)

    assert result.returncode == 0, result.stderr
    used = {"explicit": explicit, "venv": venv, "path": on_path}[case]
    calls = (tmp_path / "py.log").read_text().splitlines()  # ari, reconcile, run-end
    assert calls == [f"{used} PYTHONPATH={inst.code}"] * 3


def test_missing_config_is_a_setup_error(inst: Install) -> None:
    (inst.home / "config.sh").unlink()

    result = inst.run("ns-cronjob.sh")

    assert result.returncode == 2
    assert "config.sh not found; copy config.sh.example" in result.stderr
    assert inst.calls() == []


def test_scripts_work_through_a_symlink(inst: Install, tmp_path: Path) -> None:
    link = tmp_path / "elsewhere" / "ns-cronjob.sh"
    link.parent.mkdir()
    link.symlink_to(inst.code / "ns-cronjob.sh")
    env = {**inst.env, "NS_LE_HOME": ""}
    (inst.code / "config.sh").write_text("")

    result = subprocess.run([str(link)], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert inst.calls()[0].endswith(f"--config {inst.code / 'config.sh'}")


# -- the lock ---------------------------------------------------------------------------------


def test_second_run_exits_with_the_lock_message_and_code(inst: Install) -> None:
    started = inst.home / "started"
    stub(inst.path_dehydrated, f'touch {started}; sleep 5')
    first = inst.run("ns-cronjob.sh", wait=False)
    try:
        deadline = time.monotonic() + 20
        while not started.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)

        second = inst.run("ns-forcerenew.sh")

        assert second.returncode == 75
        assert "another ns-letsencrypt run holds" in second.stderr
        assert str(inst.home / ".ns-letsencrypt.lock") in second.stderr
        assert "NS_LOCK_WAIT" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the script and its stub child
        first.communicate()


def test_lock_wait_lets_the_second_run_follow(inst: Install) -> None:
    started = inst.home / "started"
    stub(inst.path_dehydrated, f'[ -e {started} ] || {{ touch {started}; sleep 1; }}')
    first = inst.run("ns-cronjob.sh", wait=False)
    try:
        while not started.exists():
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        second = inst.run("ns-cronjob.sh", env={"NS_LOCK_WAIT": "30"})
        assert second.returncode == 0, second.stderr
        assert first.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()


# -- dehydrated discovery: bash and Python follow the same order --------------------------------


def bash_find(code: Path, env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        ["/bin/bash", "-c", f'. {COMMON}; nsle_find_dehydrated "$1"', "_", str(code)],
        env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, (result.stdout.strip() or result.stderr.strip())


def python_find(code: Path, env: dict[str, str]) -> tuple[int, str]:
    try:
        return 0, register.find_dehydrated(env, code_dir=code)
    except ConfigError as exc:
        return 2, str(exc)


@pytest.mark.parametrize("case", ["explicit", "explicit-name", "submodule", "path", "none",
                                  "explicit-broken"])
def test_discovery_order_is_the_same_in_bash_and_python(tmp_path: Path, case: str) -> None:
    code = tmp_path / "code"
    (code / "dehydrated").mkdir(parents=True)
    explicit = stub(tmp_path / "explicit" / "my-dehydrated")
    on_path = stub(tmp_path / "pathbin" / "dehydrated")
    submodule = code / "dehydrated" / "dehydrated"
    env = {"PATH": f"{on_path.parent}:{explicit.parent}"}
    expected: Any = None
    if case in ("explicit", "explicit-name", "explicit-broken"):
        stub(submodule)
        env["DEHYDRATED"] = {"explicit": str(explicit), "explicit-name": "my-dehydrated",
                             "explicit-broken": str(tmp_path / "missing")}[case]
        expected = (2, "DEHYDRATED=") if case == "explicit-broken" else (0, str(explicit))
    elif case == "submodule":
        stub(submodule)
        expected = (0, str(submodule))
    elif case == "path":
        expected = (0, str(on_path))
    else:
        env["PATH"] = str(tmp_path / "empty")
        expected = (2, "dehydrated not found")

    for finder in (bash_find, python_find):
        status, text = finder(code, env)
        assert status == expected[0], (finder.__name__, text)
        assert expected[1] in text, (finder.__name__, text)
        if case == "none":
            assert "git submodule update --init" in text
            assert "apt-get install dehydrated" in text


def test_cronjob_without_any_dehydrated_says_how_to_get_it(inst: Install) -> None:
    result = inst.run("ns-cronjob.sh", env={"PATH": str(inst.bin)})

    assert result.returncode == 2
    assert "dehydrated not found" in result.stderr
    assert "git submodule update --init" in result.stderr
    assert "apt-get install dehydrated" in result.stderr


def test_scripts_are_shellcheck_clean() -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    result = subprocess.run(["shellcheck", "-x", "ns-cronjob.sh", "ns-forcerenew.sh",
                             "tools/common.sh", "tools/demo.sh"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


# -- end to end: pebble + real dehydrated + hooks/ns-hook.sh + the fake NetScaler ---------------


def e2e_home(acme: Any, domains: str) -> tuple[Path, dict[str, str]]:
    """NS_LE_HOME with config.sh = config.sh.example + the lines that point it at pebble."""
    home = Path(acme.env["NS_LE_HOME"])
    accountdir = acme.new_account()
    example = (REPO / "config.sh.example").read_text()
    (home / "config.sh").write_text(example + "\n# test stack\n" + "".join(
        f'{key}="{value}"\n' for key, value in {
            "CA": acme.pebble.directory, "ACCOUNTDIR": str(accountdir),
            "HOOK": str(REPO / "hooks" / "ns-hook.sh"),
            "CURL_OPTS": f"--cacert {acme.pebble.tls_cert} --noproxy 127.0.0.1,localhost",
            "ACCOUNT_KEYSIZE": "2048"}.items()))
    (home / "domains.txt").write_text(domains)
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(acme.env)
    env["TMPDIR"] = str(acme.tmp)
    return home, env


def serial_of(home: Path, name: str) -> str:
    return read_certificate(home / "certs" / name / "cert.pem").serial


def generations(home: Path, name: str) -> list[str]:
    return sorted(p.name for p in (home / "certs" / name).glob("cert-*.pem"))


def served_serials(ns: Any) -> dict[str, str]:
    return {ck["certkey"]: ck["serial"] for ck in ns.certkeys() if "key" in ck}


def test_cron_issues_and_deploys_then_force_renews_only_the_named_certificate(
        acme: Any, ns: Any) -> None:
    home, env = e2e_home(acme, "www.example.test example.test\nshop.example.test\n")

    first = subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)

    assert first.returncode == 0, first.stdout + first.stderr
    www, shop = serial_of(home, "www.example.test"), serial_of(home, "shop.example.test")
    served = served_serials(ns)
    assert served["le-www.example.test"].lstrip("0") == www.lstrip("0")
    assert served["le-shop.example.test"].lstrip("0") == shop.lstrip("0")
    assert (home / "archive").is_dir()  # the --cleanup step ran
    summary = first.stdout.splitlines()  # quiet: one line per certificate deployed
    assert [line.split(",")[0] for line in summary] == [
        f"{name}: installed certkey le-{name} on {ns.url.split('//')[1]}"
        for name in ("www.example.test", "shop.example.test")], first.stdout

    again = subprocess.run([str(CRON), "-v"], env=env, capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Skipping renew" in again.stdout
    assert all(STAMP.match(line) for line in again.stdout.splitlines())
    assert (serial_of(home, "www.example.test"), serial_of(home, "shop.example.test")) == (
        www, shop)

    www_files = generations(home, "www.example.test")
    forced = subprocess.run([str(FORCE), "shop.example.test"], env=env, capture_output=True,
                            text=True, timeout=240)

    assert forced.returncode == 0, forced.stdout + forced.stderr
    new_shop = serial_of(home, "shop.example.test")
    assert new_shop != shop
    assert serial_of(home, "www.example.test") == www
    assert generations(home, "www.example.test") == www_files  # www was not re-issued
    served = served_serials(ns)
    assert served["le-shop.example.test"].lstrip("0") == new_shop.lstrip("0")
    assert served["le-www.example.test"].lstrip("0") == www.lstrip("0")


def test_certificate_the_appliance_lost_fails_the_run_until_it_is_deployed_again(
        acme: Any, ns: Any) -> None:
    from ns_letsencrypt.session import open_client
    from tests.conftest import fake_settings

    home, env = e2e_home(acme, "www.example.test\n")
    first = subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stdout + first.stderr
    www = serial_of(home, "www.example.test")
    with open_client(fake_settings(ns)) as client:  # e.g. an old configuration was restored
        client.delete("sslcertkey", "le-www.example.test")
    ns.inject(method="POST", resource="sslcertkey", kind="error", times=50, status=599,
              errorcode=1538, message="Certificate and private key do not match")

    failed = subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)

    # Nothing was due, so dehydrated itself succeeded; the script's reconciliation, the only
    # one of this run (exit_hook leaves it to the script), reports the failure once.
    output = failed.stdout + failed.stderr
    assert failed.stdout == ""  # quiet: the failure's transcript, in order, on stderr
    assert "Skipping renew" in failed.stderr
    assert "exit_hook returned with non-zero exit code!" not in failed.stderr
    assert failed.returncode == 8, output
    assert "ns-letsencrypt reconcile failed with exit status 8" in failed.stderr
    assert re.search(r"deploy failed at step '[^']+'", failed.stderr), failed.stderr
    assert failed.stderr.count("errorcode 1538") == 1, failed.stderr  # the detail, once
    assert failed.stderr.count("(hint: ") == 1, failed.stderr
    assert failed.stderr.count("unsaved configuration changes") == 1, failed.stderr
    assert "le-www.example.test" not in served_serials(ns)

    ns.clear_faults()
    fixed = subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert served_serials(ns)["le-www.example.test"].lstrip("0") == www.lstrip("0")
    assert serial_of(home, "www.example.test") == www  # redeployed, not re-issued


def test_register_passes_the_email_through_the_environment(acme: Any, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from ns_letsencrypt import cli

    home, env = e2e_home(acme, "www.example.test\n")
    accounts = tmp_path / "fresh-accounts"
    config = home / "config.sh"
    config.write_text(config.read_text() + f'ACCOUNTDIR="{accounts}"\n')
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        code = cli.main(["register", "--email", "admin@example.test"])
    finally:
        os.environ.clear()
        os.environ.update(saved)

    assert code == 0, capsys.readouterr()
    (info,) = accounts.glob("*/registration_info.json")
    assert json.loads(info.read_text())["contact"] == ["mailto:admin@example.test"]


def test_register_refuses_an_email_the_config_would_ignore(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from ns_letsencrypt import cli

    (tmp_path / "config.sh").write_text('CONTACT_EMAIL="fixed@example.test"\n')
    monkeypatch.setenv("NS_LE_HOME", str(tmp_path))

    code = cli.main(["register", "--email", "admin@example.test"])

    assert code == 2
    assert "does not read NS_LE_CONTACT_EMAIL" in capsys.readouterr().err


# -- schedule -----------------------------------------------------------------------------------


def test_systemd_units_verify_and_run_the_cron_script_daily(tmp_path: Path) -> None:
    service = (REPO / "systemd" / "ns-letsencrypt.service").read_text()
    timer = (REPO / "systemd" / "ns-letsencrypt.timer").read_text()
    assert "ExecStart=/opt/ns-letsencrypt/ns-cronjob.sh" in service
    assert "Type=oneshot" in service and "ReadWritePaths=/opt/ns-letsencrypt" in service
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    assert "RandomizedDelaySec=" in timer
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    (tmp_path / "ns-letsencrypt.service").write_text(
        service.replace("/opt/ns-letsencrypt", str(REPO)))
    (tmp_path / "ns-letsencrypt.timer").write_text(timer)
    result = subprocess.run(["systemd-analyze", "verify", "ns-letsencrypt.service",
                             "ns-letsencrypt.timer"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# -- quiet scheduled runs: what a cron mail shows (issue 14) ----------------------------------


def cron(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CRON)], env=env, capture_output=True, text=True, timeout=240)


def test_cron_mail_is_empty_on_quiet_days_one_line_per_renewal_and_everything_on_failure(
        acme: Any, ns: Any) -> None:
    from tests.conftest import PASSWORD, USER

    home, env = e2e_home(acme, "www.example.test\n")
    settings = {key: env.pop(key) for key in list(env)
                if key.startswith("NS_") and key not in ("NS_LE_HOME", "NS_LE_PYTHON")}
    dotenv = home / ".env"
    dotenv.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    dotenv.chmod(0o600)

    issued = cron(env)  # the first run issues and deploys: one line

    assert issued.returncode == 0, issued.stdout + issued.stderr
    serial = serial_of(home, "www.example.test")
    assert issued.stderr == ""
    assert re.fullmatch(rf"www\.example\.test: installed certkey le-www\.example\.test on "
                        rf"{re.escape(ns.url.split('//')[1])}, serial {serial}, expires "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\n", issued.stdout), issued.stdout

    quiet = cron(env)  # nothing due: not a byte

    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

    # The original tool's mynsconfig.py instead of .env: its deprecation warning, one line.
    dotenv.unlink()
    legacy = home / "mynsconfig.py"
    legacy.write_text(f'nitroNSIP = "{ns.url}"\nnitroUser = "{USER}"\nnitroPass = "{PASSWORD}"\n'
                      'nsvip = "web"\nviptype = "lb"\nnschain = "le-chain.pem"\n')
    legacy.chmod(0o600)
    rest = {key: value for key, value in settings.items()
            if key not in ("NS_URL", "NS_USER", "NS_PASSWORD_FILE", "NS_VSERVER",
                           "NS_VSERVER_TYPE")}
    legacy_env = {**env, **rest}

    old_style = cron(legacy_env)

    assert (old_style.returncode, old_style.stdout) == (0, ""), old_style.stderr
    (warning,) = old_style.stderr.splitlines()
    assert warning.startswith(f"WARNING: mynsconfig.py {legacy} is deprecated; "
                              "'ns-letsencrypt migrate-config' puts these settings in .env")

    migrated = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "migrate-config"],
                              env=legacy_env, capture_output=True, text=True, timeout=60,
                              cwd=REPO)
    assert migrated.returncode == 0, migrated.stderr
    assert PASSWORD not in migrated.stdout
    legacy.unlink()

    after = cron(legacy_env)
    assert (after.returncode, after.stdout, after.stderr) == (0, "", "")

    # A renewal (every run renews with RENEW_DAYS beyond the lifetime): one line, new serial.
    config = home / "config.sh"
    config.write_text(config.read_text() + 'RENEW_DAYS="3650"\n')

    renewed = cron(legacy_env)

    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    new_serial = serial_of(home, "www.example.test")
    assert new_serial != serial
    assert renewed.stderr == ""
    assert renewed.stdout.startswith(f"www.example.test: updated certkey le-www.example.test on "
                                     f"{ns.url.split('//')[1]}, serial {new_serial}, expires ")
    assert len(renewed.stdout.splitlines()) == 1

    # Leftovers of a killed run (here: a challenge deployed by hand) are cleaned: one more line.
    token = "k" * 43
    left = subprocess.run([sys.executable, "-m", "ns_letsencrypt", "challenge", "www.example.test",
                           token, f"{token}.{'t' * 43}"], env=legacy_env, capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert left.returncode == 0, left.stderr

    cleaned = cron(legacy_env)

    assert cleaned.returncode == 0, cleaned.stderr
    # The hand-made challenge was not saved: worth a warning, once.
    assert cleaned.stderr.splitlines() == [
        "WARNING: the appliance already has unsaved configuration changes made before this "
        "run; if this run changes anything, saving the configuration will persist them too"]
    swept, renewed_again = cleaned.stdout.splitlines()
    assert re.fullmatch(rf"{re.escape(ns.url.split('//')[1])}: removed 2 leftover challenge "
                        r"object\(s\): le-acme-\S+, le-acme-\S+", swept), cleaned.stdout
    assert renewed_again.startswith("www.example.test: updated certkey le-www.example.test on ")

    # A deploy the appliance refuses: the error, its hint and dehydrated's own lines.
    ns.inject(method="POST", resource="systemfile", kind="error", times=50, status=599,
              errorcode=2138, message="Not authorized to execute this command")

    failed = cron(legacy_env)

    assert failed.returncode != 0
    assert failed.stdout == ""
    log = home / "log" / "ns-letsencrypt.log"
    headline, *lines = failed.stderr.splitlines()
    assert headline == (f"ns-cronjob.sh: failed with exit status {failed.returncode}; the "
                        f"transcript of this run follows (every run is logged in {log})")
    assert all(STAMP.match(line) for line in lines), failed.stderr
    assert "errorcode 2138" in failed.stderr
    assert "(hint: the NITRO user's command policy does not allow this command" in (
        failed.stderr)
    assert any(line.endswith("Processing www.example.test") for line in lines), failed.stderr
    assert "Requesting new certificate order from CA..." in failed.stderr
    assert lines[-1].endswith("ns-cronjob.sh: ERROR: dehydrated --cron failed with exit status "
                              f"{failed.returncode}; see the lines above")

    # Nothing is lost: the log holds every run's full transcript.
    text = log.read_text()
    assert text.count("ns-cronjob.sh[") == 2 * 7  # started and ended, seven runs
    assert text.count("Skipping renew!") == 3
    assert f"serial {serial}" in text and f"serial {new_serial}" in text
    assert "errorcode 2138" in text and "Requesting new certificate order" in text
    assert text.count("is deprecated") == 1
    assert PASSWORD not in text
    assert all(STAMP.match(line) for line in text.splitlines())
