#!/usr/bin/env bash
# Keys as EVP_SKEYs where OpenSSL has them (3.5+): the C program, and
# `openssl skeyutl -genkey` through the provider. Skipped (77) elsewhere.
source "$(dirname "$0")/lib.sh"
: "${TEST_SKEY:?}"
make_store

run out "$TEST_SKEY" "$KMSTORE_PROVIDER_DIR" kmstore:profile=west-east-static \
	'kmstore:profile=west-east-static;key-id=PPK_ID_1' "$work/west-east.key" PPK_ID_1 \
	kmstore:profile=nope
if ((rc == 77)); then
	skip_all "$out"
fi
relay "$out"
check "EVP_SKEY program exit status" test "$rc" = 0

run out ossl skeyutl "${prov[@]}" -skeymgmt GENERIC-SECRET -propquery provider=kmstore \
	-skeyopt kmstore-uri:kmstore:profile=west-east-static -genkey
check "skeyutl -genkey: exit 0" test "$rc" = 0
check "skeyutl: the key ID" has "$out" "An opaque key identified by PPK_ID_1 is created"
check "skeyutl: held by the kmstore provider" has "$out" "Provider: kmstore"
check "skeyutl: no secret" no_secret "$out" "$work/west-east.key"
printf '# %s\n' "$out"

run out ossl skeyutl "${prov[@]}" -skeymgmt GENERIC-SECRET -propquery provider=kmstore \
	-skeyopt kmstore-uri:kmstore:profile=nope -genkey
check "skeyutl unknown profile: fails" test "$rc" != 0
check "skeyutl unknown profile: readable" has "$out" "no such profile 'nope'"

# OpenSSL 4.0: EVP_SKEYs through OSSL_STORE (found by feature, not version).
if ossl storeutl -help 2>&1 | grep -q -- '-skeys'; then
	run out ossl storeutl "${prov[@]}" -skeys kmstore:profile=west-east-static
	check "storeutl -skeys: one symmetric key" has "$out" "0: Symmetric key"
	check "storeutl -skeys: total 1" has "$out" "Total found: 1"
	check "storeutl -skeys: no secret" no_secret "$out" "$work/west-east.key"
	run out ossl storeutl "${prov[@]}" -skeys kmstore:profile=nope
	check "storeutl -skeys unknown profile: readable error" has "$out" "no such profile 'nope'"

	# openssl enc -skeyuri gets the key from the store; the cipher takes
	# it from its own provider, so default loads first (docs/openssl.md).
	iv=000102030405060708090a0b0c0d0e0f
	want=$(printf 'PPK in a cipher' | ossl enc -aes-256-cbc -K "$(hex_of "$work/west-east.key")" \
		-iv $iv | od -An -v -tx1 | tr -d ' \n')
	got=$(printf 'PPK in a cipher' | ossl enc -provider-path "$KMSTORE_PROVIDER_DIR" \
		-provider default -provider kmstore -aes-256-cbc \
		-skeyuri kmstore:profile=west-east-static -iv $iv | od -An -v -tx1 | tr -d ' \n')
	check "enc -skeyuri kmstore:...: the ciphertext of enc -K with the key" \
		test -n "$want" -a "$got" = "$want"
else
	echo "# this openssl has no storeutl -skeys (OpenSSL 4.0 has): left out"
fi

finish
