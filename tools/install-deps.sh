#!/usr/bin/env bash
# Install what the tests and the demo need, and nothing that is already there:
# Debian packages (pebble, dehydrated, shellcheck, openssl, curl) and a virtualenv in .venv
# with the project and its test extra. Safe to run again; run as root on Debian/Ubuntu.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

need_apt=()
for bin in pebble pebble-challtestsrv dehydrated shellcheck openssl curl flock; do
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$bin")
done
# dns-01 tests (issue 11): a real BIND, and PowerDNS with its HTTP API for a lexicon provider.
# The daemons live in /usr/sbin, which a non-root PATH may lack.
for bin in named tsig-keygen pdns_server pdnsutil; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] ||
    need_apt+=("$bin")
done
if ((${#need_apt[@]})); then
  pkgs=()
  for bin in "${need_apt[@]}"; do
    case "$bin" in
      pebble|pebble-challtestsrv) pkgs+=(pebble) ;;
      flock) pkgs+=(util-linux) ;;
      named) pkgs+=(bind9) ;;
      tsig-keygen) pkgs+=(bind9-utils) ;;
      pdns_server | pdnsutil) pkgs+=(pdns-server pdns-backend-sqlite3) ;;
      *) pkgs+=("$bin") ;;
    esac
  done
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: missing ${need_apt[*]} and no apt-get; install them by hand" >&2
    exit 1
  fi
  echo "install-deps: installing Debian packages: ${pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    echo "install-deps: python3 -m venv failed; installing python3-venv" >&2
    rm -rf .venv
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv .venv
  fi
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test,lexicon]'
  touch "$stamp"
fi
# Bytecode for the package (pip's editable install compiles none): every hook call is a Python
# process of its own, and one that compiles ns_letsencrypt from source costs ~50 ms more, which
# happens on every call when the user running the job cannot write to the install directory
# (or PYTHONDONTWRITEBYTECODE is set). Python recompiles a module whose source changed.
.venv/bin/python -m compileall -q ns_letsencrypt >/dev/null
