"""Secrets: the NITRO password and the private key never leak, and exposure is warned about.

Every command of ``cli.COMMANDS`` and every hook name runs with a recognisable password and a
recognisable private key, on success and on failure paths (refused login, failed upload,
appliance down). Neither may appear in stdout, stderr, a log file, an exception text, or the
argv of any process started while the hook runs through bash (recorded by a wrapper around
Python and by sampling ``/proc/*/cmdline``). Password and key files readable by others are
warned about; a private key is not sent over plain HTTP unless NS_ALLOW_KEY_OVER_HTTP says so.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ns_letsencrypt import cli
from tests.ari_responder import AriResponder, window
from tests.receiver import JsonReceiver
from tests.test_fault_matrix import (
    HOOK,
    REPO,
    SITE,
    TOKENS,
    Stage,
    challenge_args,
    deploy_args,
    hierarchy,
    staged,
)

SECRET = "Pw-9f3c-SECRET"


def key_fragments(key_file: Path) -> list[str]:
    """Pieces of the private key that must not show anywhere: PEM lines, raw base64, DER hex."""
    pem = key_file.read_text()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    der = base64.b64decode("".join(body))
    return [line for line in body if len(line) >= 24] + ["".join(body)[:48], der.hex()[16:80]]


@pytest.fixture
def stage() -> Iterator[Stage]:
    with staged(hierarchy(), NS_PASSWORD=SECRET) as ready:
        ready.fake.state.users["nsroot"] = SECRET
        yield ready


def assert_no_secret(texts: dict[str, str], fragments: list[str]) -> None:
    for where, text in texts.items():
        assert SECRET not in text, f"the password leaked into {where}"
        for fragment in fragments:
            assert fragment not in text, f"private key material leaked into {where}"


# -- every command and hook, in-process ------------------------------------------------------


def dehydrated_tree(stage: Stage, files: dict[str, Path]) -> Path:
    """BASEDIR with config.sh, domains.txt and certs/<site>/ holding the certificate."""
    base = stage.tmp / "dh"
    site = base / "certs" / SITE
    site.mkdir(parents=True, exist_ok=True)
    for name, key in (("cert.pem", "cert"), ("chain.pem", "chain"), ("privkey.pem", "key"),
                      ("fullchain.pem", "fullchain")):
        (site / name).write_bytes(files[key].read_bytes())
    (site / "privkey.pem").chmod(0o600)
    (base / "domains.txt").write_text(f"{SITE}\n")
    (base / "config.sh").write_text('CONTACT_EMAIL="${NS_LE_CONTACT_EMAIL:-}"\n'
                                    + stage.memo.get("config.sh", ""))
    stub = base / "dehydrated-stub"
    stub.write_text("#!/bin/sh\necho \"registered: $*\"\n")
    stub.chmod(0o755)
    return base


@pytest.fixture
def lifecycle(stage: Stage) -> Iterator[JsonReceiver]:
    """Issue 13: an ARI responder as the CA of config.sh and a json:// receiver whose URL
    holds the password as its token; run-end then sends failure and renewal messages."""
    cert, key = stage.tmp / "ca-tls.pem", stage.tmp / "ca-tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    run_dir = stage.tmp / "run"
    run_dir.mkdir()
    with AriResponder(cert, key) as responder, JsonReceiver() as receiver:
        responder.answer = lambda _id: window(-1, 0.5, explanation="https://ca.example/x")
        stage.memo["config.sh"] = (f'CA="{responder.directory}"\n'
                                   f'CURL_OPTS="--cacert {cert}"\n')
        stage.env.update(NS_NOTIFY=f"json://hook:{SECRET}@127.0.0.1:{receiver.port}/n",
                         NS_NOTIFY_ON="failure,expiry,renewal", NS_LE_RUN_DIR=str(run_dir),
                         NS_METRICS_FILE=str(stage.tmp / "m.prom"))
        yield receiver


def command_runs(stage: Stage) -> list[tuple[str, list[str]]]:
    """(command, argv) for every command and hook name, in an order that makes sense."""
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o600)
    stage.memo["key"] = files["key"]
    base = dehydrated_tree(stage, files)
    stage.env.update(NS_LE_HOME=str(base), BASEDIR=str(base), DEHYDRATED=str(base /
                                                                              "dehydrated-stub"))
    domains = ["--domains-txt", str(base / "domains.txt"), "--certs-dir", str(base / "certs")]
    renewed = stage.issue("B", [SITE])
    renewed["key"].chmod(0o600)
    hook_deploy = deploy_args(renewed)
    domain, token, key_authorization = TOKENS[0]  # certbot's hook environment (issue 12)
    stage.env.update(CERTBOT_DOMAIN=domain, CERTBOT_TOKEN=token,
                     CERTBOT_VALIDATION=key_authorization, CERTBOT_ALL_DOMAINS=domain,
                     CERTBOT_REMAINING_CHALLENGES="0", RENEWED_LINEAGE=str(base / "certs" / SITE))
    legacy = stage.tmp / "legacy" / "mynsconfig.py"  # the original tool's file, for migrate-config
    legacy.parent.mkdir()
    legacy.write_text(f'nitroNSIP = "127.0.0.1"\nnitroUser = "nsroot"\nnitroPass = "{SECRET}"\n')
    legacy.chmod(0o600)
    return [
        ("test", ["-vv", "test"]),
        ("test", ["test", "--json"]),
        ("policy", ["policy"]),
        ("register", ["register", "--email", "admin@example.com"]),
        ("hook", ["-vv", "hook", "startup_hook"]),
        ("hook", ["-vv", "hook", "deploy_challenge", *challenge_args()]),
        ("hook", ["-vv", "hook", "clean_challenge", *challenge_args()]),
        ("challenge", ["-vv", "challenge", *challenge_args()]),
        ("clean", ["-vv", "clean", "a.example.com", "b.example.com"]),
        ("sweep", ["-vv", "sweep"]),
        ("deploy", ["-vv", "deploy", str(files["cert"]), str(files["key"]),
                    str(files["chain"])]),
        ("hook", ["-vv", *hook_deploy]),
        ("hook", ["-vv", "hook", "unchanged_cert", *hook_deploy[2:-1]]),
        ("hook", ["-vv", "hook", "invalid_challenge", "a.example.com", '{"status": 403}']),
        ("hook", ["-vv", "hook", "request_failure", "500", "oops", "POST"]),
        ("hook", ["-vv", "hook", "generate_csr", SITE, str(base), str(base / "x.csr")]),
        ("hook", ["-vv", "hook", "some_future_hook", "x"]),
        ("reconcile", ["-vv", "reconcile", *domains]),
        ("status", ["status", "--certs-dir", str(base / "certs")]),
        ("status", ["status", "--json", "--certs-dir", str(base / "certs")]),
        ("cleanup", ["-vv", "cleanup"]),
        ("cleanup", ["-vv", "cleanup", "--yes"]),
        ("save-config", ["-vv", "save-config"]),
        ("certbot", ["-vv", "certbot", "auth"]),
        ("certbot", ["-vv", "certbot", "cleanup"]),
        ("certbot", ["-vv", "certbot", "deploy"]),
        ("hook", ["-vv", "hook", "exit_hook", ""]),
        ("migrate-config", ["-vv", "--legacy-config", str(legacy), "--env-file",
                            str(legacy.parent / ".env"), "migrate-config"]),
        ("ari", ["-vv", "ari", "--due"]),
        ("ca", ["-vv", "ca"]),
        ("run-end", ["-vv", "run-end", "--exit-status", "8", "--certs-dir", str(base / "certs")]),
        ("end-run", ["-vv", "end-run", "--run-dir", str(private_dir(stage.tmp / "run"))]),
    ]


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def test_every_command_keeps_the_secrets(stage: Stage, lifecycle: JsonReceiver) -> None:
    runs = command_runs(stage)
    assert set(cli.COMMANDS) <= {name for name, _ in runs}, "a command is not covered here"
    fragments = key_fragments(stage.memo["key"])
    statuses = {}
    for _name, argv in runs:
        result = stage.run(*argv)
        statuses[" ".join(argv[:3])] = result.status
        assert "Traceback" not in result.err, result.err
        assert_no_secret({f"{argv} stdout": result.out, f"{argv} stderr": result.err}, fragments)
    failed = {argv: status for argv, status in statuses.items() if status not in (0,)}
    # status answers by the monitoring convention and may warn; everything else succeeded
    assert all(argv.startswith("status") for argv in failed), failed
    assert [m["title"].split(":")[0] for m in lifecycle.messages] == ["ns-letsencrypt"] * 2
    assert_no_secret({f"message {m['title']}": m["message"] for m in lifecycle.messages},
                     fragments)


@pytest.mark.parametrize("failure", ["wrong-password", "upload-refused", "appliance-down",
                                     "debug-traceback"])
def test_failures_keep_the_secrets(stage: Stage, failure: str) -> None:
    """Error paths build messages from exceptions: none may carry the password or the key."""
    files = stage.issue("A", [SITE])
    fragments = key_fragments(files["key"])
    argv = ["-vv", *deploy_args(files)]
    if failure == "wrong-password":
        stage.fake.state.users["nsroot"] = "something-else"
    elif failure == "upload-refused":
        stage.fake.inject(method="POST", resource="systemfile", nth=2, kind="error",
                          status=599, errorcode=1537, message="Invalid private key")
    elif failure == "appliance-down":
        stage.env["NS_URL"] = "https://127.0.0.1:9"
        stage.env["NS_RETRIES"] = "0"
    texts: dict[str, str] = {}
    if failure == "debug-traceback":
        stage.fake.inject(method="POST", resource="systemfile", nth=2, kind="error",
                          status=599, errorcode=1537, message="Invalid private key")
        with pytest.raises(Exception) as raised:
            stage.run("--debug", *argv[1:])
        texts["exception"] = f"{raised.value!s} {raised.value!r} {raised.value.args!r}"
        texts["exception cause"] = repr(raised.value.__cause__) + repr(raised.value.__context__)
    else:
        result = stage.run(*argv)
        assert result.status != 0
        texts = {"stdout": result.out, "stderr": result.err}
    assert_no_secret(texts, fragments)


# -- the real hook through bash: argv of every child process ------------------------------


class ProcessWatch:
    """Samples the argv of every process on the machine while a hook runs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        raw = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.005)


def wrapped_python(directory: Path, log: Path) -> Path:
    """A python that appends its own argv (from /proc) to ``log``, then runs the real one."""
    wrapper = directory / "python-wrapper"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'tr "\\0" " " </proc/$$/cmdline >>"{log}"; echo >>"{log}"\n'
        f'exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def hook_env(stage: Stage, wrapper: Path) -> dict[str, str]:
    """The stage's settings for a child process, the password in a mode-600 file only."""
    password_file = stage.tmp / "nitro-password"
    password_file.write_text(SECRET + "\n")
    password_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NS_")}
    env.update(stage.env)
    env.pop("NS_PASSWORD")
    env.update(NS_PASSWORD_FILE=str(password_file), NS_LE_PYTHON=str(wrapper),
               PYTHONPATH=str(REPO))
    return env


def test_hook_children_never_carry_secrets(stage: Stage) -> None:
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o600)
    fragments = key_fragments(files["key"])
    base = dehydrated_tree(stage, files)
    log = stage.tmp / "argv.log"
    env = hook_env(stage, wrapped_python(stage.tmp, log))
    env.update(BASEDIR=str(base))
    calls = [["startup_hook"], ["deploy_challenge", *challenge_args()],
             ["clean_challenge", *challenge_args()], deploy_args(files)[1:],
             ["unchanged_cert", *deploy_args(files)[2:-1]],
             ["invalid_challenge", "a.example.com", "{}"], ["request_failure", "500", "x", "GET"],
             ["exit_hook", ""], ["no_such_hook"]]
    outputs: dict[str, str] = {}
    with ProcessWatch() as watch:
        for args in calls:
            done = subprocess.run(["bash", str(HOOK), *args], env=env, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            outputs[f"{args[0]} stdout"] = done.stdout
            outputs[f"{args[0]} stderr"] = done.stderr
    recorded = log.read_text()
    # Unknown hooks never start Python; unchanged_cert neither when exit_hook reconciles.
    for name in [args[0] for args in calls if args[0] not in ("no_such_hook", "unchanged_cert")]:
        assert f"-m ns_letsencrypt hook {name}" in recorded
    outputs["argv of the python processes"] = recorded
    outputs["argv of every process seen"] = "\n".join(watch.seen)
    assert_no_secret(outputs, fragments)


def test_the_run_session_id_stays_in_its_file(stage: Stage) -> None:
    """Within a run (NS_LE_RUN_DIR) the NITRO session id is a secret like the password: in
    no output, debug log or argv of any process, only in the run directory's mode-600 file."""
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o600)
    base = dehydrated_tree(stage, files)
    run_dir = private_dir(stage.tmp / "run")
    log = stage.tmp / "argv.log"
    wrapper = wrapped_python(stage.tmp, log)
    env = hook_env(stage, wrapper)
    env.update(BASEDIR=str(base), NS_LE_RUN_DIR=str(run_dir))
    calls = [["startup_hook"], ["deploy_challenge", *challenge_args()],
             ["clean_challenge", *challenge_args()], deploy_args(files)[1:]]
    tokens: set[str] = set()
    outputs: dict[str, str] = {}
    with ProcessWatch() as watch:
        for args in calls:
            done = subprocess.run(["bash", str(HOOK), *args], env=env, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            outputs[f"{args[0]} output"] = done.stdout + done.stderr
            tokens |= {json.loads(f.read_text())["sessionid"] for f in run_dir.glob("session-*")}
        stage.fake.expire_sessions()  # a new login, logged at -vv, then every request
        debug = stage.run("-vv", "reconcile", "--basedir", str(base),
                          NS_LE_RUN_DIR=str(run_dir), NS_LE_SCRIPT_RECONCILES="1")
        # deploy_cert put everything there in this run: the reconciliation had nothing to read,
        # so the save (a command of the run too) meets the expired session
        saved = stage.run("-vv", "save-config", NS_LE_RUN_DIR=str(run_dir))
        tokens |= {json.loads(f.read_text())["sessionid"] for f in run_dir.glob("session-*")}
        end = subprocess.run([str(wrapper), "-m", "ns_letsencrypt", "-vv", "end-run"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert debug.status == 0 and saved.status == 0 and end.returncode == 0, (
        debug.err + saved.err + end.stderr)
    assert len(tokens) == 2 and not list(run_dir.glob("session-*"))
    assert not stage.fake.state.sessions  # end-run logged out
    outputs.update({"reconcile -vv": debug.out + debug.err,
                    "save-config -vv": saved.out + saved.err, "end-run -vv": end.stdout +
                    end.stderr, "argv of the python processes": log.read_text(),
                    "argv of every process seen": "\n".join(watch.seen)})
    for token in tokens:
        for where, text in outputs.items():
            assert token not in text and quote(token, safe="") not in text, where
            assert token.lstrip("#") not in text, where


def test_cron_log_file_keeps_the_secrets(stage: Stage) -> None:
    """Whatever the tool writes to a log file (stderr redirected, as cron does)."""
    files = stage.issue("A", [SITE])
    fragments = key_fragments(files["key"])
    log_file = stage.tmp / "ns-letsencrypt.log"
    env = hook_env(stage, wrapped_python(stage.tmp, stage.tmp / "argv.log"))
    with log_file.open("w") as log:
        for args in (["startup_hook"], deploy_args(files)[1:], ["exit_hook", ""]):
            subprocess.run(["bash", str(HOOK), *args], env=env, stdout=log, stderr=log,
                           timeout=120, check=False)
    assert log_file.read_text()
    assert_no_secret({"log file": log_file.read_text()}, fragments)


# -- warnings about exposure, and the plain-HTTP refusal -----------------------------------


def test_password_file_readable_by_others_is_warned_about(stage: Stage) -> None:
    password_file = stage.tmp / "loose-password"
    password_file.write_text(SECRET + "\n")
    password_file.chmod(0o644)
    stage.env.pop("NS_PASSWORD")
    result = stage.run("test", NS_PASSWORD_FILE=str(password_file))
    warning = [line for line in result.err.splitlines() if "WARNING" in line
               and str(password_file) in line]
    assert warning and "chmod 600" in warning[0], result.err
    assert result.status == 0


def test_env_file_with_password_readable_by_others_is_warned_about(stage: Stage) -> None:
    env_file = stage.tmp / "loose.env"
    env_file.write_text(f"NS_PASSWORD={SECRET}\n")
    env_file.chmod(0o644)
    stage.env.pop("NS_PASSWORD")
    result = stage.run("--env-file", str(env_file), "test")
    assert any("WARNING" in line and str(env_file) in line for line in result.err.splitlines())
    assert SECRET not in result.err + result.out


def test_key_file_readable_by_others_is_warned_about(stage: Stage) -> None:
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o644)
    result = stage.run(*deploy_args(files))
    assert result.status == 0, result.err
    warning = [line for line in result.err.splitlines() if "WARNING" in line
               and str(files["key"]) in line]
    assert warning, result.err
    assert stat.S_IMODE(files["key"].stat().st_mode) == 0o644  # we warn; we do not chmod


def test_private_key_over_plain_http_is_refused(stage: Stage) -> None:
    stage.env["NS_URL"] = stage.fake.http_url
    stage.env.pop("NS_TLS_PIN")
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o600)
    result = stage.run(*deploy_args(files))
    assert result.status == 2, result.err
    assert "plain http" in result.error_lines[-1].lower()
    assert "NS_ALLOW_KEY_OVER_HTTP" in result.error_lines[-1]
    assert not [r for r in stage.fake.writes() if r.resource == "systemfile"]


def test_private_key_over_plain_http_when_allowed(stage: Stage) -> None:
    stage.env.update(NS_URL=stage.fake.http_url, NS_ALLOW_KEY_OVER_HTTP="yes")
    stage.env.pop("NS_TLS_PIN")
    files = stage.issue("A", [SITE])
    files["key"].chmod(0o600)
    result = stage.run(*deploy_args(files))
    assert result.status == 0, result.err
    assert [r for r in stage.fake.writes() if r.resource == "systemfile"]

