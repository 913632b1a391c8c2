#!/usr/bin/env bash
# Force a new certificate now, even when the current one is not due.
#   ns-forcerenew.sh                 every certificate of domains.txt
#   ns-forcerenew.sh NAME [NAME...]  only the certificates whose domains.txt line contains NAME
#                                    (any of its names, or its "> alias"); the others are left
#                                    alone, so the CA's duplicate-certificate limit is not hit
# Config: config.sh and domains.txt in NS_LE_HOME, or else next to this script.
# Then every certificate of domains.txt is checked on the appliance (ns-letsencrypt reconcile).
# Exit status: 0 ok; 2 set-up problem or unknown NAME; 75 another run holds the lock; else
# dehydrated's failure or that of ns-letsencrypt reconcile (8: a certificate is not deployed).
set -euo pipefail
NSLE_NAME="$(basename -- "$0")"
# shellcheck source=tools/common.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/tools/common.sh"

# Print the lines of domains.txt ($1) that name any of the remaining arguments, as dehydrated
# reads them (lower case, trimmed, comments and blank lines skipped). Fails naming every
# argument that matches no line.
select_lines() {
  local domains_txt="$1" line token wanted found missing=() tokens=()
  shift
  local -A picked=()
  local -a lines=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line//$'\r'/}"
    line="$(printf '%s' "$line" | tr '[:upper:]' '[:lower:]' | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')"
    [[ -z "$line" || "$line" == \#* ]] && continue
    lines+=("$line")
  done <"$domains_txt"
  for wanted in "$@"; do
    wanted="$(printf '%s' "$wanted" | tr '[:upper:]' '[:lower:]')"
    found=no
    for line in "${lines[@]}"; do
      # "a b>alias" and "a b > alias" both name the alias; split it off as its own token
      read -ra tokens <<<"${line//>/ }"
      for token in "${tokens[@]}"; do
        if [[ "$token" == "$wanted" ]]; then
          picked["$line"]=1
          found=yes
        fi
      done
    done
    [[ "$found" == yes ]] || missing+=("$wanted")
  done
  if ((${#missing[@]})); then
    nsle_err "not in $domains_txt: ${missing[*]}"
    return "$NSLE_EXIT_SETUP"
  fi
  for line in "${lines[@]}"; do
    if [[ -n "${picked[$line]:-}" ]]; then
      printf '%s\n' "$line"
    fi
  done
}

main() {
  nsle_prepare "${BASH_SOURCE[0]}" || return
  local -a selection=()
  if (($#)); then
    local domains_txt subset
    domains_txt="$(nsle_config_value "$NSLE_HOME" "$NSLE_CONFIG" DOMAINS_TXT "$NSLE_HOME/domains.txt")" || return
    if [[ ! -r "$domains_txt" ]]; then
      nsle_err "$domains_txt not found or not readable"
      return "$NSLE_EXIT_SETUP"
    fi
    subset="$NS_LE_RUN_DIR/domains.txt"  # removed with the run directory
    select_lines "$domains_txt" "$@" >"$subset" || return
    selection=(--domains-txt "$subset")
    nsle_log "forcing renewal of: $(paste -sd';' "$subset")"
  else
    nsle_log "forcing renewal of every certificate in domains.txt"
  fi
  nsle_run "$NSLE_DEHYDRATED" --cron --force --config "$NSLE_CONFIG" "${selection[@]}" || {
    local rc=$?
    nsle_err "dehydrated --cron --force failed with exit status $rc; see the lines above"
    return "$rc"
  }
  nsle_reconcile || return
  nsle_log "done"
}

main "$@"
