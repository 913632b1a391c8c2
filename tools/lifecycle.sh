# shellcheck shell=bash
# Issue 13, the certificate lifecycle steps of ns-cronjob.sh (sourced after tools/common.sh):
#   nsle_lifecycle_start  after nsle_prepare: at the script's exit, whatever its status, run
#                         `ns-letsencrypt run-end` (notifications, metrics file, last-run state;
#                         it never changes the exit status), then the usual clean-up
#   nsle_ari_renew        after `dehydrated --cron`: ask `ns-letsencrypt ari --due` which
#                         certificates the CA's ACME Renewal Information (RFC 9773) says to renew
#                         now, and force a dehydrated run of exactly those domains.txt lines
# dehydrated has no ARI, and its lock forbids starting it again from inside a hook, so both
# happen here, between dehydrated runs.

# The Python command line of ns_letsencrypt, as nsle_reconcile runs it.
nsle_py() {
  PYTHONPATH="$NSLE_CODE${PYTHONPATH:+:$PYTHONPATH}" "$(nsle_python "$NSLE_CODE")" -m ns_letsencrypt "$@"
}

nsle_lifecycle_start() {
  trap nsle_lifecycle_trap EXIT
}

# The whole EXIT trap of ns-cronjob.sh: run-end, then common.sh's end of run, both told the
# script's exit status.
nsle_lifecycle_trap() {
  local rc=$?
  nsle_lifecycle_end "$rc"
  nsle_end_run "$rc"
}

# The EXIT trap's first part: the run's end for ns-letsencrypt run-end. Logged failures only.
nsle_lifecycle_end() {
  local rc="$1" certs_dir
  [[ -n "${NS_LE_RUN_DIR:-}" && -d "$NS_LE_RUN_DIR" ]] || return 0
  certs_dir="$(nsle_config_value "$NSLE_HOME" "$NSLE_CONFIG" CERTDIR "$NSLE_HOME/certs")" || return 0
  nsle_run nsle_py run-end --exit-status "$rc" --certs-dir "$certs_dir" ||
    nsle_err "ns-letsencrypt run-end failed (exit status $?); the run's status stays $rc"
  return 0
}

# Renew the certificates ARI says are due; a failing ARI check is logged and ignored (RENEW_DAYS
# decides as without ARI), a failing renewal is the run's failure.
nsle_ari_renew() {
  local subset="$NS_LE_RUN_DIR/ari-domains.txt" rc
  # stdout (the lines to force) goes to the file, stderr (the log) is timestamped
  { nsle_py ari --due --config "$NSLE_CONFIG" 2>&1 1>&3 3>&- | nsle_emit 2; } 3>"$subset" || {
    nsle_err "ns-letsencrypt ari failed with exit status $?; RENEW_DAYS decides as without ARI"
    return 0
  }
  [[ -s "$subset" ]] || return 0
  nsle_change "ARI: renewing now: $(paste -sd';' "$subset")"
  nsle_run "$NSLE_DEHYDRATED" --cron --force --config "$NSLE_CONFIG" --domains-txt "$subset" || {
    rc=$?
    nsle_err "dehydrated --cron --force (ARI renewal) failed with exit status $rc; see above"
    return "$rc"
  }
}
