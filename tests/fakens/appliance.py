"""Appliance-level resources: nsversion, hanode, nsfeature, nsconfig, lbvserver, csvserver.

Shapes follow nitro-reference §5.1, §6 and §7: singletons (nsversion, nsconfig, nsfeature) are
JSON objects, hanode and vservers are arrays; vserver ports are numbers.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from tests.fakens.cmdpolicy import fixed, join, quote, show
from tests.fakens.core import Call, NitroFault, State, VServer, handler

# CLI feature names as `show ns feature` lists them; the JSON booleans are their lower-case forms.
FEATURES = (
    "WL", "SP", "LB", "CS", "CR", "SC", "CMP", "PQ", "SSL", "GSLB", "HDOSP", "CF", "IC",
    "SSLVPN", "AAA", "OSPF", "RIP", "BGP", "REWRITE", "IPv6PT", "AppFw", "RESPONDER",
    "HTMLInjection", "push", "AppFlow", "CloudBridge", "ISIS", "CH", "AppQoE",
    "ContentAccel", "FEO", "LSN", "RDPProxy", "Rep", "URLFiltering", "VideoOptimization",
    "ForwardProxy", "SSLInterception", "AdaptiveTCP", "CQA", "CI", "BOT", "APIGateway",
)
_CANONICAL = {name.upper(): name.upper() for name in FEATURES}


def now_text() -> str:
    """A timestamp in the appliance's `lastconfigsavetime` style."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())


@handler("GET", "nsversion", cli=fixed("show ns version"))
def get_nsversion(state: State, call: Call) -> dict[str, Any]:
    return {"nsversion": {"installedversion": False, "version": state.version, "mode": "1"}}


def _node(node_id: int, name: str, address: str, node_state: str) -> dict[str, Any]:
    return {"id": str(node_id), "name": name, "ipaddress": address, "state": node_state,
            "hastatus": "ENABLED", "hasync": "ENABLED", "haprop": "ENABLED",
            "inc": "DISABLED", "failsafe": "OFF"}


def ha_nodes(state: State) -> list[dict[str, Any]]:
    """Node 0 is the node we talk to; an HA pair adds its peer as node 1."""
    ha = state.ext.get("ha")  # a node of a FakeHaPair knows its peer's address and role
    if ha is not None:
        return [_node(0, state.hostname, ha.address, state.ha_state),
                _node(1, ha.peer_state.hostname, ha.peer_address, ha.peer_state.ha_state)]
    nodes = [_node(0, state.hostname, "127.0.0.1", state.ha_state)]
    if state.ha_peer:
        peer = "Secondary" if state.ha_state.lower() == "primary" else "Primary"
        nodes.append(_node(1, state.hostname + "-peer", "127.0.0.2", peer))
    return nodes


@handler("GET", "hanode", cli=show("HA node"))
def get_hanode(state: State, call: Call) -> dict[str, Any]:
    nodes = ha_nodes(state)
    if call.name is not None:
        nodes = [n for n in nodes if n["id"] == call.name]
        if not nodes:
            raise NitroFault(404, 258, f"No such resource [id, {call.name}]")
    return {"hanode": nodes}


@handler("GET", "nsfeature", cli=fixed("show ns feature"))
def get_nsfeature(state: State, call: Call) -> dict[str, Any]:
    enabled = [name for name in _CANONICAL if state.features.get(name)]
    body: dict[str, Any] = {name.lower(): bool(state.features.get(name)) for name in _CANONICAL}
    body["feature"] = enabled
    return {"nsfeature": body}


def _requested_features(call: Call) -> list[str]:
    raw = call.body.get("feature") if isinstance(call.body, dict) else None
    if isinstance(raw, str):
        raw = [raw]
    if not raw or not isinstance(raw, list):
        raise NitroFault(599, 1095, "Required argument missing [feature]")
    names = []
    for item in raw:
        name = _CANONICAL.get(str(item).upper())
        if name is None:
            raise NitroFault(599, 1097, f"Invalid argument value [feature, {item}]")
        names.append(name)
    return names


def _feature_cli(verb: str) -> Any:
    def render(call: Call) -> str:
        raw = call.body.get("feature") if isinstance(call.body, dict) else None
        items = raw if isinstance(raw, list) else [raw] if raw else []
        return join(verb, "ns feature", " ".join(str(i) for i in items))

    return render


@handler("POST", "nsfeature", "enable", cli=_feature_cli("enable"))
def enable_nsfeature(state: State, call: Call) -> None:
    for name in _requested_features(call):
        state.features[name] = True


@handler("POST", "nsfeature", "disable", cli=_feature_cli("disable"))
def disable_nsfeature(state: State, call: Call) -> None:
    for name in _requested_features(call):
        state.features[name] = False


@handler("GET", "nsconfig", cli=fixed("show ns config"))
def get_nsconfig(state: State, call: Call) -> dict[str, Any]:
    ha = state.ext.get("ha")
    address = ha.address if ha is not None else "127.0.0.1"
    return {"nsconfig": {
        "ipaddress": address, "netmask": "255.0.0.0",
        "primaryip": ha.primary_address if ha is not None else address,
        "systemtype": "HA" if state.ha_peer else "Stand-alone",
        "lastconfigsavetime": state.last_save, "configchanged": state.config_changed,
        "timezone": "CoordinatedUniversalTime",
    }}


@handler("POST", "nsconfig", "save", cli=fixed("save ns config"))
def save_nsconfig(state: State, call: Call) -> None:
    state.config_changed = False
    state.last_save = now_text()


def vserver_json(vserver: VServer) -> dict[str, Any]:
    """A vserver as GET lbvserver / csvserver returns it."""
    return {"name": vserver.name, "servicetype": vserver.servicetype, "port": vserver.port,
            "ipv46": vserver.ipv46, "curstate": vserver.state, "effectivestate": vserver.state,
            "state": "ENABLED" if vserver.state == "UP" else "DISABLED"}


def find_vserver(table: dict[str, VServer], name: Optional[str]) -> VServer:
    """The named vserver, or the appliance's 404/258 answer."""
    if name is None or name not in table:
        raise NitroFault(404, 258, f"No such resource [name, {name}]")
    return table[name]


def _vserver_cli(kind: str) -> Any:
    return lambda call: join("show", kind, "vserver", quote(call.name) if call.name else None)


def _list_vservers(table: dict[str, VServer], resource: str, call: Call) -> dict[str, Any]:
    if call.name is not None:
        return {resource: [vserver_json(find_vserver(table, call.name))]}
    return {resource: [vserver_json(v) for v in table.values()]}


@handler("GET", "lbvserver", cli=_vserver_cli("lb"))
def get_lbvserver(state: State, call: Call) -> dict[str, Any]:
    return _list_vservers(state.lbvservers, "lbvserver", call)


@handler("GET", "csvserver", cli=_vserver_cli("cs"))
def get_csvserver(state: State, call: Call) -> dict[str, Any]:
    return _list_vservers(state.csvservers, "csvserver", call)
