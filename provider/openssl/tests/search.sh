#!/usr/bin/env bash
# A search the loader cannot honour (OSSL_STORE_find by alias, subject,
# issuer and serial, key fingerprint) fails with an error naming it, and a
# load after it returns nothing: for a QKD profile the KME is not asked,
# so no key is consumed for a search that matched nothing. The QKD part
# is skipped without kme-sim.
source "$(dirname "$0")/lib.sh"
: "${TEST_SEARCH:?}"
root=$(cd "$(dirname "$0")/../../.." && pwd)
make_store

for uri in kmstore:profile=west-east-static kmstore:; do
	run out "$TEST_SEARCH" "$KMSTORE_PROVIDER_DIR" "$uri"
	relay "$(sed "s/^\(not \)\{0,1\}ok - /&$uri: /" <<<"$out")"
	check "$uri: program succeeds" test "$rc" = 0
	check "$uri: no secret" no_secret "$out" "$work/west-east.key"
done

if [[ -z ${KME_SIM:-} || ! -x ${KME_SIM:-} || ! -x ${KME_SIM_PKI:-} ]]; then
	echo "# kme-sim is not built: the QKD part is skipped"
	finish
	exit
fi
source "$root/tests/lib/kme-env.sh"
cleanups+=(kme_env_stop)
kme_env_start "$work/lab" "$KME_SIM" "$KME_SIM_PKI" --pool-size 20 --key-rate 0
enc_keys() { grep -c '"POST [^"]*/enc_keys' "$KME_DIR/kme-sim.log" || true; }

before=$(enc_keys)
KMSTORE_CONF=$KME_DIR/west.conf run out "$TEST_SEARCH" "$KMSTORE_PROVIDER_DIR" kmstore:profile=qkd
relay "$(sed 's/^\(not \)\{0,1\}ok - /&qkd: /' <<<"$out")"
check "qkd: program succeeds" test "$rc" = 0
check "qkd: the KME got no enc_keys request (was $before, now $(enc_keys))" \
	test "$(enc_keys)" = "$before"

# The count is the KME's: a load without a search asks it once.
before=$(enc_keys)
KMSTORE_CONF=$KME_DIR/west.conf run out ossl storeutl "${prov[@]}" kmstore:profile=qkd
check "qkd, no search: a key loaded" has "$out" "Total found: 1"
check "qkd, no search: one enc_keys request" test "$(enc_keys)" = $((before + 1))

finish
