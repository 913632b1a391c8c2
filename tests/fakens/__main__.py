"""Run the fake NetScaler standalone, e.g. for a demo or for poking at it with curl.

Start it by hand from the repository root::

    FAKENS_PASSWORD=secret python -m tests.fakens --lbvserver web --port-http 8080

It prints one JSON line when ready (``url``, ``http_url``, ``cert_file``, ``cert_sha256``,
``dataplane_port``, ``tls_port`` if available, ``pid``) and serves until SIGTERM or SIGINT.
Try::

    curl -s --cacert <cert_file> -H 'X-NITRO-USER: nsroot' -H 'X-NITRO-PASS: secret' \\
        <url>/nitro/v1/config/nsversion

Passwords never come from the command line: the ``nsroot`` password is read from
``--password-file`` or ``$FAKENS_PASSWORD`` (default ``nsroot``, the factory default);
further users come from ``--users-file`` (lines ``name:password``). Command policies for a
user are given with ``--policy user=ALLOW:regex`` (repeatable, in priority order).
``--sslvserver NAME[:sni]`` adds an SSL vserver (``:sni`` with SNI enabled) with its own TLS
port (``vserver_ports`` in the ready line); the first one is also what ``tls_port`` serves.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Optional

from tests.fakens import FakeNetScaler


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakens",
        description="Fake NetScaler (NITRO over HTTP and HTTPS, HTTP data plane) on 127.0.0.1.",
        epilog="The nsroot password comes from --password-file or $FAKENS_PASSWORD, never argv.")
    parser.add_argument("--password-file", type=Path, help="file holding the nsroot password")
    parser.add_argument("--users-file", type=Path,
                        help="extra users, one 'name:password' per line")
    parser.add_argument("--policy", action="append", default=[], metavar="USER=ALLOW:REGEX",
                        help="command policy for USER (repeatable, first match wins)")
    parser.add_argument("--lbvserver", action="append", default=[],
                        metavar="NAME[:TYPE[:PORT[:STATE]]]", help="add an lb vserver")
    parser.add_argument("--csvserver", action="append", default=[],
                        metavar="NAME[:TYPE[:PORT[:STATE]]]", help="add a cs vserver")
    parser.add_argument("--sslvserver", action="append", default=[], metavar="NAME[:sni]",
                        help="add an SSL vserver (':sni': SNI enabled); the first one is also "
                             "what tls_port serves")
    parser.add_argument("--ha-state", default="Primary", help="state of node 0 (Primary)")
    parser.add_argument("--ha-peer", action="store_true", help="model an HA pair")
    parser.add_argument("--responder-disabled", action="store_true",
                        help="start with the RESPONDER feature disabled")
    parser.add_argument("--no-header-auth", action="store_true",
                        help="refuse X-NITRO-USER/X-NITRO-PASS (401/1244)")
    parser.add_argument("--no-bulk-remove", action="store_true",
                        help="answer bulk ?action=rm/unbind with 400/1240")
    parser.add_argument("--version-string", help="what GET nsversion reports")
    parser.add_argument("--port-http", type=int, default=0, help="NITRO over HTTP (0 = random)")
    parser.add_argument("--port-https", type=int, default=0, help="NITRO over HTTPS")
    parser.add_argument("--port-dataplane", type=int, default=0, help="HTTP data plane")
    return parser.parse_args(argv)


def read_users(args: argparse.Namespace) -> dict[str, str]:
    if args.password_file:
        password = args.password_file.read_text().strip()
    else:
        password = os.environ.get("FAKENS_PASSWORD", "nsroot")
    users = {"nsroot": password}
    if args.users_file:
        for line in args.users_file.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, _, secret = line.partition(":")
                users[name.strip()] = secret
    return users


def vserver_spec(text: str) -> dict[str, Any]:
    parts = text.split(":")
    spec: dict[str, Any] = {"name": parts[0]}
    for key, value in zip(("servicetype", "port", "state"), parts[1:]):
        spec[key] = int(value) if key == "port" else value
    return spec


def build(args: argparse.Namespace) -> FakeNetScaler:
    fake = FakeNetScaler(
        read_users(args), header_auth=not args.no_header_auth,
        bulk_remove=not args.no_bulk_remove, ha_state=args.ha_state, ha_peer=args.ha_peer,
        responder_enabled=not args.responder_disabled, version=args.version_string,
        http_port=args.port_http, https_port=args.port_https,
        dataplane_port=args.port_dataplane)
    for spec in args.lbvserver:
        fake.add_lbvserver(**vserver_spec(spec))
    for spec in args.csvserver:
        fake.add_csvserver(**vserver_spec(spec))
    for spec in args.sslvserver:
        name, _, flag = spec.partition(":")
        fake.add_sslvserver(name, sni=flag.lower() == "sni")
    policies: dict[str, list[tuple[str, str]]] = {}
    for item in args.policy:
        user, _, rule = item.partition("=")
        verdict, _, regex = rule.partition(":")
        policies.setdefault(user, []).append((verdict.upper(), regex))
    for user, rules in policies.items():
        fake.add_user(user, fake.state.users.get(user, ""), policies=rules)
    return fake


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with build(args) as fake:
        ready = {"url": fake.url, "http_url": fake.http_url, "cert_file": str(fake.cert_file),
                 "cert_sha256": fake.cert_sha256, "dataplane_port": fake.dataplane_port,
                 "tls_port": getattr(fake, "tls_port", None), "pid": os.getpid(),
                 "vserver_ports": {name: fake.vserver_port(name) for name in
                                   (spec.partition(":")[0] for spec in args.sslvserver)}}
        print(json.dumps(ready), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
