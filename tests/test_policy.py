"""`ns-letsencrypt policy`: the regex allows what the tool sends and nothing outside its prefixes.

The end-to-end test runs issuance and renewal (with a new issuer, so certkeys are relinked and
the old intermediate removed) as a user restricted by the generated policy, with the fake
NetScaler enforcing it, then checks that every command of the run matches the regex (rendered
from the fake's request log the way the appliance renders them) and that an operation outside
the prefixes is refused with a clear error (the command, the hint) and exit status 4.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Callable

import pytest

from ns_letsencrypt import challenge, cleanup, cli, deploy
from ns_letsencrypt.challenge import Challenge
from ns_letsencrypt.config import Settings
from ns_letsencrypt.errors import NitroPermissionError
from ns_letsencrypt.nitro import NitroClient
from ns_letsencrypt.policy import Scope, command_regex
from tests.conftest import PASSWORD, USER, fake_settings
from tests.fakens.api import parse_kv
from tests.fakens.core import HANDLERS, Call
from tests.pki import Hierarchy, make_hierarchy, make_leaf, write_cert_dir

pytest_plugins = ["tests.stack"]

API_USER = "le-api"
API_PASSWORD = "Api-pw-9c1e!"
SCOPE = Scope(vserver="web")

DENIED = [
    "rm ssl certKey other-cert",
    "add ssl certKey other-cert -cert other.crt -key other.key",
    "update ssl certKey le-www -cert /etc/passwd -key le-www.key",
    "link ssl certKey other-cert le-int",
    "add responder policy admin-pol true admin-act",
    "rm responder action admin-act",
    "bind lb vserver other-vs -policyName le-acme-x-pol -priority 10",
    "bind lb vserver web -policyName admin-pol -priority 10",
    "unbind lb vserver web -policyName admin-pol",
    "bind responder global le-acme-x-pol 10 END -type REQ_OVERRIDE",
    "rm system file x -fileLocation /nsconfig",
    "rm system file le-x -fileLocation /nsconfig",
    "add system file le-x -fileLocation /etc",
    "rm system file le-x -fileLocation /nsconfig/ssl/../../etc",
    "add system file le-x -fileLocation /nsconfig/ssl2",
    "add system file le-x -fileLocation ./nsconfig/ssl",
    "add system user evil -password x",
    "set ns config -IPAddress 10.0.0.1",
    "shell rm -rf /",
    "rm lb vserver web",
    "enable ns feature RESPONDER",
]


# Adopted certkeys (NS_CERTKEY_NAMES), a vserver whose name has a space (the CLI quotes it).
WIDE = Scope(vserver="vs http", adopted=("web-cert", "old#ck"))
TAG = "0123456789ab"  # a file generation tag as deploy.py writes it (TAG_LEN hex digits)

# Renderings the tool's calls may take on a real appliance (§8.2: argument order and further
# arguments unconfirmed), all of which must pass.
WIDE_ALLOWED = [
    "add system file le-x.crt -fileLocation /nsconfig/ssl -fileContent LS0tLS1CRUdJTg== "
    "-fileEncoding BASE64",
    "add system file le-x.crt -fileContent LS0t -fileEncoding BASE64 -fileLocation /nsconfig/ssl",
    'add system file le-x.crt -fileLocation "/nsconfig/ssl/" -fileEncoding BASE64',
    "rm system file le-x.key -fileLocation /nsconfig/ssl",
    "show system file -fileName le-x.crt -fileLocation /nsconfig/ssl",
    "show system file -fileLocation /nsconfig/ssl",
    "add ssl certKey le-www -cert le-www-1.crt -key le-www-1.key -inform PEM "
    "-expiryMonitor ENABLED -notificationPeriod 30",
    "add ssl certKey le-www -inform PEM -key le-www-1.key -cert le-www-1.crt",
    "update ssl certKey le-www -cert le-www-2.crt -key le-www-2.key -inform PEM -noDomainCheck",
    "unbind responder global le-acme-1-pol -type REQ_OVERRIDE -priority 10",
    # adopted certkeys and the files deploy names after them (naming.file_name sanitises '#')
    f"update ssl certKey web-cert -cert web-cert-{TAG}.crt -key web-cert-{TAG}.key",
    f"add ssl certKey web-cert -cert web-cert-{TAG}.crt -key web-cert-{TAG}.key -inform PEM",
    "link ssl certKey web-cert le-R11-0a1b2c3d",
    "unlink ssl certKey web-cert",
    "rm ssl certKey web-cert",  # the rollback of a failed first add
    f"add system file web-cert-{TAG}.crt -fileLocation /nsconfig/ssl -fileContent LS0t",
    f"rm system file web-cert-{TAG}.key -fileLocation /nsconfig/ssl",
    f"update ssl certKey old#ck -cert old_ck-{TAG}.crt -key old_ck-{TAG}.key",
    f"rm system file old_ck-{TAG}.crt -fileLocation /nsconfig/ssl",
    # an installed intermediate reused under a name with spaces (NITRO 273 names it)
    'link ssl certKey le-www "R11 admin CA"',
    "link ssl certKey web-cert R11-admin",
    'show ssl certKey "R11 admin CA"',
    # the vserver name with a space, quoted
    'show lb vserver "vs http"',
    'bind lb vserver "vs http" -policyName le-acme-1-pol -priority 10 '
    "-gotoPriorityExpression END",
    'bind lb vserver "vs http" -priority 10 -policyName le-acme-1-pol -type REQUEST',
    'unbind lb vserver "vs http" -policyName le-acme-1-pol',
]

# Near misses: another object, file, directory or vserver hidden in the added freedom.
WIDE_DENIED = [
    "add system file other.crt -fileLocation /nsconfig/ssl -fileContent LS0t",
    "add system file le-x.crt -fileLocation /etc -fileContent LS0t",
    "add system file le-x.crt -fileContent LS0t -fileLocation /etc",
    "add system file le-x.crt -fileLocation /nsconfig/ssl -fileLocation /etc",
    'add system file le-x.crt -fileLocation "/nsconfig/ssl -fileContent /../../etc"',
    "add system file le-x.crt -fileLocation /nsconfig/ssl#x -fileContent LS0t",
    "add system file le-x.crt -fileLocation /nsconfig/ssl -fileName other.crt",
    "show system file other.key -fileLocation /nsconfig/ssl",
    "show system file -fileName other.key -fileLocation /nsconfig/ssl",
    "add ssl certKey le-www -cert le-www.crt -key ns-server.key",
    "update ssl certKey le-www -cert le-www.crt -key le-www.key -key ns-server.key",
    "update ssl certKey le-www -cert le-www.crt -inform ns-server.key -key ns-server.key",
    "add ssl certKey le-www -cert le-www.crt -bundle YES",
    "update ssl certKey le-www other-ck -cert le-www.crt",
    "unbind responder global admin-pol -type REQ_OVERRIDE",
    "unbind responder global le-acme-1-pol -type REQ_OVERRIDE admin-pol",
    # adopted names are literal: no prefix match, no other file of theirs
    f"update ssl certKey web-cert2 -cert web-cert-{TAG}.crt",
    f"update ssl certKey web -cert web-cert-{TAG}.crt",
    "update ssl certKey web-cert -cert web-cert.crt -key web-cert.key",
    "rm system file web-cert.crt -fileLocation /nsconfig/ssl",
    f"rm system file web-cert-{TAG}.pem -fileLocation /nsconfig/ssl",
    f"rm system file web-cert-{TAG}.crt -fileLocation /flash/nsconfig/ssl",
    f"rm system file other-{TAG}.crt -fileLocation /nsconfig/ssl",
    # a reused intermediate may be linked to, never changed or removed
    'link ssl certKey "R11 admin CA" le-www',
    "link ssl certKey R11-admin le-int",
    'unlink ssl certKey "R11 admin CA"',
    'rm ssl certKey "R11 admin CA"',
    "rm ssl certKey R11-admin",
    'update ssl certKey "le-www x" -cert le-www.crt',
    'link ssl certKey le-www "R11 admin CA" extra',
    'link ssl certKey le-www "a" -b "c"',
    # the vserver: that one name only, with or without quotes, and one policy of ours
    'bind lb vserver "vs http2" -policyName le-acme-1-pol',
    "bind lb vserver vs -policyName le-acme-1-pol",
    'bind lb vserver "vs http#" -policyName le-acme-1-pol',
    'bind lb vserver "vs http" -policyName le-acme-1-pol -policyName admin-pol',
    'bind lb vserver "vs http" -policyName admin-pol -priority 10',
    'bind lb vserver "vs http -policyName le-acme-x" -policyName admin-pol',
    'bind lb vserver "vs http" -policyName le-acme-1-pol -invoke policylabel admin-label',
    'bind cs vserver "vs http" -policyName le-acme-1-pol',
]


def allowed(regex: str, command: str) -> bool:
    return re.search(regex, command, re.IGNORECASE) is not None


def rendered(records: Sequence[Any]) -> list[str]:
    """Every request as the CLI command the appliance matches (one per bulk item)."""
    commands = []
    for rec in records:
        if rec.resource in ("login", "logout"):
            continue
        registration = HANDLERS[(rec.method, rec.resource, rec.action)]
        payload = rec.body.get(rec.resource) if isinstance(rec.body, dict) else None
        for item in payload if isinstance(payload, list) else [payload]:
            call = Call(method=rec.method, resource=rec.resource, name=rec.name,
                        action=rec.action, args=parse_kv(rec.query.get("args", "")),
                        filter=parse_kv(rec.query.get("filter", "")), attrs=None, body=item,
                        user=rec.user or "")
            commands.append(registration.cli(call))
    return commands


def restrict(fake: Any, scope: Scope = SCOPE) -> None:
    fake.add_user(API_USER, API_PASSWORD, policies=[("ALLOW", command_regex(scope))])


@pytest.mark.parametrize("command", DENIED)
def test_regex_refuses_commands_outside_the_prefixes(command: str) -> None:
    assert not allowed(command_regex(SCOPE), command)


@pytest.mark.parametrize("command", WIDE_ALLOWED)
def test_regex_allows_other_renderings_adopted_certkeys_and_quoted_names(command: str) -> None:
    assert allowed(command_regex(WIDE), command)


@pytest.mark.parametrize("command", WIDE_DENIED + DENIED)
def test_widened_regex_still_refuses_near_misses(command: str) -> None:
    assert not allowed(command_regex(WIDE), command)


def test_scope_takes_adopted_certkeys_from_the_settings() -> None:
    settings = Settings(url="https://127.0.0.1", username=USER, password=PASSWORD,
                        vserver="vs http", certkey_names={"www.example.test": "web-cert",
                                                          "example.test": "web-cert",
                                                          "old.example.test": "old#ck"})
    assert Scope.from_settings(settings).adopted == ("old#ck", "web-cert")


def test_regex_has_no_backslash_or_quote_and_escapes_the_configuration() -> None:
    scope = Scope(certkey_prefix="le.", challenge_prefix="le.acme.", vserver="vs.web",
                  adopted=("web.ck",))
    regex = command_regex(scope)

    assert "\\" not in regex and '"' not in regex
    assert '"' not in command_regex(WIDE) and "\\" not in command_regex(WIDE)
    assert allowed(regex, "unlink ssl certKey web.ck")
    assert not allowed(regex, "unlink ssl certKey webXck")
    assert allowed(regex, "rm ssl certKey le.www")
    assert not allowed(regex, "rm ssl certKey leXwww")
    assert not allowed(regex, "bind lb vserver vsXweb -policyName le.acme.1-pol -priority 10")
    assert allowed(regex, 'add system file le.x -fileLocation "/nsconfig/ssl/"')


def test_policy_command_prints_the_cli_commands(fake_env: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["policy", "--api-user", API_USER])
    out = capsys.readouterr().out

    assert code == 0
    commands = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert commands[0] == f'add system cmdPolicy ns-letsencrypt ALLOW "{command_regex(SCOPE)}"'
    assert commands[1:] == [
        f"add system user {API_USER} -externalAuth DISABLED -allowedManagementInterface API "
        "-timeout 900",
        f"bind system user {API_USER} ns-letsencrypt 10",
        "save ns config",
    ]
    assert PASSWORD not in out and "-password" not in out


def test_policy_uses_flags_when_the_configuration_is_incomplete(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NS_LE_HOME", str(tmp_path))

    code = cli.main(["--vserver", "cs-front", "--vserver-type", "cs", "policy", "--json"])

    assert code == 0
    assert "-policyName" in capsys.readouterr().out
    assert allowed(command_regex(Scope(vserver="cs-front", vserver_type="cs")),
                   "bind cs vserver cs-front -policyName le-acme-1-pol -priority 10")


@pytest.mark.parametrize("kind, vserver", [("lb", "web"), ("lb", "vs http"), ("cs", "csweb"),
                                           ("global", None)])
def test_challenges_and_cleanup_run_as_the_restricted_user(fake: Any, kind: str,
                                                           vserver: Any) -> None:
    if kind == "cs":
        fake.add_csvserver("csweb", servicetype="HTTP", port=80, state="UP")
    if vserver == "vs http":
        fake.add_lbvserver("vs http", servicetype="HTTP", port=8080, state="UP")
    restrict(fake, Scope(vserver=vserver or "", vserver_type=kind))
    settings = fake_settings(fake, username=API_USER, password=API_PASSWORD, vserver=vserver,
                             vserver_type=kind)
    challenges = [Challenge("www.example.test", "T" * 43, "T" * 43 + ".k")]
    with NitroClient(fake.url, API_USER, API_PASSWORD, pin=fake.cert_sha256) as client:
        challenge.deploy(client, settings, challenges)
        assert not challenge.clean(client, settings, challenges)
        challenge.deploy(client, settings, challenges)
        assert challenge.sweep(client, settings)  # leftovers are swept
        plan = cleanup.make_plan(client, settings, staging=True)
        assert not cleanup.execute(client, settings, plan)
    assert [r for r in fake.requests if r.status == 403] == []
    assert fake.objects("responderpolicy") == []


def test_issuance_and_renewal_as_the_restricted_user(
        acme: Any, ns: Any, pebble_factory: Callable[..., Any]) -> None:
    restrict(ns)
    password_file = acme.tmp / "api-password"
    password_file.write_text(API_PASSWORD + "\n")
    password_file.chmod(0o600)
    acme.env.update({"NS_USER": API_USER, "NS_PASSWORD_FILE": str(password_file)})
    names = ("-d", "www.example.test", "-d", "example.test")

    acme.run_dehydrated("-c", *names, hook_chain="yes")
    acme.use_pebble(pebble_factory())  # a new CA: the renewal relinks, the old chain stays
    acme.run_dehydrated("-c", "-x", *names, hook_chain="no")
    linked = {ck.get("linkcertkeyname") for ck in ns.certkeys()}
    unused = [ck["certkey"] for ck in ns.certkeys()
              if "key" not in ck and ck["certkey"] not in linked]
    assert unused  # the old intermediate: valid, so kept for a later renewal
    removed = subprocess.run(  # cleanup removes it, as the same restricted user
        [sys.executable, "-m", "ns_letsencrypt", "cleanup", "--yes"],
        env={**acme.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not set(unused) & {ck["certkey"] for ck in ns.certkeys()}

    refused = [r for r in ns.requests if r.status == 403]
    assert refused == [], rendered(refused)
    commands = rendered([r for r in ns.requests if r.user == API_USER])
    regex = command_regex(SCOPE)
    assert [c for c in commands if not allowed(regex, c)] == []
    verbs = {" ".join(c.split()[:3]) for c in commands}
    assert {"add system file", "rm system file", "add ssl certKey", "update ssl certKey",
            "link ssl certKey", "unlink ssl certKey", "rm ssl certKey", "bind lb vserver",
            "unbind lb vserver", "save ns config"} <= verbs
    certkeys = {ck["certkey"]: ck for ck in ns.certkeys()}
    assert "Pebble Intermediate" in certkeys["le-www.example.test"]["issuer"]

    # Outside the prefix: an orphaned intermediate under an old prefix. After NS_CERTKEY_PREFIX
    # changed (but not the policy), cleanup wants to remove it; the appliance refuses, and the
    # tool names the refused command, points at the policy command and exits 4.
    add_ca_as_nsroot(ns, "old-int", make_hierarchy("OLD").issuer)
    result = subprocess.run(
        [sys.executable, "-m", "ns_letsencrypt", "cleanup", "--yes"],
        env={**acme.env, "PATH": "/usr/bin:/bin", "NS_CERTKEY_PREFIX": "old-"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "errorcode 2138" in result.stderr
    assert "[rm ssl certKey old-int]" in result.stderr
    assert "ns-letsencrypt policy" in result.stderr  # the hint
    assert API_PASSWORD not in result.stdout + result.stderr
    assert "old-int" in {ck["certkey"] for ck in ns.certkeys()}
    with NitroClient(ns.url, API_USER, API_PASSWORD, pin=ns.cert_sha256) as client:
        with pytest.raises(NitroPermissionError) as denied:
            client.delete("sslcertkey", "ns-server-certificate")
    assert denied.value.command == "rm ssl certKey ns-server-certificate"


def issue(tmp: Any, hierarchy: Hierarchy, names: list[str]) -> dict[str, Any]:
    """A dehydrated-style certificate directory for ``names``, signed by ``hierarchy``."""
    leaf = make_leaf(hierarchy.issuer, names)
    return write_cert_dir(tmp / f"{names[0]}-{leaf.cert.serial_number}", leaf, hierarchy)


def deploy_as_restricted(fake: Any, settings: Settings, files: dict[str, Any],
                         late_ca: Any = None) -> deploy.DeployResult:
    """One deploy of ``files``; ``late_ca`` appears as nsroot's after the inventory was read."""
    with NitroClient(fake.url, API_USER, API_PASSWORD, pin=fake.cert_sha256) as client:
        deployer = deploy.Deployer(client, settings)
        assert deployer.inventory is not None
        if late_ca is not None:
            add_ca_as_nsroot(fake, *late_ca)
        bundle = deploy.load_bundle(str(files["key"]), str(files["cert"]), str(files["chain"]),
                                    "www.example.test")
        return deployer.deploy(bundle)


@pytest.mark.parametrize("late", [False, True], ids=["listed", "named-by-273"])
def test_adopted_certkey_linked_to_a_reused_intermediate_as_the_restricted_user(
        fake: Any, tmp_path: Any, late: bool) -> None:
    """NS_CERTKEY_NAMES adopts "web-cert"; nsroot installed the intermediate as "R11 admin CA"."""
    hierarchy = make_hierarchy("P")
    settings = fake_settings(fake, username=API_USER, password=API_PASSWORD,
                             certkey_names={"www.example.test": "web-cert"})
    restrict(fake, Scope.from_settings(settings))
    foreign = ("R11 admin CA", hierarchy.issuer)
    if not late:
        add_ca_as_nsroot(fake, *foreign)

    first = deploy_as_restricted(fake, settings, issue(tmp_path, hierarchy, ["www.example.test"]),
                                 foreign if late else None)
    renewed = deploy_as_restricted(fake, settings, issue(tmp_path, hierarchy,
                                                         ["www.example.test"]))

    assert [r for r in fake.requests if r.status == 403] == []
    assert (first.action, renewed.action) == ("added", "updated")
    assert renewed.chain == ["R11 admin CA"]
    certkeys = {ck["certkey"]: ck for ck in fake.certkeys()}
    assert certkeys["web-cert"]["linkcertkeyname"] == "R11 admin CA"
    assert not [name for name in certkeys if name.startswith("le-")]  # no CA certkey of ours
    # the first generation's files were removed by the restricted user, the new ones serve
    ours = {f for f in fake.files() if f.startswith("web-cert-")}
    assert ours == {certkeys["web-cert"]["cert"], certkeys["web-cert"]["key"]}
    commands = rendered([r for r in fake.requests if r.user == API_USER])
    assert 'link ssl certKey web-cert "R11 admin CA"' in commands
    assert any(c.startswith("rm system file web-cert-") for c in commands)


def add_ca_as_nsroot(fake: Any, name: str, ca: Any) -> None:
    with NitroClient(fake.url, USER, PASSWORD, pin=fake.cert_sha256) as client:
        client.add("systemfile", {"filename": f"{name.replace(' ', '_')}.crt",
                                  "filelocation": "/nsconfig/ssl",
                                  "filecontent": base64.b64encode(ca.pem).decode(),
                                  "fileencoding": "BASE64"})
        client.add("sslcertkey", {"certkey": name, "cert": f"{name.replace(' ', '_')}.crt",
                                  "inform": "PEM"})
