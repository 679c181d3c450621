#!/usr/bin/env bash
# Every failure of a kmstore: URI is a readable error naming what is wrong,
# and storeutl then finds nothing (it exits 0 on some of these, so the
# output is what is checked).
source "$(dirname "$0")/lib.sh"
make_store

# fails_with DESCRIPTION URI MESSAGE
fails_with() {
	local desc=$1 uri=$2 msg=$3 out
	run out ossl storeutl "${prov[@]}" -text "$uri"
	check "$desc: message" has "$out" "$msg"
	check "$desc: Total found: 0" found_none "$out"
	check "$desc: raised by the provider" has "$out" ":kmstore:"
	check "$desc: no secret" no_secret "$out" "$work/west-east.key"
	printf '#   %s\n' "$(grep -m1 ':kmstore:' <<<"$out" || true)"
}

fails_with "unknown profile" kmstore:profile=nope \
	"no such profile or key:store.c"
fails_with "unknown profile, library message" kmstore:profile=nope \
	"no such profile 'nope' in $work/kmstore.conf"
fails_with "unknown attribute" "kmstore:prof=x" "unknown attribute 'prof'"
fails_with "reason string for a bad URI" "kmstore:prof=x" "malformed kmstore: URI"
fails_with "empty profile" "kmstore:profile=" "kmstore:"
fails_with "NUL byte" "kmstore:profile=a%00b" "kmstore:"
fails_with "query" "kmstore:profile=west-east-static?x=1" "kmstore:"
fails_with "key ID that does not exist" \
	"kmstore:profile=west-east-static;key-id=NOPE" "has no key with ID 'NOPE'"

chmod 644 "$work/kmstore.conf"
fails_with "configuration readable by others" kmstore: \
	"is accessible by group or others"
fails_with "refused configuration, key URI" kmstore:profile=west-east-static \
	"fix: chmod 600"
chmod 600 "$work/kmstore.conf"

KMSTORE_CONF=$work/missing.conf fails_with "missing configuration" kmstore: \
	"$work/missing.conf"

chmod 644 "$work/west-east.key"
fails_with "key file readable by others" kmstore:profile=west-east-static \
	"west-east.key"
chmod 600 "$work/west-east.key"

# An application that opens such a URI gets NULL from OSSL_STORE_load,
# an error, and end of data: openssl pkey says it cannot read the key.
run out ossl pkey "${prov[@]}" -in kmstore:profile=nope -noout
check "pkey: fails" test "$rc" != 0
check "pkey: readable message" has "$out" "no such profile 'nope'"

finish
