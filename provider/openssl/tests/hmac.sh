#!/usr/bin/env bash
# An application computes HMAC-SHA256 with a kmstore key: OSSL_STORE,
# EVP_PKEY_get_raw_private_key, EVP_DigestSign and EVP_MAC give what
# `openssl dgst -mac HMAC` gives with the raw key, whichever provider
# loads first.
source "$(dirname "$0")/lib.sh"
: "${TEST_HMAC:?}"
make_store
msg="IKE_AUTH PPK test message"
want=$(hmac_of "$work/west-east.key" "$msg")
want2=$(hmac_of "$work/inline.key" "$msg")

for order in kmstore-first default-first; do
	run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" "$order" \
		kmstore:profile=west-east-static "$work/west-east.key" "$msg"
	check "$order: program succeeds" test "$rc" = 0
	check "$order: key ID parameter" has "$out" "key-id=PPK_ID_1"
	check "$order: an HMAC key of 256 bits" has "$out" "type=HMAC bits=256"
	check "$order: held by the kmstore provider" has "$out" "provider=kmstore"
	check "$order: raw bytes are the key" has "$out" "raw=match"
	check "$order: EVP_DigestSign HMAC-SHA256 = openssl dgst" has "$out" "digestsign=$want"
	check "$order: EVP_MAC HMAC-SHA256 = openssl dgst" has "$out" "mac=$want"
done

run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" kmstore-first \
	'kmstore:profile=inline-384;key-id=a%2Fb%3Bc%25d' "$work/inline.key" "$msg"
check "key by ID: program succeeds" test "$rc" = 0
check "key by ID: decoded key ID" has "$out" "key-id=a/b;c%d"
check "key by ID: HMAC" has "$out" "digestsign=$want2"

# An ordinary HMAC key of the application's own, with kmstore loaded first
# (so a plain "HMAC" key manager fetch may land in kmstore): still works.
run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" kmstore-first raw "$work/west-east.key" "$msg"
check "application's own HMAC key: succeeds" test "$rc" = 0
check "application's own HMAC key: in kmstore's HMAC key manager" has "$out" "provider=kmstore"
check "application's own HMAC key: raw bytes" has "$out" "raw=match"
check "application's own HMAC key: EVP_DigestSign" has "$out" "digestsign=$want"

run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" kmstore-first \
	kmstore:profile=nope "$work/west-east.key" "$msg"
check "unknown profile: fails" test "$rc" != 0
check "unknown profile: readable error" has "$out" "no such profile 'nope'"

finish
