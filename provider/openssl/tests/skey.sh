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

finish
