"""HA pair behaviour of the fake: command propagation, file sync, config sync (research §3).

Two fake appliances become a pair through :class:`HaLink` (``tests/fakens/ha.py`` builds it);
each node's ``State.ext["ha"]`` is an :class:`HaView` of the link from that node's side. Both
states share one lock, so a request on either node sees the pair consistently.

What is modelled, following ``research/nitro-binding-ha.md`` §3 and nitro-reference §6.3-6.5:

- Every configuration write that succeeds on the primary is run on the secondary too, through
  the same handler (no command policy: propagation is the appliance's own doing). When it fails
  there (e.g. ``add ssl certKey`` whose files have not reached the secondary), the primary's
  answer is still success and the failure is only logged (``HaLink.failures``), as on the
  appliance.
- File uploads (``systemfile``) are not propagated: files reach the secondary through
  ``POST hafiles?action=sync`` (``{"hafiles": {"mode": ["ssl"]}}``), which copies the primary's
  ``/nsconfig/ssl`` files to the secondary without deleting files only the secondary has.
  ``silent_sync`` makes that call answer success and copy nothing (the fault the tool's peer
  check must catch).
- ``propagation = False`` models a failing propagation link (347 ``Command propagation
  failed``): the primary still runs every command, the secondary misses them.
- Writes sent to the secondary are accepted (nothing refuses them) and lost at the next full
  configuration sync, which the next command propagated from the primary triggers (the
  secondary's incarnation no longer matches), as does ``POST hasync?action=Force`` and a
  failover. A full sync reloads the primary's configuration on the secondary; certkeys whose
  files the secondary lacks fail to load there and are left out (with their links and bindings),
  the CTX579137 situation.
- ``hanode`` lists both nodes with their addresses and roles (``appliance.ha_nodes``).
- On a standalone appliance ``hafiles`` sync answers 599 / 363 ``Operation not permitted on
  stand-alone node`` (the code is unconfirmed; the failure itself is confirmed).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any, Optional

from tests.fakens.cmdpolicy import fixed
from tests.fakens.core import HANDLERS, Call, NitroFault, State, handler
from tests.fakens.files import SSL_DIR, file_store, split_path

logger = logging.getLogger(__name__)

NOT_PROPAGATED = ("login", "logout", "systemfile", "hafiles", "hasync")


class HaLink:
    """The pair: both nodes' states and addresses, the sync fault switch and the failure log."""

    def __init__(self, states: tuple[State, State], addresses: tuple[str, str]) -> None:
        self.states = states
        self.addresses = addresses
        self.silent_sync = False  # hafiles sync answers success and copies nothing
        self.propagation = True  # False: commands do not reach the secondary (347, link down)
        self.failures: list[str] = []  # commands that failed on the secondary (its log)
        self.direct_writes: list[str] = []  # writes sent to the secondary, lost at next sync
        self._diverged = False  # the secondary has writes of its own: full sync at next command
        for index, state in enumerate(states):
            state.ha_peer = True
            state.ha_state = "Primary" if index == 0 else "Secondary"
            state.ext["ha"] = HaView(self, index)

    @property
    def primary(self) -> int:
        return 0 if self.states[0].ha_state.lower() == "primary" else 1

    def failover(self) -> None:
        """Swap the roles; the new secondary then loads the new primary's configuration."""
        new_primary = 1 - self.primary
        self.states[new_primary].ha_state = "Primary"
        self.states[1 - new_primary].ha_state = "Secondary"
        self.sync_config()

    def sync_files(self) -> None:
        """``sync HA files ssl``: the primary's /nsconfig/ssl files onto the secondary."""
        if self.silent_sync:
            return
        source = file_store(self.states[self.primary])
        target = file_store(self.states[1 - self.primary])
        for name, content in source.contents(SSL_DIR).items():
            target.write(SSL_DIR, name, content)

    def sync_config(self) -> None:
        """A full configuration sync: the secondary reloads the primary's configuration."""
        source, target = self.states[self.primary], self.states[1 - self.primary]
        for name in ("features", "responderactions", "responderpolicies", "bindings"):
            setattr(target, name, copy.deepcopy(getattr(source, name)))
        for table in ("lbvservers", "csvservers"):
            setattr(target, table, _copied_vservers(getattr(source, table),
                                                    getattr(target, table)))
        target.config_changed, target.last_save = source.config_changed, source.last_save
        _copy_ssl(source, target, self.failures)
        self._diverged = False
        self.direct_writes.clear()

    def after_write(self, index: int, call: Call) -> None:
        """Called by the API after a successful write on node ``index``."""
        if call.resource in NOT_PROPAGATED:
            return
        if index != self.primary:
            self.direct_writes.append(_describe(call))
            self._diverged = True
            return
        if not self.propagation:
            self.failures.append(f"{_describe(call)}: 347 Command propagation failed")
            return
        if self._diverged:
            self.sync_config()  # the secondary's own writes are lost; it has this one now
            return
        registration = HANDLERS[(call.method, call.resource, call.action)]
        secondary = self.states[1 - self.primary]
        try:
            registration.func(secondary, dataclasses.replace(call, body=copy.deepcopy(call.body)))
        except NitroFault as fault:
            text = f"{_describe(call)}: {fault.errorcode} {fault.message}"
            self.failures.append(text)
            logger.warning("HA propagation failed on the secondary: %s", text)
            return
        if call.method != "GET" and call.resource != "nsconfig":
            secondary.mark_changed()


@dataclasses.dataclass
class HaView:
    """One node's view of the pair (``State.ext["ha"]``)."""

    link: HaLink
    index: int

    @property
    def address(self) -> str:
        return self.link.addresses[self.index]

    @property
    def peer_address(self) -> str:
        return self.link.addresses[1 - self.index]

    @property
    def peer_state(self) -> State:
        return self.link.states[1 - self.index]

    @property
    def primary_address(self) -> str:
        return self.link.addresses[self.link.primary]

    def after_write(self, call: Call) -> None:
        self.link.after_write(self.index, call)


def _describe(call: Call) -> str:
    parts = [call.method, call.resource]
    if call.action:
        parts.append(f"action={call.action}")
    body = call.body if isinstance(call.body, dict) else {}
    name = call.name or body.get("certkey") or body.get("name") or body.get("vservername")
    if name:
        parts.append(str(name))
    return " ".join(parts)


def _copied_vservers(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The primary's vservers; addresses and ports stay the secondary's own listeners."""
    copied = {}
    for name, vserver in source.items():
        own = target.get(name)
        copied[name] = dataclasses.replace(
            vserver, ipv46=own.ipv46 if own else vserver.ipv46,
            port=own.port if own and vserver.servicetype == "SSL" else vserver.port)
    return copied


def _copy_ssl(source: State, target: State, failures: list[str]) -> None:
    from tests.fakens import ssl as ssl_plugin

    mine, theirs = ssl_plugin.ssl_state(source), ssl_plugin.ssl_state(target)
    files = file_store(target)
    loaded = {}
    for name, certkey in mine.certkeys.items():
        paths = [certkey.cert_path] + ([certkey.key_path] if certkey.key_path else [])
        missing = [p for p in paths if files.read(*split_path(p)) is None]
        if missing:  # the add fails on the secondary while it loads the configuration
            failures.append(f"sync: add ssl certKey {name}: file {', '.join(missing)} missing")
            continue
        loaded[name] = dataclasses.replace(
            certkey, internal_services=list(certkey.internal_services))
    for certkey in loaded.values():
        if certkey.link is not None and certkey.link not in loaded:
            certkey.link = None
    theirs.certkeys = loaded
    vservers = {}
    for name, vserver in mine.vservers.items():
        own = theirs.vservers.get(name)
        vservers[name] = dataclasses.replace(
            vserver, port=own.port if own else vserver.port,
            ipv46=own.ipv46 if own else vserver.ipv46,
            bindings=[copy.copy(b) for b in vserver.bindings if b.certkey in loaded])
    theirs.vservers = vservers
    theirs.profiles = dict(mine.profiles)


def _view(state: State) -> Optional[HaView]:
    view = state.ext.get("ha")
    return view if isinstance(view, HaView) else None


@handler("POST", "hafiles", "sync", cli=fixed("sync HA files ssl"))
def sync_hafiles(state: State, call: Call) -> None:
    view = _view(state)
    if view is None:
        raise NitroFault(599, 363, "Operation not permitted on stand-alone node")
    body = call.body if isinstance(call.body, dict) else {}
    modes = body.get("mode") or ["all"]
    modes = [modes] if isinstance(modes, str) else modes
    if not set(modes) & {"ssl", "all", "all_plus_misc", "all_minus_misc"}:
        return  # other directories are not modelled
    view.link.sync_files()


@handler("POST", "hasync", "Force", cli=fixed("force HA sync"))
def force_hasync(state: State, call: Call) -> None:
    view = _view(state)
    if view is None:
        raise NitroFault(599, 363, "Operation not permitted on stand-alone node")
    view.link.sync_config()
