"""Appliance probes: against the fake NetScaler, and against canned answers for the body
shapes the fake does not produce (singletons as arrays, feature lists only, CLI-cased states).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ns_letsencrypt import appliance
from ns_letsencrypt.errors import ApplianceNotReady
from ns_letsencrypt.nitro import NitroClient
from tests.canned import CannedNitro
from tests.conftest import PASSWORD, USER


def client_for(fake: Any) -> NitroClient:
    return NitroClient(fake.url, USER, PASSWORD, pin=fake.cert_sha256)


def test_probes_of_a_ready_standalone_appliance(fake: Any) -> None:
    fake.set_version("NetScaler NS13.1: Build 49.13.nc, Date: Jun 17 2023, 00:25:57   (64-bit)")
    with client_for(fake) as client:
        assert appliance.firmware_version(client) == "NS13.1: Build 49.13"
        assert appliance.ha_state(client) == "primary"
        appliance.require_primary(client)
        assert appliance.responder_enabled(client) is True
        assert appliance.unsaved_changes(client) is False


@pytest.mark.parametrize("state", ["UNKNOWN", "Stand-alone", ""])
def test_a_single_node_is_primary_whatever_state_it_reports(state: str) -> None:
    with canned_client({"hanode": {"hanode": [{"id": "0", "state": state}]}}) as client:
        assert appliance.ha_state(client) == "primary"
        appliance.require_primary(client)


def test_require_primary_on_the_secondary_names_the_primary(fake: Any) -> None:
    fake.set_ha_state("Secondary")
    with fake.state.lock:
        fake.state.ha_peer = True
    with client_for(fake) as client:
        assert appliance.ha_state(client) == "secondary"
        with pytest.raises(ApplianceNotReady) as info:
            appliance.require_primary(client)
    assert info.value.hint and "127.0.0.2" in info.value.hint


def test_responder_probe_follows_the_feature(fake: Any) -> None:
    fake.set_feature("RESPONDER", False)
    with client_for(fake) as client:
        assert appliance.responder_enabled(client) is False


def test_save_config_clears_unsaved_changes(fake: Any) -> None:
    with client_for(fake) as client:
        client.add("responderaction", {"name": "le-acme-x", "type": "respondwith",
                                       "target": '"HTTP/1.1 200 OK\\r\\n\\r\\nx"'})
        assert appliance.unsaved_changes(client) is True
        appliance.save_config(client)
        assert appliance.unsaved_changes(client) is False
    assert [r.action for r in fake.writes() if r.resource == "nsconfig"] == ["save"]


# -- other body shapes ----------------------------------------------------------------------


@contextmanager
def canned_client(bodies: dict[str, Any]) -> Iterator[NitroClient]:
    """A header-auth client of a loopback server answering GET <resource> with ``bodies``."""
    with CannedNitro(bodies) as server, \
            NitroClient(server.url, USER, PASSWORD, auth="header") as client:
        yield client


def test_singletons_as_arrays_and_cli_cased_states() -> None:
    with canned_client({
        "nsversion": {"nsversion": [{"version": "NetScaler NS12.1: Build 65.25.nc, Date: x"}]},
        "nsfeature": {"nsfeature": [{"feature": ["LB", "SSL", "RESPONDER"]}]},
        "hanode": {"hanode": [{"id": "0", "state": "PRIMARY"}, {"id": "1", "state": "SECONDARY"}]},
        "nsconfig": {"nsconfig": [{"ipaddress": "10.0.0.5"}]},
    }) as client:
        assert appliance.firmware_version(client) == "NS12.1: Build 65.25"
        assert appliance.responder_enabled(client) is True
        assert appliance.ha_state(client) == "primary"
        assert appliance.unsaved_changes(client) is None


def test_unparsable_version_is_reported_as_is_and_missing_state_means_standalone() -> None:
    with canned_client({
        "nsversion": {"nsversion": {"version": "  Custom build 7  "}},
        "nsfeature": {"nsfeature": {"feature": "LB"}},
        "hanode": {"hanode": [{"id": "0", "name": "ns1"}]},
        "nsconfig": {"nsconfig": {"configchanged": "false"}},
    }) as client:
        assert appliance.firmware_version(client) == "Custom build 7"
        assert appliance.responder_enabled(client) is False
        assert appliance.ha_state(client) == "primary"
        assert appliance.unsaved_changes(client) is False
