#!/usr/bin/env bash
# The check value without the default provider: libkmstore computes it
# with HMAC-SHA256 from libcrypto's default library context, which then
# has none. The text encoder says so in words (not "??????", which two
# sites would both print and seem to agree on) and the parameter fails
# with an error naming the cause; a process that loads "default"
# afterwards gets the real value, for the same key and for new ones.
source "$(dirname "$0")/lib.sh"
: "${TEST_CHECK_VALUE:?}"
make_store
kcv=$(kcv_of "$work/west-east.key")
only_kmstore=(-provider-path "${KMSTORE_PROVIDER_DIR:-}" -provider kmstore)
# No value-shaped check value: 6 characters and nothing else.
no_value() {
	! grep -qE '^check-value: +[^ ]{6}$' <<<"$1" && return 0
	printf '# a value-shaped check value: %s\n' "$(grep -m1 '^check-value:' <<<"$1")" >&2
	return 1
}

run out ossl storeutl "${only_kmstore[@]}" -text kmstore:profile=west-east-static
check "storeutl, no default provider: the key is described" has "$out" "key-id:      PPK_ID_1"
check "storeutl, no default provider: no value-shaped check value" no_value "$out"
check "storeutl, no default provider: says why" has "$out" \
	"check-value: none (HMAC-SHA256 unavailable: load the default provider)"
check "storeutl, no default provider: no secret" no_secret "$out" "$work/west-east.key"
printf '#   %s\n' "$(grep -m1 'check-value:' <<<"$out" || true)"

run out ossl pkey "${only_kmstore[@]}" -in kmstore:profile=west-east-static -text -noout
check "pkey, no default provider: no value-shaped check value" no_value "$out"
check "pkey, no default provider: says why" has "$out" "HMAC-SHA256 unavailable"

run out ossl storeutl "${prov[@]}" -text kmstore:profile=west-east-static
check "storeutl, default provider: the value" has "$out" "check-value: $kcv"

run out "$TEST_CHECK_VALUE" "$KMSTORE_PROVIDER_DIR" kmstore:profile=west-east-static "$kcv"
relay "$out"
check "program: succeeds" test "$rc" = 0

finish
