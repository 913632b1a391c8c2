# shellcheck shell=bash
# Shared functions of ns-cronjob.sh and ns-forcerenew.sh (sourced, never executed):
# where the code and the configuration live, which dehydrated to run, the run lock, the final
# reconciliation with the appliance, and timestamped log lines. The Python side (ns_letsencrypt/register.py) locates dehydrated in
# the same order; tests/test_scripts.py checks that both agree.

# The transcript and log file (next to this file; no dirname: PATH may be minimal under cron).
# shellcheck source=tools/runlog.sh
if [[ "${BASH_SOURCE[0]}" == */* ]]; then . "${BASH_SOURCE[0]%/*}/runlog.sh"; else . runlog.sh; fi

# Exit status when another run holds the lock (EX_TEMPFAIL: "try again later"); distinct from
# dehydrated's 1 and from the CLI's 1-8 so that cron mail and monitoring can tell them apart.
NSLE_EXIT_LOCKED=75
# Exit status for a problem with the set-up itself (no dehydrated, no config.sh, bad argument).
NSLE_EXIT_SETUP=2

# One log line on stdout: "<ISO time> <script>: <message>" (see nsle_emit in runlog.sh).
nsle_log() {
  nsle_emit 1 <<<"${NSLE_NAME:-ns-letsencrypt}: $*"
}

# One log line on stderr, for failures (cron mails both streams; monitoring often reads stderr).
nsle_err() {
  nsle_emit 2 <<<"${NSLE_NAME:-ns-letsencrypt}: ERROR: $*"
}

# Run a command with timestamps on each line of its output, keeping stdout and stderr apart,
# recorded in the run's transcript and log (nsle_emit). The command's exit status is returned
# (pipefail makes the pipelines report it).
nsle_run() {
  { "$@" 2>&1 1>&3 3>&- | nsle_emit 2; } 3>&1 | nsle_emit 1
}

# The directory holding the code (hooks/, tools/, the dehydrated submodule): the directory of
# the script given as $1, with symlinks resolved, so /usr/local/bin/ns-cronjob.sh -> clone works.
nsle_code_dir() {
  local script
  script="$(readlink -f -- "$1")"
  dirname -- "$script"
}

# The directory holding config.sh, domains.txt, .env and dehydrated's state: NS_LE_HOME when
# set, otherwise the code directory ($1).
nsle_home_dir() {
  local home="${NS_LE_HOME:-$1}"
  if [[ ! -d "$home" ]]; then
    nsle_err "NS_LE_HOME=$home is not a directory"
    return "$NSLE_EXIT_SETUP"
  fi
  (cd -- "$home" && pwd -P)
}

# Print the dehydrated to run. Order: $DEHYDRATED (a path or a command name), the submodule
# <code>/dehydrated/dehydrated when it is checked out, `dehydrated` on PATH.
nsle_find_dehydrated() {
  local code_dir="$1" found
  if [[ -n "${DEHYDRATED:-}" ]]; then
    if found="$(command -v -- "$DEHYDRATED")" && [[ -x "$found" && ! -d "$found" ]]; then
      printf '%s\n' "$found"
      return 0
    fi
    nsle_err "DEHYDRATED=$DEHYDRATED is not an executable file; fix or unset it"
    return "$NSLE_EXIT_SETUP"
  fi
  if [[ -f "$code_dir/dehydrated/dehydrated" && -x "$code_dir/dehydrated/dehydrated" ]]; then
    printf '%s\n' "$code_dir/dehydrated/dehydrated"
    return 0
  fi
  if found="$(command -v dehydrated)"; then
    printf '%s\n' "$found"
    return 0
  fi
  nsle_err "dehydrated not found (looked at \$DEHYDRATED, $code_dir/dehydrated/dehydrated and PATH)." \
    "Get it with 'git submodule update --init' in $code_dir, or 'apt-get install dehydrated'," \
    "or point DEHYDRATED at the script."
  return "$NSLE_EXIT_SETUP"
}

# Take the run lock <home>/.ns-letsencrypt.lock on file descriptor 9 (held until the script
# exits). A second run waits up to NS_LOCK_WAIT seconds (default 0: give up at once).
nsle_lock() {
  local lockfile="$1/.ns-letsencrypt.lock" wait="${NS_LOCK_WAIT:-0}"
  if [[ ! "$wait" =~ ^[0-9]+$ ]]; then
    nsle_err "NS_LOCK_WAIT=$wait is not a number of seconds"
    return "$NSLE_EXIT_SETUP"
  fi
  exec 9>>"$lockfile"
  if ! flock -w "$wait" 9; then
    nsle_err "another ns-letsencrypt run holds $lockfile (waited ${wait}s); not starting." \
      "Set NS_LOCK_WAIT=<seconds> to wait longer."
    return "$NSLE_EXIT_LOCKED"
  fi
}

# Print the value of variable $3 after sourcing config.sh ($2) the way dehydrated does (BASEDIR
# preset to the home directory $1), or $4 when the config leaves it empty.
nsle_config_value() {
  local value
  value="$(BASEDIR="$1" bash -c 'set +u; . "$1" >/dev/null; printf "%s" "${!2:-}"' _ "$2" "$3")" || {
    nsle_err "$2 could not be read by bash"
    return "$NSLE_EXIT_SETUP"
  }
  printf '%s\n' "${value:-${4:-}}"
}

# Make sure the http-01 WELLKNOWN directory of config.sh exists: dehydrated refuses to run
# without it even though the hook, not a web server, answers the challenges.
nsle_ensure_wellknown() {
  local wellknown
  wellknown="$(nsle_config_value "$1" "$2" WELLKNOWN)" || return
  if [[ -n "$wellknown" ]]; then
    mkdir -p -- "$wellknown"
  fi
}

# The Python that runs ns_letsencrypt, in the order of hooks/ns-hook.sh: $NS_LE_PYTHON, the
# virtualenv <code>/.venv ($1), python3 on PATH.
nsle_python() {
  if [[ -n "${NS_LE_PYTHON:-}" ]]; then
    printf '%s\n' "$NS_LE_PYTHON"
  elif [[ -x "$1/.venv/bin/python" ]]; then
    printf '%s\n' "$1/.venv/bin/python"
  else
    printf '%s\n' python3
  fi
}

# After dehydrated succeeded: compare every certificate of domains.txt with the appliance and
# redeploy what differs. exit_hook would do it, but dehydrated 0.7 ignores its exit status (it
# only prints "exit_hook returned with non-zero exit code!"), so a certificate that could not be
# deployed would leave the run exiting 0; nsle_prepare exports NS_LE_SCRIPT_RECONCILES=1 so that
# exit_hook leaves a successful run's reconciliation to this function (it still reconciles
# after a failed run, which this script does not). When everything is in place this costs 4
# NITRO requests. Paths as dehydrated derives them from config.sh. Returns
# the status of `ns-letsencrypt reconcile` (8: a certificate is not deployed).
nsle_reconcile() {
  local basedir domains_txt certs_dir py rc
  basedir="$(nsle_config_value "$NSLE_HOME" "$NSLE_CONFIG" BASEDIR "$NSLE_HOME")" || return
  domains_txt="$(nsle_config_value "$NSLE_HOME" "$NSLE_CONFIG" DOMAINS_TXT "$basedir/domains.txt")" || return
  certs_dir="$(nsle_config_value "$NSLE_HOME" "$NSLE_CONFIG" CERTDIR "$basedir/certs")" || return
  py="$(nsle_python "$NSLE_CODE")"
  nsle_log "checking every certificate of $domains_txt on the appliance"
  PYTHONPATH="$NSLE_CODE${PYTHONPATH:+:$PYTHONPATH}" nsle_run "$py" -m ns_letsencrypt \
    reconcile --domains-txt "$domains_txt" --certs-dir "$certs_dir" || {
    rc=$?
    nsle_err "ns-letsencrypt reconcile failed with exit status $rc: the appliance does not" \
      "have every certificate (see the lines above); the next run tries again"
    return "$rc"
  }
}

# A private directory for this run (mode 700), exported as NS_LE_RUN_DIR: the hook processes of
# one run share what must not be read or said again within it (the NITRO session, notes already
# shown). It lives only as long as the script: the EXIT trap removes it, also after a crash. Its
# path is recorded in <home>/.ns-letsencrypt.run so that the next run (holding the lock, so no
# other run of this home is alive) ends the session of a run killed before its trap ran.
nsle_run_dir() {
  local record="$NSLE_HOME/.ns-letsencrypt.run" stale=""
  if [[ -f "$record" ]]; then
    stale="$(<"$record")"
    nsle_end_run_dir "$stale"
  fi
  NS_LE_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ns-letsencrypt-run.XXXXXXXX")" || {
    nsle_err "could not create a private run directory under ${TMPDIR:-/tmp}"
    return "$NSLE_EXIT_SETUP"
  }
  export NS_LE_RUN_DIR
  printf '%s\n' "$NS_LE_RUN_DIR" >"$record"
  trap nsle_end_run EXIT
}

# Log out of a NITRO session a run directory ($1) still holds (the session id stays in its
# file; ns-letsencrypt end-run reads it there). Only a directory that mktemp made for us
# qualifies.
nsle_end_session() {
  local dir="$1" py
  nsle_is_run_dir "$dir" || return 0
  if compgen -G "$dir/session-*.json" >/dev/null; then
    py="$(nsle_python "$NSLE_CODE")"
    PYTHONPATH="$NSLE_CODE${PYTHONPATH:+:$PYTHONPATH}" nsle_run "$py" -m ns_letsencrypt \
      end-run --run-dir "$dir" || true
  fi
}

nsle_is_run_dir() {
  [[ "$1" == */ns-letsencrypt-run.* && -d "$1" && -O "$1" ]]
}

# End what a run directory ($1) still holds (a session), then remove it.
nsle_end_run_dir() {
  nsle_end_session "$1"
  if nsle_is_run_dir "$1"; then
    rm -rf -- "$1"
  fi
}

# The EXIT trap: end the run's NITRO session if one is still open, say what a quiet run has to
# say, forget everything this run kept (see nsle_run_dir). $1: the script's exit status, when
# an earlier part of the trap (tools/lifecycle.sh) has changed $?.
nsle_end_run() {
  local rc=$?
  rc="${1:-$rc}"
  if [[ -n "${NS_LE_RUN_DIR:-}" ]]; then
    nsle_end_session "$NS_LE_RUN_DIR"
    nsle_report "$rc"  # runlog.sh: reads the run's transcript, so before the directory goes
    rm -rf -- "$NS_LE_RUN_DIR"
    rm -f -- "$NSLE_HOME/.ns-letsencrypt.run"
  fi
}

# Everything both scripts do before running dehydrated. Sets NSLE_CODE, NSLE_HOME,
# NSLE_CONFIG and NSLE_DEHYDRATED (read by the sourcing script), and exports NS_LE_HOME,
# NS_LE_RUN_DIR and NS_LE_SCRIPT_RECONCILES for the hook. Call it directly, not in a subshell: the lock lives on this shell's descriptor 9.
# shellcheck disable=SC2034
nsle_prepare() {
  NSLE_CODE="$(nsle_code_dir "$1")"
  NSLE_HOME="$(nsle_home_dir "$NSLE_CODE")" || return
  NSLE_CONFIG="$NSLE_HOME/config.sh"
  if [[ ! -f "$NSLE_CONFIG" ]]; then
    nsle_err "$NSLE_CONFIG not found; copy config.sh.example to config.sh and edit it"
    return "$NSLE_EXIT_SETUP"
  fi
  NSLE_DEHYDRATED="$(nsle_find_dehydrated "$NSLE_CODE")" || return
  nsle_lock "$NSLE_HOME" || return
  nsle_ensure_wellknown "$NSLE_HOME" "$NSLE_CONFIG" || return
  export NS_LE_HOME="$NSLE_HOME" NS_LE_SCRIPT_RECONCILES=1
  nsle_run_dir || return
  nsle_open_log "$NSLE_HOME" || return
}
