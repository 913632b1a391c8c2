#!/usr/bin/env bash
# Daily job: let dehydrated renew every certificate of domains.txt that is due (RENEW_DAYS),
# deploying each through hooks/ns-hook.sh, check that the appliance has every certificate
# (ns-letsencrypt reconcile), then archive superseded files (--cleanup). When the CA offers ARI
# (RFC 9773), the certificates its renewal windows say are due are renewed right after the
# dehydrated run (tools/lifecycle.sh); at exit, notifications and the metrics file (run-end).
# Run it daily from cron or the systemd timer in systemd/; it does nothing when nothing is due.
# Quiet: a run that changed nothing prints nothing; one that changed something prints one line
# per change; a failed run prints its whole transcript. -v (or NS_LOG_LEVEL=info or debug)
# shows every line as it happens. Every run is logged in NS_LOG_FILE (tools/runlog.sh).
# Config: config.sh and domains.txt in NS_LE_HOME, or else next to this script.
# Exit status: 0 ok; 2 set-up problem; 75 another run holds the lock; else dehydrated's failure
# or that of ns-letsencrypt reconcile (8: a certificate could not be deployed).
set -euo pipefail
NSLE_NAME="$(basename -- "$0")"
# shellcheck source=tools/common.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/tools/common.sh"
# shellcheck source=tools/lifecycle.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/tools/lifecycle.sh"

main() {
  nsle_quiet_unless_asked "$@" || return
  nsle_prepare "${BASH_SOURCE[0]}" || return
  nsle_lifecycle_start  # issue 13: notifications and metrics when the script exits
  nsle_log "renewing what is due (home $NSLE_HOME, $NSLE_DEHYDRATED)"
  nsle_run "$NSLE_DEHYDRATED" --cron --config "$NSLE_CONFIG" || {
    local rc=$?
    nsle_err "dehydrated --cron failed with exit status $rc; see the lines above"
    return "$rc"
  }
  nsle_ari_renew || return  # issue 13: what the CA's renewal information says is due now
  nsle_reconcile || return
  nsle_run "$NSLE_DEHYDRATED" --cleanup --config "$NSLE_CONFIG" || {
    local rc=$?
    nsle_err "dehydrated --cleanup failed with exit status $rc"
    return "$rc"
  }
  nsle_log "done"
}

main "$@"
