"""The fake appliance's SSL configuration: ``sslcertkey`` and SSL vserver bindings (§4).

Owns certkeys (parsed from the files in :mod:`tests.fakens.files` when added or updated, like the
appliance loads them), links between certkeys, the SSL vservers and their certkey bindings, the
read-only binding views, and ``served_chain`` which the TLS data plane uses. Core applies
``filter=``/``attrs=``/``count=`` to what the GET handlers return and marks the configuration
changed after every successful write.

Choices where the reference says "unconfirmed" or leaves room:

- Every fresh appliance has the built-in certkey ``ns-server-certificate`` (files ``ns-server.cert``
  and ``ns-server.key``, bound to internal services, so it cannot be removed: 599/1541).
- Linking a certkey that is already linked (even to the same CA) answers 409/273
  ``Resource already exists``: the client has to unlink first (CBH and NSTK do).
- Update keeps the link while the new certificate is still signed by the linked CA; otherwise the
  link is dropped (as some builds do), and so are links of other certkeys to an updated CA that
  no longer issued them. Bindings always stay.
- Removing a certkey that is itself linked is allowed (its link goes with it); removing a link
  target or a bound certkey is 599/1541. DELETE of a missing certkey answers 599/1540.
- ``deletefromdevice:true`` removes the certkey's files unless another certkey still uses them.
- ``cert``/``key`` are reported as given on add/update (``report_full_paths`` switches to the
  ``/nsconfig/ssl/<name>`` form some builds show).
- PFX input is not modelled (599/1536). Keys other than RSA and EC answer 599/1537.
- A binding is identified by (certkey, snicert, ca): the same certkey may be bound as default and
  as SNI certificate. Binding one that exists answers 409/273; unbinding one that is not bound
  answers 599/1542 ``Certificate binding does not exist``; unbinding without ``snicert:true``
  means the default (non-SNI) binding. A name that is not an SSL vserver answers 599/461
  ``No such Vserver`` (the HTTP status is unconfirmed).
- A second default (non-SNI, non-CA) server certificate of the same key type replaces the first
  (CTX109711, errorcode 1546). How NITRO reports it is unconfirmed, so ``default_bind`` picks:
  ``warning`` (replaced; 201 with errorcode 1546, severity WARNING), ``error`` (replaced, but
  answered 599/1546 as an error) or ``keep`` (both stay bound; the first one is served).
- SSL vservers are lb (or cs) vservers of service type SSL: ``GET lbvserver`` shows their
  ``ipv46`` and ``port``; ``GET sslvserver`` shows ``snienable`` (default DISABLED) and
  ``sslprofile``, not the address. ``PUT sslvserver`` sets ``snienable``.
- Every SSL vserver has its own TLS listener (``tlsplane.py``) on its ``port``: with SNI
  enabled, a client's server name picks the SNI-bound certificate whose names match it (CN or
  SAN, ``*.`` wildcards one label deep), else the default certificate is served.
- The CLI renderings never contain a pass phrase.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from tests.fakens.cmdpolicy import quote
from tests.fakens.core import Call, NitroFault, State, handler
from tests.fakens.files import SSL_DIR, file_store, split_path

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]

DEFAULT_NAME_MAX = 31
DEFAULT_CERTKEY = "ns-server-certificate"
_NAME_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#. :@=-]*$")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_ADD_FIELDS = frozenset({"certkey", "cert", "key", "inform", "password", "passplain",
                         "expirymonitor", "notificationperiod", "bundle"})
_UPDATE_FIELDS = frozenset({"certkey", "cert", "key", "inform", "password", "passplain",
                            "nodomaincheck"})
_LINK_FIELDS = frozenset({"certkey", "linkcertkeyname"})
_BIND_FIELDS = frozenset({"vservername", "certkeyname", "snicert", "ca", "crlcheck", "ocspcheck",
                          "skipcaname"})
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C", NameOID.STATE_OR_PROVINCE_NAME: "ST", NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN", NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber", NameOID.DOMAIN_COMPONENT: "DC",
}
_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
REFERENCED = ("Certificate is referenced by a CRL, OCSP responder, vserver, service, monitor, "
              "SSL profile, CA Cert Group, or another certificate")


@dataclass
class CertKey:
    """One certkey as loaded: the files it names and what was parsed from them."""

    name: str
    cert_path: str
    key_path: Optional[str]
    inform: str
    cert: x509.Certificate
    key: Optional[PrivateKey]
    link: Optional[str] = None
    expirymonitor: Optional[str] = None
    notificationperiod: Optional[int] = None
    internal_services: list[str] = field(default_factory=list)


@dataclass
class SslBinding:
    """A certkey bound to an SSL vserver."""

    certkey: str
    snicert: bool = False
    ca: bool = False


@dataclass
class SslVServer:
    """An SSL vserver: only what certificate handling needs."""

    name: str
    port: int = 443
    ipv46: str = "127.0.0.1"
    bindings: list[SslBinding] = field(default_factory=list)
    snienable: bool = False  # DISABLED by default, as on the appliance
    sslprofile: Optional[str] = None
    kind: str = "lb"  # the lb or cs vserver (service type SSL) it belongs to


@dataclass
class SslState:
    """Everything SSL on the appliance (kept in ``State.ext["ssl"]``)."""

    certkeys: dict[str, CertKey] = field(default_factory=dict)
    vservers: dict[str, SslVServer] = field(default_factory=dict)
    name_max: Optional[int] = DEFAULT_NAME_MAX  # None: no length limit (newer firmware)
    report_full_paths: bool = False
    served_vserver: Optional[str] = None  # the SSL vserver behind the TLS data plane
    default_bind: str = "warning"  # how a replacing default bind answers (module docstring)
    profiles: dict[str, bool] = field(default_factory=dict)  # sslprofile name -> snienable


def ssl_state(state: State) -> SslState:
    """The appliance's SSL state, with the built-in certkey on first use (caller holds the lock)."""
    current = state.ext.get("ssl")
    if isinstance(current, SslState):
        return current
    current = SslState()
    state.ext["ssl"] = current
    _install_default_certkey(state, current)
    return current


# --- certificate and key parsing --------------------------------------------------------------

def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def parse_certificate(data: bytes, inform: str) -> x509.Certificate:
    """The first certificate of a PEM or DER file; 599/1536 when there is none."""
    try:
        if inform == "DER":
            return x509.load_der_x509_certificate(data)
        if inform == "PEM":
            pem = next(block for label, block in _pem_blocks(data) if label == "CERTIFICATE")
            return x509.load_pem_x509_certificate(pem)
    except (StopIteration, ValueError):
        pass
    raise NitroFault(599, 1536, "Invalid certificate")


def parse_private_key(data: bytes, inform: str, passplain: Optional[str]) -> PrivateKey:
    """An RSA or EC key; a leading ``EC PARAMETERS`` block (dehydrated 0.7.0) is skipped."""
    password = passplain.encode("utf-8") if passplain else None
    try:
        if inform == "DER":
            key = serialization.load_der_private_key(data, password)
        else:
            pem = next(block for label, block in _pem_blocks(data)
                       if label.endswith("PRIVATE KEY"))
            key = serialization.load_pem_private_key(pem, password)
    except (StopIteration, ValueError, TypeError, UnsupportedAlgorithm):
        raise _bad_key() from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise _bad_key()
    return key


def _bad_key() -> NitroFault:
    return NitroFault(599, 1537, "Invalid private key, or PEM pass phrase required for this "
                                 "private key")


def _public_der(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` is the actual issuer: names match and the signature verifies."""
    if cert.issuer != issuer.subject or cert.signature_hash_algorithm is None:
        return False
    public = issuer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                          cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes,
                          ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# --- rendering as `show ssl certKey` reports it ---------------------------------------------

def openssl_name(name: x509.Name) -> str:
    """OpenSSL one-line style in certificate order: ``C=US,O=Let's Encrypt,CN=R11``."""
    parts = []
    for attribute in name:
        label = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        parts.append(f"{label}={attribute.value!s}")
    return ",".join(parts)


def openssl_time(moment: datetime.datetime) -> str:
    """OpenSSL ``notBefore`` style: ``Mar  4 12:00:00 2025 GMT``."""
    return (f"{_MONTHS[moment.month - 1]} {moment.day:2d} "
            f"{moment:%H:%M:%S} {moment.year} GMT")


def serial_hex(serial: int) -> str:
    """Upper-case hex of the serial's bytes, so a leading zero nibble is kept (``03A1...``)."""
    digits = format(serial, "X")
    return digits if len(digits) % 2 == 0 else "0" + digits


def _validity(cert: x509.Certificate) -> tuple[datetime.datetime, datetime.datetime]:
    # not_valid_*_utc exists from cryptography 42; older releases return naive UTC datetimes.
    before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(
        tzinfo=datetime.timezone.utc)
    after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(
        tzinfo=datetime.timezone.utc)
    return before, after


def _basic_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def certificate_types(cert: x509.Certificate) -> list[str]:
    if _basic_ca(cert):
        return ["ROOT_CERT"] if cert.issuer == cert.subject else ["INTM_CERT"]
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return ["SRVR_CERT"]
    types = []
    if ExtendedKeyUsageOID.CLIENT_AUTH in usages:
        types.append("CLNT_CERT")
    if ExtendedKeyUsageOID.SERVER_AUTH in usages:
        types.append("SRVR_CERT")
    return types or ["UNKNOWN_CERT"]


def san_dns(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name) for name in san.get_values_for_type(x509.DNSName)]


def _public_key_fields(cert: x509.Certificate) -> dict[str, Any]:
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return {"publickey": "RSA", "publickeysize": public.key_size}
    if isinstance(public, ec.EllipticCurvePublicKey):
        return {"publickey": "ECC", "publickeysize": public.curve.key_size}
    return {"publickey": "UNKNOWN"}


def _shown_path(ssl: SslState, path: Optional[str]) -> Optional[str]:
    if path is None or not ssl.report_full_paths or "/" in path:
        return path
    return f"{SSL_DIR}/{path}"


def describe(ssl: SslState, ck: CertKey, now: Optional[datetime.datetime] = None) -> dict[str, Any]:
    """One ``sslcertkey`` object as GET returns it (§4.3)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    before, after = _validity(ck.cert)
    status = "Expired" if now > after else "Not yet valid" if now < before else "Valid"
    obj: dict[str, Any] = {
        "certkey": ck.name, "cert": _shown_path(ssl, ck.cert_path), "inform": ck.inform,
        "signaturealg": _SIGNATURE_NAMES.get(ck.cert.signature_algorithm_oid, "UNKNOWN"),
        "certificatetype": certificate_types(ck.cert),
        "serial": serial_hex(ck.cert.serial_number),
        "issuer": openssl_name(ck.cert.issuer), "subject": openssl_name(ck.cert.subject),
        "clientcertnotbefore": openssl_time(before), "clientcertnotafter": openssl_time(after),
        "daystoexpiration": int((after - now).total_seconds() // 86400),
        "status": status, "version": ck.cert.version.value + 1,
        **_public_key_fields(ck.cert),
    }
    if ck.key_path:
        obj["key"] = _shown_path(ssl, ck.key_path)
    if ck.expirymonitor:
        obj["expirymonitor"] = ck.expirymonitor
    if ck.notificationperiod is not None:
        obj["notificationperiod"] = ck.notificationperiod
    if ck.link:
        obj["linkcertkeyname"] = ck.link
    sans = san_dns(ck.cert)
    if sans:
        obj["sandns"] = sans
    return obj


# --- the built-in certkey ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _default_material() -> tuple[bytes, bytes]:
    """A self-signed ``ns-server.cert`` / ``ns-server.key`` pair, made once per process."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Citrix ANG"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "NS Internal"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "default ABCDEF")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _install_default_certkey(state: State, ssl: SslState) -> None:
    cert_pem, key_pem = _default_material()
    store = file_store(state)
    store.write(SSL_DIR, "ns-server.cert", cert_pem)
    store.write(SSL_DIR, "ns-server.key", key_pem)
    ssl.certkeys[DEFAULT_CERTKEY] = CertKey(
        DEFAULT_CERTKEY, "ns-server.cert", "ns-server.key", "PEM",
        parse_certificate(cert_pem, "PEM"), parse_private_key(key_pem, "PEM", None),
        internal_services=["nshttps-127.0.0.1-443", "nskrpcs-127.0.0.1-3009"])


# --- request helpers ---------------------------------------------------------------------------

def _body(call: Call) -> dict[str, Any]:
    return call.body if isinstance(call.body, dict) else {}


def _reject_unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    if set(body) - allowed:
        raise NitroFault(599, 1090, "No such argument")


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise NitroFault(599, 1095, "Required argument missing")
    return value


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "yes"))


def _no_certkey() -> NitroFault:
    return NitroFault(599, 1540, "Certificate does not exist")


def _certkey(ssl: SslState, name: str) -> CertKey:
    found = ssl.certkeys.get(name)
    if found is None:
        raise _no_certkey()
    return found


def _certkey_name(call: Call) -> str:
    name = _body(call).get("certkey") or call.name
    if not isinstance(name, str) or not name:
        raise NitroFault(599, 1095, "Required argument missing")
    return name


def _checked_certkey_name(ssl: SslState, name: str) -> str:
    if ssl.name_max is not None and len(name) > ssl.name_max:
        raise NitroFault(599, 1106, f"String length exceeds maximum [certkeyName, {ssl.name_max}]")
    if not _NAME_OK.match(name):
        raise NitroFault(599, 1075, "Invalid name; names must begin with an alphanumeric or "
                                    "underscore character")
    return name


def _read_file(state: State, path: str, errorcode: int, message: str) -> bytes:
    location, name = split_path(path)
    content = file_store(state).read(location, name)
    if content is None:
        raise NitroFault(599, errorcode, message)
    return content


def _inform(body: dict[str, Any]) -> str:
    inform = str(body.get("inform", "PEM")).upper()
    if inform not in ("PEM", "DER", "PFX"):
        raise NitroFault(599, 1097, "Invalid argument value [inform]")
    if inform == "PFX":
        raise NitroFault(599, 1536, "Invalid certificate")
    return inform


def _load_cert(state: State, path: str, inform: str) -> x509.Certificate:
    return parse_certificate(_read_file(state, path, 1631, "No such certificate file"), inform)


def _load_key(state: State, body: dict[str, Any], path: str, inform: str) -> PrivateKey:
    data = _read_file(state, path, 1632, "No such key file")
    passplain = body.get("passplain")
    return parse_private_key(data, inform, passplain if isinstance(passplain, str) else None)


def _check_pair(cert: x509.Certificate, key: Optional[PrivateKey]) -> None:
    if key is not None and not key_matches(cert, key):
        raise NitroFault(599, 1538, "Certificate and private key do not match")


def _check_unique_contents(ssl: SslState, cert: x509.Certificate, me: Optional[str]) -> None:
    """The appliance refuses a second certkey with the same serial and issuer (CTX206045)."""
    for other in ssl.certkeys.values():
        if (other.name != me and other.cert.serial_number == cert.serial_number
                and other.cert.issuer == cert.issuer):
            raise NitroFault(409, 273, f"Resource already exists [certkeyName Contents, "
                                       f"{other.name}]")


def _domains(cert: x509.Certificate) -> tuple[x509.Name, frozenset[str]]:
    return cert.subject, frozenset(name.lower() for name in san_dns(cert))


def _referrers(ssl: SslState, name: str) -> list[str]:
    """Everything that keeps a certkey from being removed."""
    refs = [f"vserver {vs.name}" for vs in ssl.vservers.values()
            if any(b.certkey == name for b in vs.bindings)]
    refs += [f"certificate {ck.name}" for ck in ssl.certkeys.values() if ck.link == name]
    refs += [f"service {svc}" for svc in ssl.certkeys[name].internal_services]
    return refs


def _drop_broken_links(ssl: SslState, updated: CertKey) -> None:
    """After an update, keep only links whose CA still issued the linked certificate."""
    if updated.link and not signed_by(updated.cert, ssl.certkeys[updated.link].cert):
        updated.link = None
    for other in ssl.certkeys.values():
        if other.link == updated.name and not signed_by(other.cert, updated.cert):
            other.link = None


def chain_of(ssl: SslState, name: str) -> list[CertKey]:
    """The certkey followed by its linked CAs in link order (what the appliance sends)."""
    chain: list[CertKey] = []
    current: Optional[str] = name
    while current and current in ssl.certkeys and all(c.name != current for c in chain):
        chain.append(ssl.certkeys[current])
        current = ssl.certkeys[current].link
    return chain


# --- CLI renderings (nitro-reference §8.2) -----------------------------------------------------

def _opt(body: dict[str, Any], key: str, flag: str) -> str:
    value = body.get(key)
    return f" {flag} {quote(str(value))}" if value not in (None, "") else ""


def _cli_add(call: Call) -> str:
    body = _body(call)
    return (f"add ssl certKey {quote(str(body.get('certkey', '')))}"
            f"{_opt(body, 'cert', '-cert')}{_opt(body, 'key', '-key')}"
            f"{_opt(body, 'inform', '-inform')}{' -password' if body.get('passplain') else ''}"
            f"{_opt(body, 'expirymonitor', '-expiryMonitor')}"
            f"{_opt(body, 'notificationperiod', '-notificationPeriod')}")


def _cli_update(call: Call) -> str:
    body = _body(call)
    name = str(body.get("certkey") or call.name or "")
    return (f"update ssl certKey {quote(name)}{_opt(body, 'cert', '-cert')}"
            f"{_opt(body, 'key', '-key')}{_opt(body, 'inform', '-inform')}"
            f"{' -password' if body.get('passplain') else ''}"
            f"{' -noDomainCheck' if _truthy(body.get('nodomaincheck')) else ''}")


def _cli_link(call: Call) -> str:
    body = _body(call)
    name = str(body.get("certkey") or call.name or "")
    return f"link ssl certKey {quote(name)} {quote(str(body.get('linkcertkeyname', '')))}"


def _cli_unlink(call: Call) -> str:
    return f"unlink ssl certKey {quote(str(_body(call).get('certkey') or call.name or ''))}"


def _cli_rm(call: Call) -> str:
    return f"rm ssl certKey {quote(call.name or '')}"


def _cli_show(call: Call) -> str:
    return f"show ssl certKey {quote(call.name)}" if call.name else "show ssl certKey"


def _cli_show_vserver(call: Call) -> str:
    return f"show ssl vserver {quote(call.name)}" if call.name else "show ssl vserver"


def _cli_bind(call: Call) -> str:
    body = _body(call)
    return (f"bind ssl vserver {quote(str(body.get('vservername', '')))} -certkeyName "
            f"{quote(str(body.get('certkeyname', '')))}"
            f"{' -SNICert' if _truthy(body.get('snicert')) else ''}"
            f"{' -CA' if _truthy(body.get('ca')) else ''}")


def _cli_unbind(call: Call) -> str:
    return (f"unbind ssl vserver {quote(call.name or '')} -certkeyName "
            f"{quote(call.args.get('certkeyname', ''))}"
            f"{' -SNICert' if _truthy(call.args.get('snicert')) else ''}"
            f"{' -CA' if _truthy(call.args.get('ca')) else ''}")


def _cli_set_vserver(call: Call) -> str:
    body = _body(call)
    sni = f" -SNIEnable {body['snienable']}" if body.get("snienable") else ""
    return f"set ssl vserver {quote(str(body.get('vservername', '')))}{sni}"


def _cli_show_profile(call: Call) -> str:
    return f"show ssl profile {quote(call.name)}" if call.name else "show ssl profile"


# --- sslcertkey ---------------------------------------------------------------------------------

@handler("POST", "sslcertkey", status=201, cli=_cli_add)
def add_certkey(state: State, call: Call) -> None:
    body = _body(call)
    _reject_unknown(body, _ADD_FIELDS)
    ssl = ssl_state(state)
    name = _checked_certkey_name(ssl, _required(body, "certkey"))
    if name in ssl.certkeys:
        raise NitroFault(409, 273, "Resource already exists")
    inform = _inform(body)
    cert_path = _required(body, "cert")
    cert = _load_cert(state, cert_path, inform)
    key_path = body.get("key") or None
    key = _load_key(state, body, str(key_path), inform) if key_path else None
    _check_pair(cert, key)
    _check_unique_contents(ssl, cert, None)
    period = body.get("notificationperiod")
    ssl.certkeys[name] = CertKey(
        name, cert_path, str(key_path) if key_path else None, inform, cert, key,
        expirymonitor=str(body["expirymonitor"]).upper() if body.get("expirymonitor") else None,
        notificationperiod=int(period) if period is not None else None)


@handler("GET", "sslcertkey", cli=_cli_show)
def show_certkeys(state: State, call: Call) -> Optional[dict[str, Any]]:
    ssl = ssl_state(state)
    chosen = [_certkey(ssl, call.name)] if call.name else list(ssl.certkeys.values())
    return {"sslcertkey": [describe(ssl, ck) for ck in chosen]}


@handler("POST", "sslcertkey", "update", cli=_cli_update)
def update_certkey(state: State, call: Call) -> None:
    body = _body(call)
    _reject_unknown(body, _UPDATE_FIELDS)
    ssl = ssl_state(state)
    ck = _certkey(ssl, _certkey_name(call))
    inform = _inform(body)
    cert_path = _required(body, "cert")
    cert = _load_cert(state, cert_path, inform)
    key_path = body.get("key") or None
    key = _load_key(state, body, str(key_path), inform) if key_path else ck.key
    _check_pair(cert, key)
    if not _truthy(body.get("nodomaincheck")) and _domains(cert) != _domains(ck.cert):
        raise NitroFault(599, 3585, "Certificate is registered to a different domain; use the "
                                    "'no domain check' option to force the operation")
    _check_unique_contents(ssl, cert, ck.name)
    ck.cert, ck.key, ck.cert_path, ck.inform = cert, key, cert_path, inform
    if key_path:
        ck.key_path = str(key_path)
    _drop_broken_links(ssl, ck)


def _cli_set(call: Call) -> str:
    body = _body(call)
    name = str(body.get("certkey") or call.name or "")
    return (f"set ssl certKey {quote(name)}{_opt(body, 'expirymonitor', '-expiryMonitor')}"
            f"{_opt(body, 'notificationperiod', '-notificationPeriod')}")


@handler("PUT", "sslcertkey", cli=_cli_set)
def set_certkey(state: State, call: Call) -> None:
    """PUT changes expiry monitoring only; replacing files needs ``?action=update`` (§4.4)."""
    body = _body(call)
    _reject_unknown(body, frozenset({"certkey", "expirymonitor", "notificationperiod"}))
    ck = _certkey(ssl_state(state), _certkey_name(call))
    if body.get("expirymonitor"):
        ck.expirymonitor = str(body["expirymonitor"]).upper()
    if body.get("notificationperiod") is not None:
        ck.notificationperiod = int(body["notificationperiod"])


@handler("POST", "sslcertkey", "link", cli=_cli_link)
def link_certkey(state: State, call: Call) -> None:
    body = _body(call)
    _reject_unknown(body, _LINK_FIELDS)
    ssl = ssl_state(state)
    ck = _certkey(ssl, _certkey_name(call))
    ca = _certkey(ssl, _required(body, "linkcertkeyname"))
    if ca.name == ck.name:
        raise NitroFault(599, 1543, "Certificate cannot be linked to itself")
    if ck.link is not None:
        raise NitroFault(409, 273, "Resource already exists")
    if any(c.name == ck.name for c in chain_of(ssl, ca.name)):
        raise NitroFault(599, 1677, "Linking would create a loop in the certificate chain")
    if not signed_by(ck.cert, ca.cert):
        raise NitroFault(599, 1548, "Issuer certificate mismatch")
    ck.link = ca.name


@handler("POST", "sslcertkey", "unlink", cli=_cli_unlink)
def unlink_certkey(state: State, call: Call) -> None:
    body = _body(call)
    _reject_unknown(body, frozenset({"certkey"}))
    ck = _certkey(ssl_state(state), _certkey_name(call))
    if ck.link is None:
        raise NitroFault(599, 1545, "Certificate does not have any CA link")
    ck.link = None


@handler("DELETE", "sslcertkey", cli=_cli_rm)
def remove_certkey(state: State, call: Call) -> None:
    ssl = ssl_state(state)
    ck = _certkey(ssl, call.name or "")
    if _referrers(ssl, ck.name):
        raise NitroFault(599, 1541, REFERENCED)
    del ssl.certkeys[ck.name]
    if _truthy(call.args.get("deletefromdevice")):
        _delete_unused_files(state, ssl, [ck.cert_path, ck.key_path])


def _delete_unused_files(state: State, ssl: SslState, paths: list[Optional[str]]) -> None:
    in_use = {split_path(p) for ck in ssl.certkeys.values()
              for p in (ck.cert_path, ck.key_path) if p}
    for path in paths:
        if path and split_path(path) not in in_use:
            file_store(state).remove(*split_path(path))


# --- SSL vservers and bindings ------------------------------------------------------------------

def _vserver(ssl: SslState, name: str) -> SslVServer:
    found = ssl.vservers.get(name)
    if found is None:
        raise NitroFault(599, 461, "No such Vserver")
    return found


def _describe_vserver(vs: SslVServer) -> dict[str, Any]:
    obj: dict[str, Any] = {"vservername": vs.name, "ssl3": "DISABLED", "tls12": "ENABLED",
                           "tls13": "ENABLED",
                           "snienable": "ENABLED" if vs.snienable else "DISABLED"}
    if vs.sslprofile:
        obj["sslprofile"] = vs.sslprofile
    return obj


@handler("GET", "sslvserver", cli=_cli_show_vserver)
def show_vservers(state: State, call: Call) -> Optional[dict[str, Any]]:
    ssl = ssl_state(state)
    chosen = [_vserver(ssl, call.name)] if call.name else list(ssl.vservers.values())
    return {"sslvserver": [_describe_vserver(v) for v in chosen]}


@handler("PUT", "sslvserver", cli=_cli_set_vserver)
def set_vserver(state: State, call: Call) -> None:
    body = _body(call)
    _reject_unknown(body, frozenset({"vservername", "snienable"}))
    vs = _vserver(ssl_state(state), _required(body, "vservername"))
    if body.get("snienable"):
        vs.snienable = str(body["snienable"]).upper() == "ENABLED"


@handler("GET", "sslprofile", cli=_cli_show_profile)
def show_profiles(state: State, call: Call) -> Optional[dict[str, Any]]:
    profiles = ssl_state(state).profiles
    names = [call.name] if call.name else list(profiles)
    if call.name and call.name not in profiles:
        raise NitroFault(599, 258, f"No such resource [name, {call.name}]")
    return {"sslprofile": [{"name": n, "snienable": "ENABLED" if profiles[n] else "DISABLED"}
                           for n in names]}


def sni_enabled(ssl: SslState, vs: SslVServer) -> bool:
    """SNI as the vserver has it: from its SSL profile when one is attached."""
    if vs.sslprofile:
        return ssl.profiles.get(vs.sslprofile, False)
    return vs.snienable


def key_type(ck: CertKey) -> str:
    return _public_key_fields(ck.cert)["publickey"]


def _is_server(binding: SslBinding) -> bool:
    return not binding.snicert and not binding.ca


def _bind(state: State, call: Call) -> Optional[dict[str, Any]]:
    body = _body(call)
    _reject_unknown(body, _BIND_FIELDS)
    ssl = ssl_state(state)
    vs = _vserver(ssl, _required(body, "vservername"))
    ck = _certkey(ssl, _required(body, "certkeyname"))
    new = SslBinding(ck.name, _truthy(body.get("snicert")), _truthy(body.get("ca")))
    if new in vs.bindings:
        raise NitroFault(409, 273, "Resource already exists")
    replaced = [b for b in vs.bindings if _is_server(new) and _is_server(b)
                and b.certkey in ssl.certkeys and key_type(ssl.certkeys[b.certkey]) == key_type(ck)]
    if replaced and ssl.default_bind != "keep":
        vs.bindings = [b for b in vs.bindings if b not in replaced]
    vs.bindings.append(new)
    if not replaced or ssl.default_bind == "keep":
        return None
    message = "Current certificate replaces the previous binding"
    if ssl.default_bind == "error":
        state.mark_changed()  # the answer is an error, but the binding did change
        raise NitroFault(599, 1546, message)
    return {"errorcode": 1546, "message": message, "severity": "WARNING"}


handler("PUT", "sslvserver_sslcertkey_binding", status=201, cli=_cli_bind)(_bind)
handler("POST", "sslvserver_sslcertkey_binding", status=201, cli=_cli_bind)(_bind)


def _binding_rows(vs: SslVServer) -> list[dict[str, Any]]:
    return [{"vservername": vs.name, "certkeyname": b.certkey, "snicert": b.snicert,
             "ca": b.ca} for b in vs.bindings]


@handler("GET", "sslvserver_sslcertkey_binding", cli=_cli_show_vserver)
def show_vserver_bindings(state: State, call: Call) -> Optional[dict[str, Any]]:
    ssl = ssl_state(state)
    if not call.name:
        if call.query.get("bulkbindings", "").lower() != "yes":
            raise NitroFault(599, 1095, "Required argument missing")
        return {"sslvserver_sslcertkey_binding": [
            row for vs in ssl.vservers.values() for row in _binding_rows(vs)]}
    return {"sslvserver_sslcertkey_binding": _binding_rows(_vserver(ssl, call.name))}


@handler("DELETE", "sslvserver_sslcertkey_binding", cli=_cli_unbind)
def unbind(state: State, call: Call) -> None:
    vs = _vserver(ssl_state(state), call.name or "")
    certkey = call.args.get("certkeyname", "")
    if not certkey:
        raise NitroFault(599, 1095, "Required argument missing")
    gone = SslBinding(certkey, _truthy(call.args.get("snicert")), _truthy(call.args.get("ca")))
    if gone not in vs.bindings:
        raise NitroFault(599, 1542, "Certificate binding does not exist")
    vs.bindings.remove(gone)


def _vserver_rows(ssl: SslState, certkey: str) -> list[dict[str, Any]]:
    return [{"certkey": certkey, "servername": vs.name} for vs in ssl.vservers.values()
            if any(b.certkey == certkey for b in vs.bindings)]


@handler("GET", "sslcertkey_sslvserver_binding", cli=_cli_show)
def show_certkey_vservers(state: State, call: Call) -> Optional[dict[str, Any]]:
    ssl = ssl_state(state)
    ck = _certkey(ssl, call.name or "")
    return {"sslcertkey_sslvserver_binding": _vserver_rows(ssl, ck.name)}


@handler("GET", "sslcertkey_binding", cli=_cli_show)
def show_certkey_binding(state: State, call: Call) -> Optional[dict[str, Any]]:
    ssl = ssl_state(state)
    ck = _certkey(ssl, call.name or "")
    aggregate: dict[str, Any] = {"certkey": ck.name}
    vservers = _vserver_rows(ssl, ck.name)
    if vservers:
        aggregate["sslcertkey_sslvserver_binding"] = vservers
    if ck.internal_services:
        aggregate["sslcertkey_service_binding"] = [
            {"certkey": ck.name, "servicename": svc} for svc in ck.internal_services]
    return {"sslcertkey_binding": [aggregate]}


# --- helpers for FakeNetScaler and the TLS data plane (callers hold state.lock) -----------------

def add_sslvserver(state: State, name: str, *, port: int = 443, serve: Optional[bool] = None,
                   sni: bool = False, kind: str = "lb", sslprofile: Optional[str] = None) -> None:
    """Create an SSL vserver; the first one (or ``serve=True``) is behind ``tls_port``."""
    ssl = ssl_state(state)
    ssl.vservers[name] = SslVServer(name, port, snienable=sni, sslprofile=sslprofile, kind=kind)
    if serve or (serve is None and ssl.served_vserver is None):
        ssl.served_vserver = name


def bind_certkey(state: State, vserver: str, certkey: str, *, sni: bool = False) -> None:
    """Bind as a test set-up step (same checks as NITRO, no request log, no config change)."""
    ssl = ssl_state(state)
    vs = _vserver(ssl, vserver)
    _certkey(ssl, certkey)
    binding = SslBinding(certkey, snicert=sni)
    if binding not in vs.bindings:
        vs.bindings.append(binding)


def certkeys(state: State) -> list[dict[str, Any]]:
    """All certkeys as ``show ssl certKey`` reports them."""
    ssl = ssl_state(state)
    return [describe(ssl, ck) for ck in ssl.certkeys.values()]


Served = tuple[PrivateKey, list[x509.Certificate]]


def _material(ssl: SslState, name: str) -> Optional[Served]:
    ck = ssl.certkeys.get(name)
    if ck is None or ck.key is None:
        return None
    return ck.key, [c.cert for c in chain_of(ssl, ck.name)]


def _matches_name(cert: x509.Certificate, server_name: str) -> bool:
    wanted = server_name.lower().rstrip(".")
    cns = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    for name in [*cns, *(n.lower() for n in san_dns(cert))]:
        if name == wanted or (name.startswith("*.") and "." in wanted
                              and wanted.split(".", 1)[1] == name[2:]):
            return True
    return False


def served_chain(state: State, vserver: Optional[str] = None,
                 server_name: Optional[str] = None) -> Optional[Served]:
    """Key and chain (leaf first) a client of ``vserver`` (default: the data-plane one) gets.

    With SNI enabled, an SNI-bound certificate matching ``server_name`` wins; otherwise the
    first default server certificate.
    """
    ssl = ssl_state(state)
    vs = ssl.vservers.get(vserver or ssl.served_vserver or "")
    if vs is None:
        return None
    if server_name and sni_enabled(ssl, vs):
        for binding in vs.bindings:
            ck = ssl.certkeys.get(binding.certkey)
            if binding.snicert and ck is not None and _matches_name(ck.cert, server_name):
                return _material(ssl, ck.name)
    for binding in vs.bindings:
        if _is_server(binding):
            found = _material(ssl, binding.certkey)
            if found is not None:
                return found
    return None
