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
from typing import Optional

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


class Bind:
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
        for attempt in range(3):
            self.port = free_port(udp_too=True)
            conf = self._write_conf(zone_file)
            self._proc = spawn([NAMED, "-g", "-c", str(conf)], self.dir / "named.log")
            try:
                wait_until(self._answers, self._proc, "named")
                return self
            except BaseException:
                stop(self._proc)
                if attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        stop(self._proc)

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

    def _answers(self) -> bool:
        query = dns.message.make_query(self.zone, "SOA")
        try:
            return bool(dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.3).answer)
        except dns.exception.DNSException:
            return False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

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
