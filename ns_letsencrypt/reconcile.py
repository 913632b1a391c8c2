"""Reconciliation: make the appliance serve what the ACME client has, for every certificate.

dehydrated calls ``deploy_cert`` only when it issues, so a deploy that failed (appliance down,
rolled back) or a certkey deleted by hand would otherwise stay wrong until the next renewal.
This module reads dehydrated's ``domains.txt`` the way dehydrated does, finds each line's
current files under ``<CERTDIR>/<alias or first name>/``, and compares them with the appliance
using two list calls for all certificates (every certkey, every file in the certificate
directory), redeploying only what differs. It runs in one process for all certificates.
:func:`reconcile_dirs` is the same loop over any list of certificate directories (certbot's
lineages, see ``certbot.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from .challenge import domain_problem
from .config import Settings
from .deploy import Deployer, DeployResult, load_bundle
from .errors import DeployError, InputError, NitroAuthError, NitroConnectionError, NsLeError
from .nitro import NitroClient

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


@dataclass(frozen=True)
class DomainLine:
    """One certificate as configured in domains.txt."""

    names: tuple[str, ...]
    alias: Optional[str] = None

    @property
    def cert_name(self) -> str:
        """dehydrated's directory (and our certkey) name: the alias, else the first name."""
        return self.alias or self.names[0]


def parse_domains(path: PathLike) -> list[DomainLine]:
    """The lines of domains.txt, read like dehydrated 0.7 reads them.

    dehydrated lower-cases each line, squeezes blanks, skips lines that start with ``#`` after
    leading blanks (a ``#`` later in a line is not a comment to it), and takes one ``>alias``
    token anywhere in the line (``a > b`` and ``a >b`` are the same).
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})",
                         hint="save it as UTF-8 (names are ASCII or xn-- punycode)") from None
    lines = []
    problems: list[str] = []
    for number, raw in enumerate(text.replace("\r", "").splitlines(), start=1):
        line = re.sub(r"\s+", " ", raw.lower()).strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"([^ ])>", r"\1 >", line).replace("> ", ">")
        tokens = line.split(" ")
        aliases = [t[1:] for t in tokens if t.startswith(">")]
        names = tuple(t for t in tokens if not t.startswith(">"))
        if len(aliases) > 1 or not names:
            raise InputError(f"{path}:{number}: expected names and at most one '>alias'")
        # A wildcard certificate may come from elsewhere (dns-01); only deploying it is ours.
        problems += [f"{path} line {number}: {name!r}: {problem}" for name in names
                     if (problem := domain_problem(name.removeprefix("*.")))]
        lines.append(DomainLine(names, aliases[0] if aliases else None))
    if problems:  # before any path is built from a name: nothing is sent for a bad file
        raise InputError(problems, hint="certificates are for DNS names: letters, digits, "
                                        "inner hyphens, at most 253 characters")
    _check_duplicates(path, lines)
    return lines


def _check_duplicates(path: PathLike, lines: list[DomainLine]) -> None:
    """Two lines for one certificate directory clash; one name in two certificates is legal
    (e.g. an RSA and an ECDSA certificate under two aliases) but worth a warning."""
    certs: dict[str, int] = {}
    names: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if line.cert_name in certs:
            raise InputError(f"{path}: certificates {certs[line.cert_name]} and {number} both "
                             f"use the name {line.cert_name!r} (the same certificate directory)",
                             hint="merge the lines, or give one of them a '>alias'")
        certs[line.cert_name] = number
        for name in line.names:
            if name in names and names[name] != number:
                logger.warning("%s: %s is in certificates %d and %d", path, name, names[name],
                               number)
            names.setdefault(name, number)


@dataclass
class ReconcileResult:
    """What reconciliation found and did."""

    checked: list[str] = field(default_factory=list)  # certificates compared
    deployed: list[DeployResult] = field(default_factory=list)  # those that needed a deploy
    missing: list[str] = field(default_factory=list)  # configured but not issued yet
    failures: list[tuple[str, NsLeError]] = field(default_factory=list)
    changed: bool = False

    def raise_for_failures(self) -> None:
        """Raise one DeployError naming every certificate that could not be deployed.

        Each failure was logged in full when it happened; the summary only names them.
        """
        if not self.failures:
            return
        first = self.failures[0][1]
        step = first.step if isinstance(first, DeployError) else "input"
        names = ", ".join(name for name, _ in self.failures)
        raise DeployError(step, f"{len(self.failures)} certificate(s) not deployed: {names} "
                          "(the error of each is logged above)")


@dataclass(frozen=True)
class CertDir:
    """One certificate's directory (cert.pem, chain.pem, privkey.pem) and its names."""

    name: str  # the certificate's name: names its certkey, as dehydrated's alias does
    directory: Path
    domain: Optional[str]  # its first name, when the client's configuration says
    alias: Optional[str]


def reconcile(
    client: NitroClient, settings: Settings, domains_file: PathLike, certs_dir: PathLike,
    *, deployer: Optional[Deployer] = None,
) -> ReconcileResult:
    """Compare every certificate of dehydrated's domains.txt with the appliance."""
    certs = [CertDir(line.cert_name, Path(certs_dir) / line.cert_name, line.names[0],
                     line.alias) for line in parse_domains(domains_file)]
    return reconcile_dirs(client, settings, certs, deployer=deployer)


def reconcile_dirs(
    client: NitroClient, settings: Settings, certs: Iterable[CertDir],
    *, deployer: Optional[Deployer] = None,
) -> ReconcileResult:
    """Compare every certificate with the appliance and redeploy what differs.

    One certificate's failure does not stop the others (it is collected in ``failures``; call
    ``raise_for_failures`` after saving); losing the appliance or the credentials does.
    Pass the run's ``deployer`` to share its view of the appliance with earlier deploys.
    """
    deployer = deployer or Deployer(client, settings, with_files=True)
    result = ReconcileResult()
    for cert in certs:
        directory = cert.directory
        if not (directory / "cert.pem").exists():
            logger.info("%s: no certificate issued yet (%s)", cert.name, directory)
            result.missing.append(cert.name)
            continue
        result.checked.append(cert.name)
        try:
            bundle = load_bundle(
                str(directory / "privkey.pem"), str(directory / "cert.pem"),
                str(directory / "chain.pem"), cert.domain, cert.alias,
            )
            deployed = deployer.deploy(bundle)
        except (NitroConnectionError, NitroAuthError):
            raise
        except NsLeError as exc:
            logger.error("%s: %s", cert.name, exc)
            result.failures.append((cert.name, exc))
            continue
        if deployed.changed:
            result.deployed.append(deployed)
    result.changed = deployer.changed
    logger.info("reconciled %d certificate(s): %d redeployed, %d failed, %d not issued yet",
                len(result.checked), len(result.deployed), len(result.failures),
                len(result.missing))
    return result
