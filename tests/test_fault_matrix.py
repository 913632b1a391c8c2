"""Fault matrix: every NITRO call of every flow, failed in every way the network can fail it.

The list of calls is not written down here: at collection time each flow runs once, clean,
against a fresh fake NetScaler, and the calls it made (``fake.requests``) become the test
parameters. A flow that grows a call is covered by the next test run without an edit.

For each recorded call and each fault kind (NITRO 5xx error body, connection reset, read
timeout, session expired / 444, and for writes a lost answer: carried out, then the connection
drops) one case runs the flow through ``cli.main`` with that call
failing, and checks:

* the exit status is non-zero, or the run really succeeded (the flow's desired state holds:
  the client recovered, e.g. by re-login after 444 or by retrying a GET);
* a failure is reported as one error line naming the step or the failed call, no traceback;
* for the deploy flows, the TLS data plane still serves a certificate that verifies;
* the next ordinary run converges to the desired state, and no challenge object remains.

A summary table (cases, survived, per flow and fault kind) is printed at the end.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from cryptography import x509

from ns_letsencrypt import cli
from tests import pki
from tests.fakens import FakeNetScaler

REPO = Path(__file__).resolve().parent.parent
HOOK = REPO / "hooks" / "ns-hook.sh"
USER = "nsroot"
PASSWORD = "Pw-fault-5e1b"
CHALLENGE_PREFIX = "le-acme-"
HTTP_VSERVER = "web"
SSL_VSERVER = "ssl_vs"
# The faulty run alone gets a short read timeout, so the "timeout" cases stay fast; set-up and
# the next run keep a generous one, so a slow moment of a busy machine cannot fail them.
READ_TIMEOUT = 1.0
FAULT_DELAY = 3.0  # the injected "timeout" fault holds the answer this long (cut on stop)
SITE = "www.example.com"  # the certificate the deploy flows install
ADMIN_SITE = "intranet.example.net"  # the admin's own certificate, served before ours
# "lost": a write is carried out, then the connection drops before the answer (did it happen?)
KINDS = ("error", "reset", "timeout", "expire", "lost")
STEP_WORDS = ("step", "startup check", "deploy", "clean", "save", "login", "challenge")


# -- running the CLI in-process ------------------------------------------------------------


@dataclass
class Result:
    """What one CLI run produced."""

    status: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """Lines of stderr that report an error (the CLI's one-liner or an ERROR log line)."""
        return [line for line in self.err.splitlines()
                if line.startswith("ERROR:") or ": error:" in line]


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ (dropping every other NS_*), restore afterwards."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("NS_")]:
            del os.environ[key]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> Result:
    """``cli.main(argv)`` with ``env`` as the environment; stdout and stderr captured.

    cli.main points the package logger at the (captured) stderr and stops propagation; that is
    undone afterwards, also when this runs at collection time, outside any test's fixtures.
    """
    out, err = io.StringIO(), io.StringIO()
    logger = logging.getLogger("ns_letsencrypt")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        with patched_environ(env), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            status = cli.main(list(argv))
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    return Result(status, out.getvalue(), err.getvalue())


# -- one appliance and one install for one case --------------------------------------------


@dataclass
class Stage:
    """A fake NetScaler, a scratch directory, the settings environment, a test PKI."""

    fake: FakeNetScaler
    tmp: Path
    hierarchy: pki.Hierarchy
    env: dict[str, str] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)

    def run(self, *argv: str, **env: str) -> Result:
        return run_cli(argv, {**self.env, **env})

    def challenge_objects(self) -> list[str]:
        """Names of our temporary responder objects still on the appliance."""
        names = [str(obj.get("name")) for resource in ("responderpolicy", "responderaction")
                 for obj in self.fake.objects(resource)]
        return sorted(name for name in names if name.startswith(CHALLENGE_PREFIX))

    def issue(self, tag: str, names: Sequence[str]) -> dict[str, Path]:
        """A dehydrated-style certificate directory for ``names`` (new key, new serial)."""
        leaf = pki.make_leaf(self.hierarchy.issuer, list(names))
        files = pki.write_cert_dir(self.tmp / "certs" / tag, leaf, self.hierarchy)
        self.memo.setdefault("serials", {})[tag] = leaf.cert.serial_number
        return files


@contextlib.contextmanager
def staged(hierarchy: pki.Hierarchy, **extra_env: str) -> Iterator[Stage]:
    """A started fake with an HTTP vserver and an SSL vserver, and NS_* settings for it."""
    tmp = Path(tempfile.mkdtemp(prefix="faultmatrix-"))
    try:
        with FakeNetScaler(users={USER: PASSWORD}) as fake:
            fake.add_lbvserver(HTTP_VSERVER)
            fake.add_sslvserver(SSL_VSERVER)
            stage = Stage(fake, tmp, hierarchy)
            stage.env = {
                "NS_LE_HOME": str(tmp),  # no .env or mynsconfig.py from the checkout
                "NS_URL": fake.url,
                "NS_USER": USER,
                "NS_PASSWORD": PASSWORD,
                "NS_TLS_PIN": fake.cert_sha256,
                "NS_VSERVER": HTTP_VSERVER,
                "NS_VSERVER_TYPE": "lb",
                "NS_PREFLIGHT": "off",  # challenge names are not resolvable here
                "NS_TIMEOUT": "5,30",
                "NS_RETRIES": "1",
                **extra_env,
            }
            yield stage
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- checks of desired state ---------------------------------------------------------------


TOKENS = (("a.example.com", "tokA-1xq", "tokA-1xq.thumb"), ("b.example.com", "tokB-2yr",
                                                             "tokB-2yr.thumb"))


def challenge_args() -> list[str]:
    return [item for triple in TOKENS for item in triple]


def challenges_answer(stage: Stage,
                      tokens: tuple[tuple[str, str, str], ...] = TOKENS) -> bool:
    """True when the HTTP data plane answers every challenge with its key authorization."""
    for domain, token, key_authorization in tokens:
        request = urllib.request.Request(
            f"http://127.0.0.1:{stage.fake.dataplane_port}/.well-known/acme-challenge/{token}",
            headers={"Host": domain})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                if answer.read().decode().strip() != key_authorization:
                    return False
        except OSError:
            return False
    return True


def served_certificate(stage: Stage, hostname: str) -> int:
    """Serial of what the TLS data plane serves; it must verify against a test root (and for
    ``hostname``, unless it is empty: either of two certificates may be served)."""
    roots = [stage.hierarchy.root.pem, admin_hierarchy().root.pem]
    context = ssl.create_default_context(cadata=b"".join(roots).decode())
    context.check_hostname = bool(hostname)
    with socket.create_connection(("127.0.0.1", stage.fake.tls_port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=hostname or SITE) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def certkey_with_serial(stage: Stage, serial: int) -> Optional[dict[str, Any]]:
    """The appliance's certkey holding the certificate with this serial, if any."""
    wanted = f"{serial:x}".lstrip("0").upper()
    for certkey in stage.fake.certkeys():
        if str(certkey.get("serial", "")).lstrip("0").upper() == wanted:
            return certkey
    return None


def deploy_args(files: Mapping[str, Path]) -> list[str]:
    """``hook deploy_cert`` arguments as dehydrated passes them."""
    return ["hook", "deploy_cert", SITE, str(files["key"]), str(files["cert"]),
            str(files["fullchain"]), str(files["chain"]), "1700000000"]


# -- the flows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One thing a scheduled run does, as the CLI runs it."""

    name: str
    argv: Callable[[Stage], list[str]]
    done: Callable[[Stage], bool]  # the desired state after a successful run
    prepare: Callable[[Stage], None] = lambda stage: None
    serves_tls: bool = False  # check the TLS data plane after the faulty run
    always_zero: bool = False  # the hook contract says exit 0 even on failure (clean)


def _deployed_challenges(stage: Stage) -> None:
    result = stage.run("hook", "deploy_challenge", *challenge_args())
    assert result.status == 0, result.err


def _admin_certificate_served(stage: Stage) -> None:
    """Before our first deploy the site serves the admin's own certificate (other CA)."""
    admin = admin_hierarchy()
    leaf = pki.make_leaf(admin.issuer, [ADMIN_SITE])
    files = pki.write_cert_dir(stage.tmp / "certs" / "admin", leaf, admin)
    with patched_environ({}):  # set up through NITRO like an admin would, not via our tool
        upload_certkey(stage, "admin-intranet", files)
    stage.fake.bind_certkey(SSL_VSERVER, "admin-intranet")
    stage.memo["hostname"] = ADMIN_SITE
    stage.memo["new"] = stage.issue("A", [SITE])


def _bound_over_admin_certificate(stage: Stage) -> None:
    """The admin's certificate is the SSL vserver's default; NS_BIND lists that vserver."""
    _admin_certificate_served(stage)
    stage.memo["hostname"] = ""  # the admin's certificate, or ours once bound
    stage.env["NS_BIND"] = f"{SITE}={SSL_VSERVER}"


def _bound_over_kept_default(stage: Stage) -> None:
    """As above, on a firmware that keeps the old default bound: the run unbinds it."""
    _bound_over_admin_certificate(stage)
    stage.fake.set_default_bind("keep")


def _bound_and_served(stage: Stage) -> bool:
    admin_kept = any(c["certkey"] == "admin-intranet" for c in stage.fake.certkeys())
    return (_first_deployed(stage) and admin_kept
            and served_certificate(stage, SITE) == stage.memo["serials"]["A"])


def _first_deployed(stage: Stage) -> bool:
    certkey = certkey_with_serial(stage, stage.memo["serials"]["A"])
    return certkey is not None and bool(certkey.get("linkcertkeyname"))


def _old_certificate_served(stage: Stage) -> None:
    """Certificate A is deployed and bound; the renewal brings B (new key, new serial)."""
    first = stage.memo["first"] = stage.issue("A", [SITE])
    result = stage.run(*deploy_args(first))
    assert result.status == 0, result.err
    certkey = certkey_with_serial(stage, stage.memo["serials"]["A"])
    assert certkey is not None
    stage.fake.bind_certkey(SSL_VSERVER, str(certkey["certkey"]))
    stage.memo["hostname"] = SITE
    stage.memo["new"] = stage.issue("B", [SITE])


def _renewal_served(stage: Stage) -> bool:
    return served_certificate(stage, SITE) == stage.memo["serials"]["B"]


OTHER_SITE = "api.example.com"  # a second configured certificate, already up to date


def _stale_certificate_served(stage: Stage) -> None:
    """The appliance serves A, dehydrated has B (its deploy failed); another cert is current."""
    _old_certificate_served(stage)
    certs = stage.tmp / "dehydrated" / "certs"
    leaf = pki.make_leaf(stage.hierarchy.issuer, [SITE])
    stage.memo["serials"]["B"] = leaf.cert.serial_number
    pki.write_cert_dir(certs / SITE, leaf, stage.hierarchy)
    other = pki.make_leaf(stage.hierarchy.issuer, [OTHER_SITE])
    files = pki.write_cert_dir(certs / OTHER_SITE, other, stage.hierarchy)
    stage.memo["serials"]["other"] = other.cert.serial_number
    result = stage.run("deploy", str(files["cert"]), str(files["key"]), str(files["chain"]))
    assert result.status == 0, result.err
    domains = stage.tmp / "dehydrated" / "domains.txt"
    domains.write_text(f"{SITE}\n{OTHER_SITE}\n")
    stage.memo["reconcile"] = ["reconcile", "--domains-txt", str(domains),
                               "--certs-dir", str(certs)]


def _reconciled(stage: Stage) -> bool:
    return (_renewal_served(stage)
            and certkey_with_serial(stage, stage.memo["serials"]["other"]) is not None)


def _changed_and_unsaved(stage: Stage) -> None:
    """dehydrated issued and deploy_cert installed A in this run; exit_hook must save."""
    base = stage.tmp / "dehydrated-run"
    base.mkdir()
    (base / "lock").touch()  # dehydrated's lock: taken when the run started
    _old_certificate_served(stage)
    issued = base / "certs" / SITE
    issued.mkdir(parents=True)
    for name, key in (("cert.pem", "cert"), ("chain.pem", "chain"), ("privkey.pem", "key")):
        shutil.copy(stage.memo["first"][key], issued / name)
    (base / "domains.txt").write_text(f"{SITE}\n")
    stage.env["BASEDIR"] = str(base)
    assert unsaved(stage)


def unsaved(stage: Stage) -> bool:
    items = stage.fake.objects("nsconfig")
    return str(items[0].get("configchanged", "")).lower() in ("true", "yes", "1")


FLOWS: list[Flow] = [
    Flow("startup", lambda s: ["hook", "startup_hook"], lambda s: True),
    Flow("challenge-deploy", lambda s: ["hook", "deploy_challenge", *challenge_args()],
         challenges_answer),
    Flow("challenge-clean", lambda s: ["hook", "clean_challenge", *challenge_args()],
         lambda s: not s.challenge_objects(), prepare=_deployed_challenges, always_zero=True),
    Flow("first-deploy", lambda s: deploy_args(s.memo["new"]), _first_deployed,
         prepare=_admin_certificate_served, serves_tls=True),
    Flow("bind-first-deploy", lambda s: deploy_args(s.memo["new"]), _bound_and_served,
         prepare=_bound_over_admin_certificate, serves_tls=True),
    Flow("bind-unbind-old", lambda s: deploy_args(s.memo["new"]), _bound_and_served,
         prepare=_bound_over_kept_default, serves_tls=True),
    Flow("renewal-deploy", lambda s: deploy_args(s.memo["new"]), _renewal_served,
         prepare=_old_certificate_served, serves_tls=True),
    Flow("reconciliation", lambda s: s.memo["reconcile"], _reconciled,
         prepare=_stale_certificate_served, serves_tls=True),
    Flow("config-save", lambda s: ["hook", "exit_hook", ""], lambda s: not unsaved(s),
         prepare=_changed_and_unsaved, serves_tls=True),
]
FLOWS_BY_NAME = {flow.name: flow for flow in FLOWS}


# -- recording the calls each flow makes ---------------------------------------------------


@dataclass(frozen=True)
class CallRef:
    """The ``nth`` request with this method, resource and action in a flow's clean run."""

    flow: str
    index: int
    method: str
    resource: str
    action: Optional[str]
    nth: int

    @property
    def label(self) -> str:
        text = f"{self.method} {self.resource}"
        return text + (f"?action={self.action}" if self.action else "")


_HIERARCHIES: dict[str, pki.Hierarchy] = {}


def hierarchy() -> pki.Hierarchy:
    """The CA that issues our certificates, one for the module (key generation is slow)."""
    if "ours" not in _HIERARCHIES:
        _HIERARCHIES["ours"] = pki.make_hierarchy("FM")
    return _HIERARCHIES["ours"]


def admin_hierarchy() -> pki.Hierarchy:
    """Another CA: the one that issued the admin's own certificate."""
    if "admin" not in _HIERARCHIES:
        _HIERARCHIES["admin"] = pki.make_hierarchy("ADM")
    return _HIERARCHIES["admin"]


def upload_certkey(stage: Stage, name: str, files: Mapping[str, Path]) -> None:
    """Install a certkey the way an admin would, with plain NITRO calls."""
    import base64

    from ns_letsencrypt.nitro import NitroClient

    client = NitroClient(stage.fake.url, USER, PASSWORD, pin=stage.fake.cert_sha256)
    with client:
        for kind in ("cert", "key", "chain"):
            client.add("systemfile", {
                "filename": f"{name}.{kind}", "filelocation": "/nsconfig/ssl",
                "filecontent": base64.b64encode(files[kind].read_bytes()).decode(),
                "fileencoding": "BASE64"})
        client.add("sslcertkey", {"certkey": f"{name}-ca", "cert": f"{name}.chain"})
        client.add("sslcertkey", {"certkey": name, "cert": f"{name}.cert",
                                  "key": f"{name}.key"})
        client.action("sslcertkey", "link", {"certkey": name, "linkcertkeyname": f"{name}-ca"})


def record(flow: Flow) -> list[CallRef]:
    """Run ``flow`` once without faults; the calls it made, in order."""
    with staged(hierarchy()) as stage:
        flow.prepare(stage)
        mark = len(stage.fake.requests)
        result = stage.run(*flow.argv(stage))
        if result.status != 0 or not flow.done(stage):
            raise AssertionError(f"clean run of flow {flow.name} failed: {result.err}")
        calls: list[CallRef] = []
        seen: collections.Counter[tuple[str, str, Optional[str]]] = collections.Counter()
        for index, request in enumerate(stage.fake.requests[mark:]):
            key = (request.method, request.resource, request.action)
            seen[key] += 1
            calls.append(CallRef(flow.name, index, *key, seen[key]))
        return calls


def _applies(kind: str, call: CallRef) -> bool:
    if kind == "expire":  # there is no session to expire before the login itself
        return call.resource != "login"
    if kind == "lost":
        return call.method != "GET" and call.resource not in ("login", "logout")
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_case" not in metafunc.fixturenames:
        return
    cases = []
    for flow in FLOWS:
        try:
            calls = record(flow)
        except Exception as exc:  # a broken flow must fail loudly, not vanish from the matrix
            cases.append(pytest.param(("record", flow.name, repr(exc)),
                                      id=f"{flow.name}-recording"))
            continue
        for call in calls:
            for kind in KINDS:
                if _applies(kind, call):
                    case_id = (f"{flow.name}-{call.index:02d}-{call.method}-{call.resource}"
                               f"{'-' + call.action if call.action else ''}-{kind}")
                    cases.append(pytest.param((kind, call), id=case_id))
    metafunc.parametrize("fault_case", cases)


# -- the summary table ---------------------------------------------------------------------


SUMMARY: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])


def write_summary(reporter: Any) -> None:
    """The table: survived/cases per flow (rows) and fault kind (columns), then the total.

    ``tests/conftest.py`` calls it from ``pytest_terminal_summary``, after the results.
    """
    if not SUMMARY:
        return
    flows = sorted({flow for flow, _ in SUMMARY}, key=lambda f: [x.name for x in FLOWS].index(f)
                   if f in FLOWS_BY_NAME else 99)
    reporter.write_line("")
    reporter.write_line("fault matrix: survived / cases")
    reporter.write_line(f"{'flow':<20}" + "".join(f"{kind:>12}" for kind in KINDS)
                        + f"{'total':>12}")
    total = [0, 0]
    for flow in flows:
        cells = []
        row = [0, 0]
        for kind in KINDS:
            survived, cases = SUMMARY.get((flow, kind), [0, 0])
            row[0] += survived
            row[1] += cases
            cells.append(f"{survived}/{cases}".rjust(12))
        total[0] += row[0]
        total[1] += row[1]
        reporter.write_line(f"{flow:<20}" + "".join(cells) + f"{row[0]}/{row[1]}".rjust(12))
    reporter.write_line(f"fault matrix: {total[1]} cases, {total[0]} survived")


# -- the matrix ----------------------------------------------------------------------------


def test_fault(fault_case: tuple[Any, ...]) -> None:
    kind, call = fault_case[0], fault_case[1]
    if kind == "record":
        pytest.fail(f"the clean run of flow {call} failed, so its calls are unknown: "
                    f"{fault_case[2]}")
    flow = FLOWS_BY_NAME[call.flow]
    counter = SUMMARY[(flow.name, kind)]
    counter[1] += 1
    with staged(hierarchy()) as stage:
        flow.prepare(stage)
        inject(stage.fake, kind, call)
        result = stage.run(*flow.argv(stage), NS_TIMEOUT=f"5,{READ_TIMEOUT}")
        fired = stage.fake.api.faults[0].fired if stage.fake.api.faults else 0
        stage.fake.clear_faults()
        assert fired == 1, f"the fault on {call.label} #{call.nth} never fired: {result.err}"
        check_faulty_run(stage, flow, call, result)
        check_next_run(stage, flow)
    counter[0] += 1


def inject(fake: FakeNetScaler, kind: str, call: CallRef) -> None:
    """Fail the recorded call in the way ``kind`` names."""
    common: dict[str, Any] = {"method": call.method, "resource": call.resource,
                              "action": call.action, "nth": call.nth}
    if kind == "error":
        fake.inject(**common, kind="error", status=503, errorcode=257,
                    message="Operation not permitted (injected)")
    elif kind == "timeout":
        fake.inject(**common, kind="timeout", delay=FAULT_DELAY)
    elif kind == "lost":
        fake.inject(**common, kind="reset", after=True)
    else:
        fake.inject(**common, kind=kind)


def check_faulty_run(stage: Stage, flow: Flow, call: CallRef, result: Result) -> None:
    """The run failed cleanly and said where, or it really succeeded."""
    for text in (result.out, result.err):
        assert "Traceback" not in text, text
        assert PASSWORD not in text
    if flow.always_zero:
        assert result.status == 0, result.err
    elif result.status == 0:
        assert flow.done(stage), (
            f"exit 0 although {call.label} failed and the desired state was not reached:\n"
            f"{result.err}")
        return
    if result.status != 0:
        assert result.error_lines, f"no error line on stderr:\n{result.err}"
        final = result.error_lines[-1]
        assert names_step(final, call) or any(names_step(line, call)
                                              for line in result.error_lines), result.err
    if flow.serves_tls:
        assert served_certificate(stage, stage.memo["hostname"]) is not None


def names_step(line: str, call: CallRef) -> bool:
    """True when an error line says which step or which NITRO call failed."""
    lowered = line.lower()
    return call.resource.lower() in lowered or any(word in lowered for word in STEP_WORDS)


def check_next_run(stage: Stage, flow: Flow) -> None:
    """The next ordinary run converges, and its exit_hook leaves no challenge object."""
    if flow.name != "challenge-clean":
        result = stage.run(*flow.argv(stage))
        assert result.status == 0, f"the next run did not converge:\n{result.err}"
        assert flow.done(stage), f"the next run exited 0 but did not converge:\n{result.err}"
    if flow.name == "challenge-deploy":
        stage.run("hook", "clean_challenge", *challenge_args())
    result = stage.run("hook", "exit_hook", "")
    assert "Traceback" not in result.err
    assert stage.challenge_objects() == [], result.err


# -- a few cases through the real hook script ----------------------------------------------


def run_hook_script(stage: Stage, *args: str) -> Result:
    """``bash hooks/ns-hook.sh ARGS`` as dehydrated runs it, with the stage's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NS_")}
    env.update(stage.env, NS_LE_PYTHON=sys.executable)
    done = subprocess.run(["bash", str(HOOK), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


HOOK_CASES = [
    # (flow, fault: method, resource, action, kind, times; expected exit status)
    # the bulk add fails as a whole, then each item resent alone fails too: a challenge error
    ("challenge-deploy", ("POST", "responderpolicy", None, "error", 3), 7),
    ("challenge-deploy", ("PUT", "lbvserver_responderpolicy_binding", None, "expire", 1), 0),
    ("renewal-deploy", ("POST", "sslcertkey", "update", "error", 1), 8),
    ("startup", ("POST", "login", None, "reset", 5), 3),
]


@pytest.mark.parametrize(("flow_name", "fault", "expected"), HOOK_CASES,
                         ids=[f"{c[0]}-{c[1][1]}-{c[1][3]}" for c in HOOK_CASES])
def test_fault_through_hook_script(flow_name: str, fault: tuple[Any, ...], expected: int) -> None:
    flow = FLOWS_BY_NAME[flow_name]
    method, resource, action, kind, times = fault
    with staged(hierarchy()) as stage:
        flow.prepare(stage)
        stage.fake.inject(method=method, resource=resource, action=action, kind=kind,
                          times=times, status=503 if kind == "error" else None)
        argv = flow.argv(stage)[1:]  # without "hook": the script adds it
        result = run_hook_script(stage, *argv)
        stage.fake.clear_faults()
        assert result.status == expected, result.err
        assert "Traceback" not in result.err and PASSWORD not in result.err + result.out
        if expected:
            assert result.error_lines, result.err
        else:
            assert flow.done(stage)
        if flow.serves_tls:
            assert served_certificate(stage, stage.memo["hostname"]) in (
                stage.memo["serials"]["A"], stage.memo["serials"]["B"])
        assert run_hook_script(stage, *argv).status == 0
        assert flow.done(stage)
        assert run_hook_script(stage, "exit_hook", "").status == 0
