"""The certificate lifecycle after issuance (issue 13): when to renew, who to tell, what to show.

- ``dehydrated_conf``: the few values of dehydrated's config.sh this package needs (the CA).
- ``acme``: unauthenticated HTTPS to the CA (directory, ACME Renewal Information), verified.
- ``state``: the small JSON state file under the install directory (``lifecycle-state.json``).
- ``ari``: RFC 9773 renewal windows and which certificates are due (``ns-letsencrypt ari``).
- ``inventory``: the deployed certificates as the appliance reports them, read once per run.
- ``notify``: apprise notifications (failure, expiry, renewal).
- ``metrics``: the Prometheus exposition (``NS_METRICS_FILE``, ``status --prometheus``).
- ``ca``: what the configured CA offers (``ns-letsencrypt ca``).

None of these changes a run's exit status; only the renewals ARI asks for can fail a run, and
they are run by ns-cronjob.sh like any other dehydrated run.
"""
