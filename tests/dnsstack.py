"""DNS-01 test stack: a real BIND per test (Debian ``bind9``) and a pebble that validates against a
DNS server of the test's choice (BIND, or the fake NetScaler's ADNS data plane).

``Bind(workdir)``: a fresh zone ``example.test`` on a free loopback port (UDP+TCP), a TSIG key
made with ``tsig-keygen`` (key file mode 600) that may update TXT records only (or what
``policy`` grants), recursion off, rndc off; ``stop()`` terminates it. ``txt(name)`` reads the
values a name has; ``all_txt()`` lists every TXT record of the zone (zone transfer).

``DnsPebble(workdir, http_port, dns_port)``: pebble with ``-dnsserver 127.0.0.1:<dns_port>`` and
no challtestsrv; a test that also validates http-01 names serves their A records there.
The recipe is ``research/dns01.md`` §5.2.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Optional

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.zone

from tests.stack import Pebble, free_port, spawn, stop, wait_until

NAMED = shutil.which("named") or "/usr/sbin/named"
TSIG_KEYGEN = shutil.which("tsig-keygen") or "/usr/sbin/tsig-keygen"
ZONE = "example.test"


def bind_missing() -> Optional[str]:
    """Why BIND cannot run here, or None."""
    for tool in (NAMED, TSIG_KEYGEN):
        if not Path(tool).exists():
            return f"{tool} is missing (apt-get install bind9 bind9-utils; tools/install-deps.sh)"
    return None


def serve(launch: Callable[[], subprocess.Popen[bytes]], answers: Callable[[], bool],
          name: str) -> subprocess.Popen[bytes]:
    """Start a DNS server with ``launch`` (which picks a free port) until it ``answers``; up to
    three tries, since another process may take the port between free_port and the bind."""
    for attempt in range(3):
        proc = launch()
        try:
            wait_until(answers, proc, name)
            return proc
        except BaseException:
            stop(proc)
            if attempt == 2:
                raise
    raise AssertionError("not reached")


class ZoneServer:
    """What the test servers share: one zone on a loopback port, the process serving it."""

    zone: str
    port: int
    _proc: Optional[subprocess.Popen[bytes]]

    def stop(self) -> None:
        stop(self._proc)

    def _answers(self) -> bool:
        query = dns.message.make_query(self.zone, "SOA")
        try:
            return bool(dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.3).answer)
        except dns.exception.DNSException:
            return False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Bind(ZoneServer):
    """One named process serving one fresh zone."""

    def __init__(self, workdir: Path, *, zone: str = ZONE,
                 policy: str = "grant acme-key zonesub TXT;") -> None:
        self.dir = workdir
        self.zone = zone
        self.policy = policy
        self.port = 0
        self.key_file = workdir / "acme-key.conf"
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> Bind:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key_file.write_bytes(subprocess.run(
            [TSIG_KEYGEN, "-a", "hmac-sha256", "acme-key"], check=True,
            capture_output=True).stdout)
        self.key_file.chmod(0o600)
        zone_file = self.dir / f"{self.zone}.zone"
        zone_file.write_text(
            "$TTL 60\n"
            f"@ IN SOA ns1.{self.zone}. hostmaster.{self.zone}. ( 1 60 60 600 5 )\n"
            f"@ IN NS ns1.{self.zone}.\n"
            "ns1 IN A 127.0.0.1\n")

        def launch() -> subprocess.Popen[bytes]:
            self.port = free_port(udp_too=True)
            conf = self._write_conf(zone_file)
            return spawn([NAMED, "-g", "-c", str(conf)], self.dir / "named.log")

        self._proc = serve(launch, self._answers, "named")
        return self

    def _write_conf(self, zone_file: Path) -> Path:
        conf = self.dir / "named.conf"
        conf.write_text(
            f'include "{self.key_file}";\n'
            "options {\n"
            f'  directory "{self.dir}";\n'
            f'  pid-file "{self.dir}/named.pid";\n'
            f'  session-keyfile "{self.dir}/session.key";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion no; allow-query { any; }; dnssec-validation no; notify no;\n"
            "  allow-transfer { 127.0.0.1; };\n"
            "};\n"
            "controls { };\n"
            f'zone "{self.zone}" {{ type primary; file "{zone_file}"; '
            f"update-policy {{ {self.policy} }}; }};\n")
        return conf

    def txt(self, name: str) -> set[str]:
        answer = dns.query.tcp(dns.message.make_query(name, "TXT"), "127.0.0.1",
                               port=self.port, timeout=2)
        return {s.decode() for rrset in answer.answer for rdata in rrset for s in rdata.strings}

    def all_txt(self) -> list[tuple[str, str]]:
        """Every TXT record of the zone, by zone transfer."""
        zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", self.zone, port=self.port,
                                               timeout=5))
        return sorted((str(name), s.decode())
                      for name, rdataset in zone.iterate_rdatasets(dns.rdatatype.TXT)
                      for rdata in rdataset for s in rdata.strings)


class DnsPebble(Pebble):
    """pebble resolving (and validating dns-01) through one given DNS server."""

    def __init__(self, workdir: Path, http_port: int, dns_port: int) -> None:
        super().__init__(workdir, http_port)
        self.dns_port = dns_port

    def _start_dns(self) -> None:
        """Nothing to start: the test's own DNS server answers pebble."""


PDNS_SERVER = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
PDNSUTIL = shutil.which("pdnsutil") or "/usr/bin/pdnsutil"
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
PDNS_API_KEY = "pdns-api-key-for-tests"


def powerdns_missing() -> Optional[str]:
    """Why PowerDNS cannot run here, or None."""
    for path in (Path(PDNS_SERVER), Path(PDNSUTIL), PDNS_SCHEMA):
        if not path.exists():
            return (f"{path} is missing (apt-get install pdns-server pdns-backend-sqlite3; "
                    "tools/install-deps.sh)")
    return None


class PowerDns(ZoneServer):
    """A PowerDNS authoritative server (sqlite backend) with its HTTP API, for lexicon's
    ``powerdns`` provider: DNS on ``port`` (UDP+TCP), the API on ``api_url``. Caches are off,
    so an API change is visible to the next query."""

    def __init__(self, workdir: Path, *, zone: str = ZONE) -> None:
        self.dir = workdir
        self.zone = zone
        self.port = 0
        self.api_url = ""
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> PowerDns:
        import sqlite3

        self.dir.mkdir(parents=True, exist_ok=True)
        database = self.dir / "pdns.sqlite3"
        with sqlite3.connect(database) as db:
            db.executescript(PDNS_SCHEMA.read_text())
        zone_created = False

        def launch() -> subprocess.Popen[bytes]:
            nonlocal zone_created
            self.port, api_port = free_port(udp_too=True), free_port()
            self.api_url = f"http://127.0.0.1:{api_port}"
            (self.dir / "pdns.conf").write_text("\n".join([
                "launch=gsqlite3", f"gsqlite3-database={database}",
                "local-address=127.0.0.1", f"local-port={self.port}",
                "api=yes", f"api-key={PDNS_API_KEY}", "webserver=yes",
                "webserver-address=127.0.0.1", f"webserver-port={api_port}",
                "webserver-allow-from=127.0.0.1/32", f"socket-dir={self.dir}",
                "cache-ttl=0", "negquery-cache-ttl=0", "query-cache-ttl=0",
                "zone-cache-refresh-interval=0", "disable-syslog=yes", "guardian=no",
                "daemon=no", "write-pid=no", "loglevel=4", ""]))
            if not zone_created:
                self._pdnsutil("create-zone", self.zone, f"ns1.{self.zone}")
                self._pdnsutil("add-record", self.zone, "ns1", "A", "127.0.0.1")
                zone_created = True
            return spawn([PDNS_SERVER, f"--config-dir={self.dir}"], self.dir / "pdns.log")

        self._proc = serve(launch, self._answers, "pdns_server")
        return self

    def _pdnsutil(self, *args: str) -> None:
        subprocess.run([PDNSUTIL, f"--config-dir={self.dir}", *args], check=True,
                       capture_output=True)

    def all_txt(self) -> list[tuple[str, str]]:
        import sqlite3

        with sqlite3.connect(self.dir / "pdns.sqlite3") as db:
            rows = db.execute("SELECT name, content FROM records WHERE type = 'TXT'").fetchall()
        return sorted((str(name), str(content)) for name, content in rows)

    def lexicon_env(self) -> dict[str, str]:
        """lexicon's own variables for its powerdns provider."""
        return {"LEXICON_POWERDNS_AUTH_TOKEN": PDNS_API_KEY,
                "LEXICON_POWERDNS_PDNS_SERVER": self.api_url}
