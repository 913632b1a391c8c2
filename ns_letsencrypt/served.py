"""What a client of the VIP receives after a deploy (``NS_VERIFY_SERVED``).

NITRO tells which certificate a certkey holds and what it links to; only a TLS handshake with
the VIP shows what browsers and API clients actually get. After a deploy this module connects
to the certificate's first name (or ``NS_VERIFY_ADDRESS``, else the VIP of each vserver NS_BIND
binds it to, as NITRO reports it) with that name as SNI and checks
that the leaf is the new certificate, that the chain sent verifies against the trust store
(``NS_VERIFY_CA_BUNDLE``, else the system's) for that name, and that no root is sent.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Optional

from .certs import Certificate, normalize_serial, parse_certificate
from .config import Settings, split_host_port
from .errors import InputError

logger = logging.getLogger(__name__)

HTTPS_PORT = 443


def check(settings: Settings, leaf: Certificate,
          address: Optional[tuple[str, int]] = None) -> list[str]:
    """The problems of what the VIP serves for ``leaf``'s first name (empty: all is well).

    ``address`` is where to connect (NS_VERIFY_ADDRESS wins over it; default: the name:443).
    """
    name = leaf.primary_name
    host, port = _address(settings, name) if address is None or settings.verify_address else (
        address)
    where = f"{f'[{host}]' if ':' in host else host}:{port} (SNI {name})"
    try:
        sent, verify_error = _handshake(settings, host, port, name)
    except OSError as exc:
        return [f"{where}: no TLS answer ({exc}); set NS_VERIFY_ADDRESS to reach the VIP "
                "another way, or NS_VERIFY_SERVED=off"]
    if not sent:
        return [f"{where}: the server sent no certificate"]
    problems = []
    served = sent[0]
    if normalize_serial(served.serial) != normalize_serial(leaf.serial):
        problems.append(
            f"{where}: serves serial {served.serial} ({served.primary_name}), not the new "
            f"{leaf.serial}: bind its certkey to the SSL vserver (or SNI) of {name}")
    elif verify_error:
        problems.append(f"{where}: the chain sent does not verify ({verify_error}): check "
                        "that the certkey is linked to every intermediate")
    roots = [c.subject for c in sent[1:] if c.self_signed]
    if roots:
        problems.append(f"{where}: sends the root {roots[0]}: unlink it from the chain "
                        "(clients have it; sending it only costs bytes)")
    return problems


def report(settings: Settings, leaf: Certificate,
           addresses: Sequence[tuple[str, int]] = ()) -> Optional[str]:
    """Run :func:`check` as ``settings.verify_served`` says; the text of the problems, if any.

    ``addresses``: every VIP to look at (none: the default address). ``warn`` logs the
    problems; ``on`` leaves them to the caller to fail with; ``off`` checks nothing.
    """
    if settings.verify_served == "off":
        return None
    where: list[Optional[tuple[str, int]]] = list(addresses) or [None]
    problems = [p for address in where for p in check(settings, leaf, address)]
    if not problems:
        logger.info("%s: the VIP serves serial %s with a chain that verifies",
                    leaf.primary_name, leaf.serial)
        return None
    text = "; ".join(problems)
    if settings.verify_served == "warn":
        logger.warning("served certificate: %s", text)
        return None
    return text


def _address(settings: Settings, name: str) -> tuple[str, int]:
    if not settings.verify_address:
        return name, HTTPS_PORT
    return split_host_port(settings.verify_address, HTTPS_PORT)


def _handshake(settings: Settings, host: str, port: int,
               name: str) -> tuple[list[Certificate], Optional[str]]:
    """(certificates sent, leaf first; why they do not verify, or None)."""
    try:
        context = ssl.create_default_context(cafile=settings.verify_ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"NS_VERIFY_CA_BUNDLE {settings.verify_ca_bundle}: cannot load it "
                         f"({exc})", "point it at a PEM file of trusted roots") from exc
    try:
        return _fetch(context, host, port, name), None
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
    # Look again without verifying, to say which certificate was served.
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    return _fetch(unverified, host, port, name), reason


def _fetch(context: ssl.SSLContext, host: str, port: int, name: str) -> list[Certificate]:
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            leaf = tls.getpeercert(binary_form=True)
            chain = _sent_chain(tls)
    if chain:
        return chain
    return [parse_certificate(leaf, "served certificate")] if leaf else []


def _sent_chain(tls: ssl.SSLSocket) -> list[Certificate]:
    """Every certificate the server sent, in order (empty where Python cannot tell)."""
    inner = getattr(tls, "_sslobj", None)
    method = getattr(inner, "get_unverified_chain", None)  # Python 3.10+
    if method is None:
        return []
    # 3.13 returns DER bytes; 3.10-3.12 objects whose public_bytes() gives PEM text
    raw = [item if isinstance(item, bytes) else str(item.public_bytes()).encode()
           for item in method() or []]
    return [parse_certificate(data, "served certificate") for data in raw]
