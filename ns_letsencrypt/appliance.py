"""Read-only probes of the appliance and appliance-level operations (save config).

Each probe is a short function over a logged-in :class:`NitroClient`: firmware version, HA
state, RESPONDER feature, the challenge vserver, unsaved changes. :func:`connectivity_report`
runs them all for ``ns-letsencrypt test`` and returns :class:`report.Check` values; it logs in
and out itself and turns NITRO failures into failed checks instead of raising. Nothing here
changes the appliance except :func:`save_config`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from .config import Settings
from .errors import (
    ApplianceNotReady,
    ExitStatus,
    NitroApiError,
    NitroAuthError,
    NitroConnectionError,
    NitroPermissionError,
)
from .nitro import JsonObj, NitroClient
from .report import Check, Level, failed, passed, warning

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"NS\d+\.\d+:\s*Build\s+\d+(?:\.\d+)?", re.IGNORECASE)
RESPONDER_FIX = "enable ns feature responder"
_POLICY_HINT = "extend the NITRO user's command policy (see 'ns-letsencrypt policy')"


# -- probes -------------------------------------------------------------------------------


def firmware_version(client: NitroClient) -> str:
    """The firmware release, e.g. ``NS13.1: Build 49.13`` (the raw text if it does not parse).

    Raises:
        NitroApiError: the appliance did not report a version.
    """
    items = client.get("nsversion")
    text = str(items[0].get("version", "")).strip() if items else ""
    if not text:
        raise NitroApiError("GET", "nsversion", 200, -1, "the appliance reported no version")
    match = _VERSION.search(text)
    return match.group(0) if match else text


def ha_state(client: NitroClient) -> str:
    """State of the node we talk to, lower case: ``primary``, ``secondary``, ``unknown`` ...

    A standalone appliance reports (or is taken as) ``primary``.
    """
    return _node_state(client.get("hanode"))


def require_primary(client: NitroClient, nodes: Optional[Sequence[JsonObj]] = None) -> None:
    """Refuse to go on unless the node we talk to is primary (or standalone).

    ``nodes`` is the ``hanode`` list when the caller has it already.

    Raises:
        ApplianceNotReady: this node is the HA secondary (or in another non-primary state).
    """
    nodes = client.get("hanode") if nodes is None else nodes
    state = _node_state(nodes)
    if state != "primary":
        raise ApplianceNotReady(f"the appliance at NS_URL is the HA {state} node",
                                _primary_hint(nodes))


def responder_enabled(client: NitroClient) -> bool:
    """True when the RESPONDER feature is enabled (``nsfeature`` as object or array)."""
    items = client.get("nsfeature")
    feature = items[0] if items else {}
    if "responder" in feature:
        return _truthy(feature["responder"])
    enabled = feature.get("feature") or []
    if isinstance(enabled, str):
        enabled = [enabled]
    return any(str(name).upper() == "RESPONDER" for name in enabled)


def unsaved_changes(client: NitroClient) -> Optional[bool]:
    """Whether the running configuration differs from the saved one; None when unknown."""
    items = client.get("nsconfig")
    if not items or "configchanged" not in items[0]:
        return None
    return _truthy(items[0]["configchanged"])


def save_config(client: NitroClient) -> None:
    """Save the running configuration (``save ns config``)."""
    client.action("nsconfig", "save", {})
    logger.info("saved the running configuration")


def finish_run(client: NitroClient, settings: Settings, changed: bool) -> bool:
    """Save the configuration once, per NS_SAVE_CONFIG; returns True when it saved."""
    mode = settings.save_config
    if mode == "never":
        if changed:
            logger.warning("configuration changed but not saved (NS_SAVE_CONFIG=never); it is "
                           "lost at the next reboot unless saved")
        return False
    if mode == "changed" and not changed:
        logger.debug("nothing changed; configuration not saved")
        return False
    save_config(client)
    return True


def check_vserver(client: NitroClient, settings: Settings) -> list[Check]:
    """Is the configured challenge vserver usable: exists, right type, HTTP on 80, UP?"""
    kind = settings.vserver_type
    if kind == "global":
        return [_global_bind_check(client)]
    name = settings.vserver
    if not name:
        return [failed("vserver", f"NS_VSERVER is not set (NS_VSERVER_TYPE={kind})",
                       "set NS_VSERVER to the HTTP vserver that receives port-80 traffic",
                       ExitStatus.CONFIG)]
    found = client.get_one(f"{kind}vserver", name)
    if found is None:
        return [_missing_vserver(client, kind, name)]
    return [
        passed("vserver", f"{kind} vserver '{name}' exists"),
        _protocol_check(found, kind, name),
        _state_check(found, kind, name),
    ]


# -- the report of `ns-letsencrypt test` --------------------------------------------------


def connectivity_report(client: NitroClient, settings: Settings,
                        domains: Optional[Path] = None,
                        certs_dir: Optional[Path] = None, *,
                        with_challenge_checks: bool = True) -> list[Check]:
    """Log in and run every probe; a failure becomes a failed Check, never an exception.

    ``client`` must not be entered yet: this function logs in and (always) out again.
    ``domains``/``certs_dir`` (dehydrated's domains.txt and CERTDIR, when known) let the
    NS_BIND check name entries that match no certificate.
    ``with_challenge_checks=False`` leaves out what only matters to a challenge (RESPONDER,
    the vserver): a scheduled run checks those before its first challenge instead.
    """
    checks: list[Check] = []
    try:
        with client:
            # With header auth the first request is the credential check, so the "nitro"
            # line is only written once the appliance has answered one.
            firmware = _guarded("firmware", lambda: [_firmware_check(client)])
            checks.append(passed("nitro", f"logged in to {settings.url} as {settings.username}"))
            checks.extend(firmware)
            checks.extend(_guarded("ha", lambda: [_ha_check(client)]))
            if with_challenge_checks:
                checks.extend(challenge_checks(client, settings))
            if settings.bind:  # SSL vserver bindings (issue 9): reads only, none without NS_BIND
                checks.extend(_guarded("bind", lambda: _bind_checks(client, settings, domains,
                                                                    certs_dir)))
    except NitroConnectionError as exc:
        checks.append(failed("nitro", exc.message, exc.hint, ExitStatus.CONNECT))
    except NitroAuthError as exc:
        checks.append(failed("nitro", exc.message, exc.hint, ExitStatus.AUTH))
    return checks


def _bind_checks(client: NitroClient, settings: Settings, domains: Optional[Path],
                 certs_dir: Optional[Path]) -> list[Check]:
    from . import bindings
    from .errors import InputError

    try:
        index, kinds = bindings.domains_index(domains, certs_dir)
    except InputError as exc:
        return [failed("bind", exc.message, exc.hint, ExitStatus.CONFIG)]
    return bindings.check(client, settings, index, kinds)


def challenge_checks(client: NitroClient, settings: Settings) -> list[Check]:
    """The probes that matter before a challenge is deployed: RESPONDER and the vserver.

    Refusals become failed Checks; connection and authentication failures propagate.
    """
    return (_guarded("responder", lambda: [_responder_check(client)])
            + _guarded("vserver", lambda: check_vserver(client, settings)))


def _guarded(name: str, probe: Callable[[], list[Check]]) -> list[Check]:
    """Run one probe; a refusal of this probe alone becomes its failed Check.

    Connection and authentication failures propagate: they end the whole report.
    """
    try:
        return probe()
    except NitroPermissionError as exc:
        return [failed(name, exc.message, _POLICY_HINT, ExitStatus.AUTH)]
    except NitroAuthError:
        raise
    except NitroApiError as exc:
        return [failed(name, exc.message, exc.hint, ExitStatus.APPLIANCE)]
    except ApplianceNotReady as exc:
        return [failed(name, exc.message, exc.hint, ExitStatus.NOT_READY)]


def _firmware_check(client: NitroClient) -> Check:
    version = firmware_version(client)
    return passed("firmware", version, value=version)


def _ha_check(client: NitroClient) -> Check:
    nodes = _ha_nodes(client)
    state = _node_state(nodes)
    if state == "primary":
        return passed("ha", "primary (or standalone): configuration changes are allowed",
                      value=state)
    return Check("ha", Level.FAIL, f"the appliance at NS_URL is the HA {state} node",
                 _primary_hint(nodes), ExitStatus.NOT_READY, value=state)


def _responder_check(client: NitroClient) -> Check:
    if responder_enabled(client):
        return passed("responder", "the RESPONDER feature is enabled")
    return failed("responder", "the RESPONDER feature is disabled",
                  f"run on the appliance: {RESPONDER_FIX}", ExitStatus.NOT_READY)


def _ha_nodes(client: NitroClient) -> list[JsonObj]:
    """The hanode list; only the local node, unasked, when nsconfig says there is no pair.

    nsconfig is read anyway (unsaved changes, the deploy's HA test), and its systemtype
    (``Stand-alone``, ``HA``, ``Cluster``) is confirmed; a missing one means asking hanode.
    """
    items = client.get("nsconfig")
    systemtype = str((items[0] if items else {}).get("systemtype", "")).strip().upper()
    if systemtype and systemtype != "HA":
        return [{"id": "0", "state": "Primary"}]
    return client.get("hanode")


# -- vserver details ----------------------------------------------------------------------


def _missing_vserver(client: NitroClient, kind: str, name: str) -> Check:
    other = "cs" if kind == "lb" else "lb"
    if client.get_one(f"{other}vserver", name) is not None:
        return failed("vserver", f"'{name}' is {_article(other)} vserver, not {_article(kind)}",
                      f"set NS_VSERVER_TYPE={other}", ExitStatus.NOT_READY)
    names = _http_vserver_names(client, kind)
    if names:
        hint = f"set NS_VSERVER to one of the HTTP {kind} vservers: {', '.join(names)}"
    else:
        hint = (f"there is no HTTP {kind} vserver; create one that receives port-80 traffic, "
                "or use NS_VSERVER_TYPE=global")
    return failed("vserver", f"no {kind} vserver named '{name}'", hint, ExitStatus.NOT_READY)


def _protocol_check(vserver: JsonObj, kind: str, name: str) -> Check:
    servicetype = str(vserver.get("servicetype", "")).upper()
    port = _int(vserver.get("port"))
    if servicetype == "HTTP" and port == 80:
        return passed("vserver-port", f"{kind} vserver '{name}' serves HTTP on port 80")
    return warning(
        "vserver-port",
        f"{kind} vserver '{name}' serves {servicetype or 'an unknown protocol'} on port {port}",
        "Let's Encrypt validates over plain HTTP on port 80: make sure that traffic reaches "
        "this vserver (e.g. through NAT), or pick an HTTP vserver on port 80",
    )


def _state_check(vserver: JsonObj, kind: str, name: str) -> Check:
    state = _vserver_state(vserver)
    if state == "UP":
        return passed("vserver-state", f"{kind} vserver '{name}' is UP")
    return warning(
        "vserver-state", f"{kind} vserver '{name}' is {state or 'in an unknown state'}",
        "a vserver that is not UP may not evaluate responder policies: give it a service "
        "that is UP, or use NS_VSERVER_TYPE=global",
    )


def _global_bind_check(client: NitroClient) -> Check:
    names = _http_vserver_names(client, "lb") + _http_vserver_names(client, "cs")
    if names:
        return passed("vserver", "global responder binding; HTTP vservers: " + ", ".join(names))
    return warning(
        "vserver", "global responder binding, but no HTTP vserver exists",
        "a global binding only answers traffic that reaches an HTTP vserver: create one "
        "that receives port-80 traffic",
    )


def _http_vserver_names(client: NitroClient, kind: str) -> list[str]:
    return sorted(
        str(item.get("name")) for item in client.get(f"{kind}vserver")
        if str(item.get("servicetype", "")).upper() == "HTTP"
    )


def _vserver_state(vserver: JsonObj) -> str:
    # curstate is what NITRO reports for vservers; the others cover firmware variations.
    for key in ("curstate", "effectivestate", "state"):
        if vserver.get(key):
            return str(vserver[key]).upper()
    return ""


# -- small helpers ------------------------------------------------------------------------


def _node_state(nodes: Sequence[JsonObj]) -> str:
    # Node id 0 is always the node we are talking to (nitro-reference 6.3). A standalone
    # appliance lists only itself, and what state it reports then is unconfirmed: it is the
    # only node, so it is the primary whatever it says; a missing state means the same.
    if len(nodes) <= 1:
        return "primary"
    local = next((node for node in nodes if str(node.get("id", "")).strip() == "0"), None)
    state = (local or {}).get("state")
    return str(state).strip().lower() if state else "primary"


def _primary_hint(nodes: Sequence[JsonObj]) -> str:
    peers = [
        str(node.get("ipaddress")) for node in nodes
        if str(node.get("id", "")).strip() != "0"
        and str(node.get("state", "")).strip().lower() == "primary" and node.get("ipaddress")
    ]
    where = f" ({peers[0]})" if peers else ""
    return (f"configuration changes must go to the primary: point NS_URL at the primary's "
            f"NSIP{where} or at a SNIP with management access that follows the primary")


def _article(kind: str) -> str:
    return f"an {kind}" if kind == "lb" else f"a {kind}"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "enabled", "on", "1")
    return bool(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
