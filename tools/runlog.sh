# shellcheck shell=bash
# The transcript of a run of ns-cronjob.sh or ns-forcerenew.sh (sourced by tools/common.sh).
#
# Every line of the scripts and of what they run (dehydrated, its hooks, ns-letsencrypt) is
# timestamped and goes to the log file NS_LOG_FILE and to this run's transcript in
# NS_LE_RUN_DIR. What reaches the terminal, i.e. the cron mail, depends on NSLE_VERBOSE:
#   1  every line as it happens (ns-forcerenew.sh; ns-cronjob.sh -v or NS_LOG_LEVEL=info|debug)
#   0  quiet (ns-cronjob.sh): nothing while the run goes on; at its end nsle_report prints one
#      line per change and the run's warnings (a day with nothing to do prints nothing), or,
#      when the run failed, its whole transcript.
# Lines written before the transcript exists (set-up errors, the lock) go to the terminal.
# The Python side (ns_letsencrypt/runlog.py) adds the change and warning lines.

NSLE_VERBOSE=1
NSLE_LOG_FD=""         # the log file, open for appending (nsle_open_log)
NSLE_LOG_PATH=""
NSLE_TRANSCRIPT_FD=""  # $NS_LE_RUN_DIR/transcript

# ns-cronjob.sh: quiet unless NS_LOG_LEVEL is info or debug, or -v is among the arguments.
nsle_quiet_unless_asked() {
  local level="${NS_LOG_LEVEL:-warning}" arg
  case "${level,,}" in
    error | warning) NSLE_VERBOSE=0 ;;
    info | debug) NSLE_VERBOSE=1 ;;
    *)
      nsle_err "NS_LOG_LEVEL=$level is not a log level; use warning (the default: quiet)," \
        "info or debug (every line on the terminal)"
      return "$NSLE_EXIT_SETUP"
      ;;
  esac
  for arg in "$@"; do
    case "$arg" in
      -v | --verbose) NSLE_VERBOSE=1 ;;
      *)
        nsle_err "unknown argument '$arg'; usage: $NSLE_NAME [-v]"
        return "$NSLE_EXIT_SETUP"
        ;;
    esac
  done
}

# Record each line of stdin with a timestamp in the log file and the transcript; show it on
# the terminal's descriptor $1 (1 or 2) when verbose, or when there is no transcript yet.
nsle_emit() {
  local fd="$1" line stamped
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf -v stamped '%(%Y-%m-%dT%H:%M:%S%z)T %s' -1 "$line"
    if [[ -n "$NSLE_LOG_FD" ]]; then
      printf '%s\n' "$stamped" >&"$NSLE_LOG_FD"
    fi
    if [[ -n "$NSLE_TRANSCRIPT_FD" ]]; then
      printf '%s\n' "$stamped" >&"$NSLE_TRANSCRIPT_FD"
    fi
    if [[ "$NSLE_VERBOSE" == 1 || -z "$NSLE_TRANSCRIPT_FD" ]]; then
      printf '%s\n' "$stamped" >&"$fd"
    fi
  done
}

# A warning of the scripts themselves: recorded like any line, and kept for the end of a quiet run.
nsle_warn() {
  nsle_emit 2 <<<"${NSLE_NAME:-ns-letsencrypt}: WARNING: $*"
  if [[ -n "${NS_LE_RUN_DIR:-}" && -d "$NS_LE_RUN_DIR" ]]; then
    printf 'WARNING: %s\n' "$*" >>"$NS_LE_RUN_DIR/warnings"
  fi
}

# A change of the scripts themselves (e.g. an ARI renewal started): logged like any line, and
# one of the lines a quiet run prints at its end.
nsle_change() {
  nsle_log "$*"
  if [[ -n "${NS_LE_RUN_DIR:-}" && -d "$NS_LE_RUN_DIR" ]]; then
    printf '%s\n' "$*" >>"$NS_LE_RUN_DIR/changes"
  fi
}

# Start this run's transcript (in NS_LE_RUN_DIR) and open the log file: NS_LOG_FILE (relative
# to the home directory $1; default log/ns-letsencrypt.log there; "off": no log file). A log
# larger than NS_LOG_MAX_KB (default 1024) at the start of a run becomes <log>.1, replacing
# the one before, so the two never hold much more than twice that. Call it under the lock.
nsle_open_log() {
  local home="$1" log="${NS_LOG_FILE:-log/ns-letsencrypt.log}" max="${NS_LOG_MAX_KB:-1024}" size
  if [[ ! "$max" =~ ^[0-9]+$ ]] || ((max == 0)); then
    nsle_err "NS_LOG_MAX_KB=$max is not a positive number of KiB"
    return "$NSLE_EXIT_SETUP"
  fi
  exec {NSLE_TRANSCRIPT_FD}>"$NS_LE_RUN_DIR/transcript"
  [[ "$log" != off ]] || return 0
  [[ "$log" == /* ]] || log="$home/$log"
  if [[ -f "$log" ]] && size="$(wc -c <"$log")" && ((size > max * 1024)); then
    mv -f -- "$log" "$log.1" || nsle_warn "could not move the full log $log to $log.1"
  fi
  # The log names hosts, users and certificates (never secrets): readable by its owner only.
  if ! (umask 077 && mkdir -p -- "${log%/*}" && : >>"$log") 2>/dev/null ||
    ! { exec {NSLE_LOG_FD}>>"$log"; } 2>/dev/null; then
    NSLE_LOG_FD=""
    nsle_warn "cannot write the log file $log; this run is not logged" \
      "(set NS_LOG_FILE to a writable file, or NS_LOG_FILE=off)"
    return 0
  fi
  NSLE_LOG_PATH="$log"
  printf '%(%Y-%m-%dT%H:%M:%S%z)T %s\n' -1 "${NSLE_NAME:-ns-letsencrypt}[$$]: run started" \
    >&"$NSLE_LOG_FD"
}

# The end of a run, called by the EXIT trap nsle_end_run with the exit status. Quiet and
# successful: the changes (stdout), then the warnings (stderr), each once. Quiet and failed: a
# headline, then the whole transcript of the run, in order, on stderr (one stream keeps the
# order in the cron mail). Verbose: everything was shown already.
nsle_report() {
  local rc="$1" run="${NS_LE_RUN_DIR:-}" line
  [[ -n "$NSLE_TRANSCRIPT_FD" ]] || return 0  # the run never started; its error was shown
  if [[ -n "$NSLE_LOG_FD" ]]; then
    printf '%(%Y-%m-%dT%H:%M:%S%z)T %s\n' -1 \
      "${NSLE_NAME:-ns-letsencrypt}[$$]: run ended with exit status $rc" >&"$NSLE_LOG_FD"
  fi
  [[ "$NSLE_VERBOSE" == 0 ]] || return 0
  if ((rc != 0)); then
    {
      printf '%s: failed with exit status %s; the transcript of this run follows' "$NSLE_NAME" "$rc"
      if [[ -n "$NSLE_LOG_PATH" ]]; then
        printf ' (every run is logged in %s)' "$NSLE_LOG_PATH"
      fi
      printf '\n'
      while IFS= read -r line; do printf '%s\n' "$line"; done <"$run/transcript"
    } >&2
    return 0
  fi
  nsle_print_once "$run/changes"
  nsle_print_once "$run/warnings" >&2
}

# Print the lines of file $1 (when it exists), each distinct line once, in order.
nsle_print_once() {
  local line
  local -A seen=()
  [[ -f "$1" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ -n "$line" && -z "${seen[$line]:-}" ]]; then
      seen["$line"]=1
      printf '%s\n' "$line"
    fi
  done <"$1"
}
