#!/usr/bin/env bash
# The kmstore ENGINE on this machine's OpenSSL: `openssl engine`, `openssl
# pkey -engine kmstore -inform ENGINE`, and a legacy application
# (ENGINE_load_private_key + HMAC through EVP_DigestSign).
source "$(dirname "$0")/../../openssl/tests/lib.sh"
: "${KMSTORE_ENGINE_DIR:?}" "${TEST_ENGINE:?}"
export OPENSSL_ENGINES=$KMSTORE_ENGINE_DIR
make_store
msg="legacy application"
want=$(hmac_of "$work/west-east.key" "$msg")
want2=$(hmac_of "$work/inline.key" "$msg")

run out ossl engine -t -vvv kmstore
check "openssl engine: loads" test "$rc" = 0
check "openssl engine: name" has "$out" "(kmstore) kmstore key store"
check "openssl engine: available" has "$out" "[ available ]"
check "openssl engine: CONFIG command" has "$out" "CONFIG"

for key in west-east-static west-east-static:PPK_ID_1 kmstore:profile=west-east-static \
	'kmstore:profile=west-east-static;key-id=PPK_ID_1'; do
	run out ossl pkey -engine kmstore -inform ENGINE -in "$key" -noout
	check "pkey -engine kmstore -in $key: loads" test "$rc" = 0
	check "pkey $key: no secret" no_secret "$out" "$work/west-east.key"
done

run out ossl pkey -engine kmstore -inform ENGINE -in west-east-static -text -noout
check "pkey -text: no secret" no_secret "$out" "$work/west-east.key"

# From openssl.cnf: the engine section's CONFIG names the kmstore.conf.
cat >"$work/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
kmstore = kmstore_section
[kmstore_section]
dynamic_path = $KMSTORE_ENGINE_DIR/kmstore.so
CONFIG = $work/kmstore.conf
init = 1
CNF
mv "$work/kmstore.conf" "$work/engine.conf"
sed -i "s|^CONFIG = .*|CONFIG = $work/engine.conf|" "$work/openssl.cnf"
OPENSSL_CONF=$work/openssl.cnf KMSTORE_CONF=$work/nowhere.conf run out \
	ossl pkey -engine kmstore -inform ENGINE -in west-east-static:PPK_ID_1 -noout
check "openssl.cnf engine section with CONFIG: key loads" test "$rc" = 0
mv "$work/engine.conf" "$work/kmstore.conf"

run out ossl pkey -engine kmstore -inform ENGINE -in nope -noout
check "pkey unknown profile: fails" test "$rc" != 0
check "pkey unknown profile: readable error" has "$out" "no such profile 'nope'"
check "pkey unknown profile: our error library" has "$out" "kmstore engine"
printf '#   %s\n' "$(grep -m1 'kmstore engine' <<<"$out" || true)"
run out ossl pkey -engine kmstore -inform ENGINE -in west-east-static:NOPE -noout
check "pkey unknown key ID: readable error" has "$out" "has no key with ID 'NOPE'"
run out ossl pkey -engine kmstore -inform ENGINE -in 'kmstore:prof=x' -noout
check "pkey bad URI: readable error" has "$out" "unknown attribute 'prof'"

run out "$TEST_ENGINE" "$work/kmstore.conf" west-east-static "$msg" "$work/west-east.key"
check "ENGINE_load_private_key PROFILE: succeeds" test "$rc" = 0
check "ENGINE_load_private_key: an HMAC key" has "$out" "type=HMAC"
check "ENGINE_load_private_key: raw bytes are the key" has "$out" "raw=match"
check "ENGINE_load_private_key: HMAC-SHA256 = openssl dgst" has "$out" "digestsign=$want"
run out "$TEST_ENGINE" "$work/kmstore.conf" 'kmstore:profile=inline-384;key-id=a%2Fb%3Bc%25d' \
	"$msg" "$work/inline.key"
check "ENGINE_load_private_key URI with key ID: HMAC" has "$out" "digestsign=$want2"
run out "$TEST_ENGINE" "$work/kmstore.conf" 'inline-384:a/b;c%d' "$msg" "$work/inline.key"
check "ENGINE_load_private_key PROFILE:KEYID: HMAC" has "$out" "digestsign=$want2"
run out "$TEST_ENGINE" "$work/missing.conf" west-east-static "$msg"
check "CONFIG names a missing file: fails" test "$rc" != 0
check "CONFIG names a missing file: readable" has "$out" "$work/missing.conf"

finish
