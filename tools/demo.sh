#!/usr/bin/env bash
# `make demo`: the whole job end to end on this machine, with no appliance and no internet.
#
# Starts pebble (Let's Encrypt's test CA) + pebble-challtestsrv (its DNS, answering 127.0.0.1 for
# every name) + the fake NetScaler (tests/fakens) on 127.0.0.1, writes a config.sh, domains.txt
# and .env for them in .demo/run.*/home, registers, issues and deploys a SAN certificate through
# the real ns-cronjob.sh and hooks/ns-hook.sh, which also binds it to the fake SSL vserver
# (NS_BIND: no manual step), shows `ns-letsencrypt status` and what a TLS client receives, forces
# a renewal with ns-forcerenew.sh (updated in place: the binding stays), and stops everything it
# started. `make deps` (run by `make demo`) installs pebble, dehydrated and the venv first.
set -euo pipefail

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$here"
py="${NS_LE_PYTHON:-$here/.venv/bin/python}"
[[ -x "$py" ]] || py="$(command -v python3)"
export NS_LE_PYTHON="$py"
NAMES=(www.demo.test demo.test shop.demo.test)
CERTKEY="le-${NAMES[0]}"
SSL_VSERVER="vs-demo-ssl"

say() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

base="${NS_LE_DEMO_DIR:-$here/.demo}"  # the tests point it elsewhere
mkdir -p "$base"
demo="$(mktemp -d "$base/run.XXXXXX")"
[[ "$demo" != *[[:space:]]* ]] || die "$demo contains a space (dehydrated's CURL_OPTS cannot quote it)"
home="$demo/home"
mkdir -p "$home"

# Everything started here is stopped on exit, whatever happens.
pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# Wait until the background process $1 has written its JSON ready line to $2.
wait_ready() {
  local pid="$1" file="$2" what="$3" tries=0
  until [[ -s "$file" ]]; do
    kill -0 "$pid" 2>/dev/null || die "$what exited; see ${file%.json}.log"
    ((++tries < 600)) || die "$what did not start within 60 s; see ${file%.json}.log"
    sleep 0.1
  done
}

json() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

say "starting the fake NetScaler (python -m tests.fakens)"
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$demo/ns-password"
umask 022
# The certificate bound to the SSL vserver is what a TLS client of the "appliance" receives.
"$py" -m tests.fakens --password-file "$demo/ns-password" --lbvserver web:HTTP:80:UP \
  --sslvserver "$SSL_VSERVER" >"$demo/fakens.json" 2>"$demo/fakens.log" &
pids+=($!)
wait_ready "${pids[-1]}" "$demo/fakens.json" "the fake NetScaler"
ns_url="$(json "$demo/fakens.json" url)"
ns_pin="$(json "$demo/fakens.json" cert_sha256)"
dataplane="$(json "$demo/fakens.json" dataplane_port)"
tls_port="$(json "$demo/fakens.json" tls_port)"
echo "NITRO $ns_url (pinned SHA-256 $ns_pin), HTTP vserver 'web' on 127.0.0.1:$dataplane," \
  "SSL vserver '$SSL_VSERVER' on 127.0.0.1:$tls_port"

say "starting pebble + pebble-challtestsrv (python -m tests.stack)"
"$py" -m tests.stack "$demo/pebble" "$dataplane" >"$demo/pebble.json" 2>"$demo/pebble.log" &
pids+=($!)
wait_ready "${pids[-1]}" "$demo/pebble.json" "pebble"
ca="$(json "$demo/pebble.json" directory)"
ca_tls="$(json "$demo/pebble.json" tls_cert)"
root="$(json "$demo/pebble.json" root)"
echo "ACME directory $ca (validates http-01 against 127.0.0.1:$dataplane)"

say "writing $home/{config.sh,domains.txt,.env}"
{
  cat config.sh.example
  echo
  echo "# --- demo: pebble instead of Let's Encrypt, the hook of this checkout ---"
  echo "CA=\"$ca\""
  echo "CURL_OPTS=\"--cacert $ca_tls --noproxy 127.0.0.1,localhost\""
  echo "HOOK=\"$here/hooks/ns-hook.sh\""
  echo 'ACCOUNT_KEYSIZE="2048"'
} >"$home/config.sh"
echo "${NAMES[*]}" >"$home/domains.txt"
cat >"$home/.env" <<EOF
NS_URL=$ns_url
NS_USER=nsroot
NS_PASSWORD_FILE=$demo/ns-password
NS_TLS_PIN=$ns_pin
NS_VSERVER=web
NS_VSERVER_TYPE=lb
NS_PREFLIGHT_ADDRESS=127.0.0.1:$dataplane
NS_BIND="${NAMES[0]}=$SSL_VSERVER"
NS_VERIFY_SERVED=on
NS_VERIFY_CA_BUNDLE=$root
EOF
chmod 600 "$home/.env"
sed 's/^/  /' "$home/.env"
export NS_LE_HOME="$home" TMPDIR="$demo"
# Everything is on 127.0.0.1: no proxy may intercept it.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

say "ns-letsencrypt test"
"$py" -m ns_letsencrypt test

say "ns-letsencrypt register --email demo@example.test"
"$py" -m ns_letsencrypt register --email demo@example.test

say "./ns-cronjob.sh  (issue + deploy ${NAMES[*]}, bind $CERTKEY to $SSL_VSERVER)"
./ns-cronjob.sh

# What a TLS client of the SSL vserver receives, verified against pebble's root.
show_tls() {
  local out
  out="$(openssl s_client -connect "127.0.0.1:$tls_port" -servername "${NAMES[0]}" \
    -CAfile "$root" -showcerts </dev/null 2>/dev/null)" || true
  printf '%s\n' "$out" | openssl x509 -noout -subject -issuer -serial -ext subjectAltName \
    | sed 's/^/  /'
  printf '  certificates sent: %s\n' "$(grep -c 'BEGIN CERTIFICATE' <<<"$out")"
  printf '  %s\n' "$(grep -m1 'Verify return code' <<<"$out" | sed 's/^ *//')"
  grep -q 'Verify return code: 0 (ok)' <<<"$out"
}

say "ns-letsencrypt status"
"$py" -m ns_letsencrypt status

say "openssl s_client -connect 127.0.0.1:$tls_port -showcerts (against pebble's root)"
show_tls

say "./ns-cronjob.sh again: nothing is due, nothing changes, nothing is printed (no cron mail)"
./ns-cronjob.sh
say "what that run did, from the log file $home/log/ns-letsencrypt.log"
awk '/]: run started$/ { n = 0 } { lines[n++] = $0 } END { for (i = 0; i < n; i++) print "  " lines[i] }' \
  "$home/log/ns-letsencrypt.log"

say "./ns-forcerenew.sh ${NAMES[0]}: a new certificate, updated in place (the binding stays)"
./ns-forcerenew.sh "${NAMES[0]}"
show_tls
"$py" -m ns_letsencrypt status --nagios

say "demo finished: every step passed; files and logs are in $demo"
