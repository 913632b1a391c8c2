#!/usr/bin/env bash
# dehydrated hook: a thin, strict dispatcher to the ns-letsencrypt Python CLI.
#
# dehydrated runs "$HOOK <hook-name> <args...>". Known hook names go to
# "python -m ns_letsencrypt hook <hook-name> <args...>" and its exit status is ours,
# so a failure stops dehydrated. Unknown names exit 0 without doing anything:
# dehydrated probes with a made-up name, and newer versions add hooks.
#
# Python: $NS_LE_PYTHON, else <install dir>/.venv/bin/python, else python3 on PATH.
# The install dir is the parent of this script's real directory (symlinks resolved).
set -euo pipefail

handler="${1:-}"
case "${handler}" in
  startup_hook | deploy_challenge | clean_challenge | deploy_cert | unchanged_cert | \
    invalid_challenge | request_failure | exit_hook) ;;
  *) exit 0 ;;
esac
shift

# With a domains.txt, exit_hook reconciles every certificate in one Python process; starting
# Python once per unchanged certificate would only repeat that work.
if [[ "${handler}" == unchanged_cert && -f "${BASEDIR:-/nonexistent}/domains.txt" ]]; then
  exit 0
fi

# In a signing run dehydrated always calls another hook after clean_challenge (deploy_cert, or
# exit_hook on any error), so the http-01 objects are queued for that process to remove first
# (ns_letsencrypt/cleanqueue.py): one Python start fewer per certificate. dns-01 values are
# removed at once; a call outside a dehydrated run (no COMMAND) runs Python as always.
if [[ "${handler}" == clean_challenge && "${COMMAND:-}" == sign_domains &&
  "${CHALLENGETYPE:-}" == http-01 ]]; then
  queue_dir="${NS_LE_RUN_DIR:-${BASEDIR:-}}"
  if [[ -n "${queue_dir}" && -d "${queue_dir}" && -w "${queue_dir}" ]]; then
    (umask 077 && printf '%s\n' "$*" >>"${queue_dir}/.ns-letsencrypt-clean")
    exit 0
  fi
fi

hook_dir="$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)"
install_dir="$(dirname -- "${hook_dir}")"

if [[ -n "${NS_LE_PYTHON:-}" ]]; then
  py="${NS_LE_PYTHON}"
elif [[ -x "${install_dir}/.venv/bin/python" ]]; then
  py="${install_dir}/.venv/bin/python"
else
  py="python3"
fi

export PYTHONPATH="${install_dir}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${py}" -m ns_letsencrypt hook "${handler}" "$@"
