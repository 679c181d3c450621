#!/usr/bin/env bash
# openssl storeutl and openssl pkey through the provider: listing, the key
# URI forms, the text encoder, and that the secret never shows.
source "$(dirname "$0")/lib.sh"
make_store
kcv=$(kcv_of "$work/west-east.key")
kcv2=$(kcv_of "$work/inline.key")
secret_free() { no_secret "$1" "$work/west-east.key" && no_secret "$1" "$work/inline.key"; }

run out ossl storeutl "${prov[@]}" kmstore:
check "listing: exit 0" test "$rc" = 0
check "listing: both profiles" has "$out" "Total found: 2"
check "listing: loadable URI of a profile" has "$out" "0: Name: kmstore:profile=west-east-static"
check "listing: description (type, bits, key-id)" has "$out" "static, 256 bits, key-id PPK_ID_1"
check "listing: second profile" has "$out" "1: Name: kmstore:profile=inline-384"
check "listing: no secret" secret_free "$out"

run out ossl storeutl "${prov[@]}" -r -text kmstore:
check "recursive listing: exit 0" test "$rc" = 0
check "recursive: each profile's key loaded" has "$out" "  Total found: 1"
check "recursive: first key's check value" has "$out" "check-value: $kcv"
check "recursive: second key's check value" has "$out" "check-value: $kcv2"
check "recursive: no secret" secret_free "$out"

run out ossl storeutl "${prov[@]}" -text kmstore:profile=west-east-static
check "key for use now: exit 0" test "$rc" = 0
check "key for use now: one key" has "$out" "Total found: 1"
check "key for use now: a private key object" has "$out" "0: Pkey"
check "text: profile" has "$out" "profile:     west-east-static"
check "text: key ID" has "$out" "key-id:      PPK_ID_1"
check "text: bits" has "$out" "bits:        256"
check "text: check value computed independently" has "$out" "check-value: $kcv"
check "text: source" has "$out" "source:      static key in $work/kmstore.conf"
check "text: no secret" secret_free "$out"
printf '# %s\n' "$out" | head -n 12

run out ossl storeutl "${prov[@]}" -text 'kmstore:profile=west-east-static;key-id=PPK_ID_1'
check "that key: one key" has "$out" "Total found: 1"
check "that key: same check value" has "$out" "check-value: $kcv"

run out ossl storeutl "${prov[@]}" -text 'kmstore:profile=inline-384;key-id=a%2Fb%3Bc%25d'
check "percent-encoded key ID: found" has "$out" "Total found: 1"
check "percent-encoded key ID: decoded" has "$out" "key-id:      a/b;c%d"
check "384-bit key: bits" has "$out" "bits:        384"
check "384-bit key: check value" has "$out" "check-value: $kcv2"
check "384-bit key: no secret" secret_free "$out"

run out ossl storeutl "${prov[@]}" kmstore:profile=west-east-static
check "without -text: no PEM, no secret" secret_free "$out"

run out ossl storeutl "${prov[@]}" -keys -text kmstore:profile=west-east-static
check "-keys: the key" has "$out" "Total found: 1"
run out ossl storeutl "${prov[@]}" -certs kmstore:profile=west-east-static
check "-certs: nothing, no error" test "$rc" = 0
check "-certs: total 0" found_none "$out"

run out ossl pkey "${prov[@]}" -in kmstore:profile=west-east-static -text -noout
check "pkey -text -noout: exit 0" test "$rc" = 0
check "pkey -text: check value" has "$out" "check-value: $kcv"
check "pkey -text: no secret" secret_free "$out"
run out ossl pkey "${prov[@]}" -in kmstore:profile=west-east-static
check "pkey without -noout: no secret" secret_free "$out"

# Provider order must not matter: the default provider's HMAC key manager
# comes first here, and the store still hands the key to ours.
run out ossl storeutl -provider-path "$KMSTORE_PROVIDER_DIR" -provider default \
	-provider kmstore -text kmstore:profile=west-east-static
check "default provider first: key loads" has "$out" "Total found: 1"
check "default provider first: our text encoder" has "$out" "check-value: $kcv"

finish
