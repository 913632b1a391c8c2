"""The Prometheus exposition of the lifecycle: NS_METRICS_FILE and ``status --prometheus``.

Built with prometheus_client on a registry of its own (no process metrics), so the text format
is the library's. Gauges, labelled ``certkey``, ``cert`` (dehydrated's name, "" if unknown) and
``target`` (the appliance):

- ``ns_letsencrypt_certificate_not_after_timestamp_seconds``: notAfter of the deployed certificate
- ``ns_letsencrypt_certificate_renewal_timestamp_seconds``: the renewal time chosen from ARI
  (only certificates that have one)
- ``ns_letsencrypt_certificate_chain_complete``: 1 when the deployed chain is complete, else 0

and per run (no labels): ``ns_letsencrypt_last_run_end_timestamp_seconds`` and
``ns_letsencrypt_last_run_success`` (1 or 0). The file is written to a temporary name in its
directory (starting with ".", which the textfile collector skips) and renamed, readable by all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .inventory import Deployed
from .state import write_atomically

LABELS = ("certkey", "cert", "target")


def registry(rows: Sequence[Deployed], renew_at: Mapping[str, float],
             last_run: Optional[Mapping[str, Any]]) -> CollectorRegistry:
    """The metrics of ``rows``, ARI times by certificate name, and the last run."""
    reg = CollectorRegistry(auto_describe=True)
    not_after = Gauge("ns_letsencrypt_certificate_not_after_timestamp_seconds",
                      "notAfter of the deployed certificate (Unix time)", LABELS, registry=reg)
    renewal = Gauge("ns_letsencrypt_certificate_renewal_timestamp_seconds",
                    "renewal time chosen in the CA's ARI window (Unix time)", LABELS,
                    registry=reg)
    chain = Gauge("ns_letsencrypt_certificate_chain_complete",
                  "1 when the deployed certificate's chain is complete", LABELS, registry=reg)
    for row in rows:
        labels = (row.certkey, row.cert, row.target)
        if row.not_after is not None:
            not_after.labels(*labels).set(row.not_after)
        if row.cert in renew_at:
            renewal.labels(*labels).set(renew_at[row.cert])
        chain.labels(*labels).set(1 if row.chain_complete else 0)
    if last_run:
        Gauge("ns_letsencrypt_last_run_end_timestamp_seconds",
              "end of the last scheduled run (Unix time)", registry=reg).set(
            float(last_run.get("end", 0)))
        Gauge("ns_letsencrypt_last_run_success", "1 when the last scheduled run succeeded",
              registry=reg).set(1 if last_run.get("success") else 0)
    return reg


def render(reg: CollectorRegistry) -> str:
    """The text exposition format."""
    return generate_latest(reg).decode("utf-8")


def write(path: Path, reg: CollectorRegistry) -> None:
    """Write the file atomically (temporary file in the same directory, then rename), mode
    644 whatever the umask (the systemd unit's is 077): node_exporter runs as another user."""
    write_atomically(path, render(reg), 0o644)
