#!/usr/bin/env bash
# QKD through NSS and the module, as two libreswan peers would use it: west
# (initiator) generates a key on its QKD token (enc_keys at KME_A) and
# reads its CKA_ID; east (responder, another process, another NSS
# database) finds that key by ID on its own QKD token (dec_keys at KME_B).
# Then the faults: a key delivered once, a KME that does not answer, a KME
# that is down; each a clear error in bounded time.
# Usage: pkcs11_qkd.sh MODULE NSS_CLIENT KME_SIM KME_SIM_PKI API_TEST
MODULE=$1
NSS_CLIENT=$2
KME_SIM=$3
KME_SIM_PKI=$4
API_TEST=$5
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for t in modutil certutil; do
	command -v $t >/dev/null || { echo "# $t (libnss3-tools) not installed: skipped"; exit 77; }
done
. "$here/../../../tests/lib/kme-env.sh"
cleanup_hooks+=(kme_env_stop)

client() { "$NSS_CLIENT" "$@"; }
field() { printf '%s\n' "$1" | sed -n "s/^$2=//p"; }
now() { date +%s.%N; }
# within SECONDS START: the time since START is under SECONDS.
within() { python3 -c 'import sys,time; sys.exit(time.time() - float(sys.argv[2]) >= float(sys.argv[1]))' "$@"; }

KME_TIMEOUT=2 # read by kme-env.sh
if ! kme_env_start "$WORK/lab" "$KME_SIM" "$KME_SIM_PKI" --pool-size 200 >/dev/null; then
	not_ok "the two-KME lab starts"
	finish
	exit 1
fi
west=$WORK/west east=$WORK/east
check "west's NSS database with the module (west.conf)" \
	nss_db "$west" "config=$KME_DIR/west.conf"
check "east's NSS database with the module (east.conf)" \
	nss_db "$east" "config=$KME_DIR/east.conf"
has "the QKD token's model is qkd" "$(client "$west" tokens kmstore)" \
	"^token=qkd model=qkd$"

out=$(client "$west" key pkcs11:token=qkd)
id=$(field "$out" id) key=$(field "$out" key)
has "west: pkcs11:token=qkd generates a key (enc_keys), CKA_ID = its key ID" \
	"$id" '^[[:print:]]{1,64}$'
same "... 256 bits" "${#key}" 64
same "... and no thread was created for the HTTPS request" \
	"$(field "$out" new-threads)" 0
out=$(client "$east" key "pkcs11:token=qkd;id=$id")
same "east (another process): pkcs11:token=qkd;id=K finds the same key (dec_keys)" \
	"$(field "$out" key)" "$key"
err=$(client "$east" key "pkcs11:token=qkd;id=$id" 2>&1 >/dev/null)
same "a QKD key is delivered once: a second search in a new process finds nothing" \
	$? 4
has "... and the log quotes the KME" "$err" "no key .*HTTP 40[04]"
# The same by C_GenerateKey with CKA_ID (parallel in NSS, unlike a search).
out=$(client "$west" key pkcs11:token=qkd)
id=$(field "$out" id) key=$(field "$out" key)
out=$(client "$east" key "pkcs11:token=qkd;id=$id" generate)
same "east: C_GenerateKey with CKA_ID = K gives the key with that ID (dec_keys)" \
	"$(field "$out" key)" "$key"
same "... its CKA_ID is K" "$(field "$out" id)" "$id"
client "$east" key "pkcs11:token=qkd;id=$id" generate >/dev/null 2>&1
same "... and, delivered once, not again" $? 4
client "$east" key "pkcs11:token=static;id=STATIC_PPK_1" generate >/dev/null 2>&1
same "a static token: C_GenerateKey with its key ID gives its key" $? 0
client "$east" key "pkcs11:token=static;id=OTHER" generate >/dev/null 2>&1
same "... with another ID, none" $? 4

# One process finds a QKD key by ID twice (a responder offered one PPK_ID
# for two IKE SAs): the key is handed out once, as the KME does.
out=$(client "$west" key pkcs11:token=qkd)
id=$(field "$out" id) key=$(field "$out" key)
asked=$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")
out=$(client "$east" twice "pkcs11:token=qkd;id=$id" 2>&1)
same "one process, one QKD key ID, two searches: the first finds the key" \
	"$(field "$out" find1)" found
same "... the second finds nothing (the module dropped the key once read)" \
	"$(field "$out" find2)" none
same "... after asking the KME again, which delivers a key once" \
	"$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")" $((asked + 2))

# The same when the first is C_GenerateKey with CKA_ID and CKA_TOKEN=TRUE
# (NSS's PK11_ATTR_TOKEN): the token object it makes is handed out once
# too, not again and again to every later search for its ID.
out=$(client "$west" key pkcs11:token=qkd)
id=$(field "$out" id) key=$(field "$out" key)
asked=$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")
out=$(client "$east" twice "pkcs11:token=qkd;id=$id" generate-token 2>&1)
same "C_GenerateKey(CKA_ID=K, CKA_TOKEN=TRUE), then a search for K: the first gives the key" \
	"$(field "$out" key | head -n 1)" "$key"
same "... the search finds nothing (the token object went once read)" \
	"$(field "$out" find2)" none
same "... after asking the KME again" \
	"$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")" $((asked + 2))
# And as pluto's responder fetches (PK11_ATTR_SESSION): while it holds
# the key, a search for its ID (PK11_FindFixedKey) does not get it again.
out=$(client "$west" key pkcs11:token=qkd)
id=$(field "$out" id) key=$(field "$out" key)
asked=$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")
out=$(client "$east" twice "pkcs11:token=qkd;id=$id" generate-session 2>&1)
same "C_GenerateKey(CKA_ID=K, CKA_TOKEN=FALSE), kept; a search for K: the first gives the key" \
	"$(field "$out" key | head -n 1)" "$key"
same "... the search finds nothing (that fetch handed the key out)" \
	"$(field "$out" find2)" none
same "... after asking the KME again" \
	"$(grep -c ' dec_keys for ' "$KME_DIR/kme-sim.log")" $((asked + 2))
if command -v pkcs11-tool >/dev/null; then
	out=$(client "$west" key pkcs11:token=qkd)
	id=$(field "$out" id) key=$(field "$out" key)
	rm -f "$WORK/read.bin"
	out=$(KMSTORE_CONF=$KME_DIR/east.conf tool pkcs11-tool --module "$MODULE" \
		--token-label qkd --keygen --key-type GENERIC:32 --extractable \
		--id "$(printf %s "$id" | od -An -v -tx1 | tr -d ' \n')" \
		--read-object --type secrkey --output-file "$WORK/read.bin" 2>&1)
	has "pkcs11-tool --keygen --id K on the QKD token: the key with ID K" \
		"$out" "VALUE: +$key"
	has "... and its --read-object --id K in the same process finds it no more" \
		"$out" "object not found"
	check "... and writes nothing" test ! -s "$WORK/read.bin"
fi

# Whatever holds a QKD key in a process (a session object fetched by ID,
# a new key as a session or token object), searches for its ID, in any
# session and with any template, get it at most once: called directly,
# one process playing both sites. Each of its assertions is one here.
kme_env_both_sites "$WORK/both.conf"
rc=0
"$API_TEST" "$MODULE" "$WORK" qkd "$WORK/both.conf" >"$WORK/api.out" 2>&1 || rc=$?
while IFS= read -r line; do
	case $line in
	"ok "*) ok "api: ${line#ok * - }" ;;
	"not ok "*) not_ok "api: ${line#not ok * - }" ;;
	esac
done <"$WORK/api.out"
# (a crash or a usage error would otherwise drop its checks unseen)
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/api.out" || true)
if [ $rc -eq 0 ] && [ "$summary" = "$(grep -c '^ok ' "$WORK/api.out") passed, 0 failed" ] &&
	[ "$(grep -c '^ok ' "$WORK/api.out")" -ge 14 ]; then
	ok "api: all its checks ran ($summary)"
else
	not_ok "api: all its checks ran (exit $rc, ${summary:-no summary}): $(tail -n 3 "$WORK/api.out" | tr '\n' ' ')"
fi

# The PPK in NSS's softoken on both sides: the same HMAC.
data=$(printf 'IKE_AUTH' | od -An -v -tx1 | tr -d ' \n')
out=$(client "$west" hmac pkcs11:token=qkd "$data")
id=$(field "$out" id) mac=$(field "$out" hmac)
out=$(client "$east" hmac "pkcs11:token=qkd;id=$id" "$data")
same "west's and east's HMAC with the QKD key agree" "$(field "$out" hmac)" "$mac"

out=$(client "$west" threads pkcs11:token=qkd 4 5)
has "4 threads generating QKD keys and finding them by ID at once" "$out" \
	"rounds=20 failures=0"
if command -v pkcs11-tool >/dev/null; then
	out=$(KMSTORE_CONF=$KME_DIR/west.conf tool pkcs11-tool --module "$MODULE" \
		--token-label qkd -O 2>&1)
	same "pkcs11-tool -O on the QKD token succeeds" $? 0
	same "... and a search without an ID takes nothing from the KME" \
		"$(printf '%s\n' "$out" | grep -c 'Key Object')" 0
fi

# A KME that accepts the connection and never answers: bounded by timeout.
kme_env_stop
rm -rf "$WORK/lab"
# shellcheck disable=SC2034 # read by kme-env.sh
KME_TIMEOUT=1
kme_env_start "$WORK/lab" "$KME_SIM" "$KME_SIM_PKI" --fault blackhole >/dev/null
start=$(now)
err=$(client "$west" key pkcs11:token=qkd 2>&1 >/dev/null)
same "KME silent: generating fails" $? 1
check "... within 3 s (timeout = 1 s)" within 3 "$start"
has "... and the log says the KME timed out" "$err" "no key for use now: .*(timed out|timeout)"
start=$(now)
err=$(client "$east" key "pkcs11:token=qkd;id=$id" 2>&1 >/dev/null)
same "KME silent: finding by ID fails" $? 4
check "... within 3 s" within 3 "$start"

# The KMEs are down: connection refused is not retried until the
# profile's timeout, here made 10 s so that a loaded machine's slow start
# of NSS cannot be mistaken for waiting.
kme_env_stop
sed -i 's/^timeout .*/timeout      = 10/' "$KME_DIR/west.conf"
start=$(now)
err=$(client "$west" key pkcs11:token=qkd 2>&1 >/dev/null)
same "KME down: generating fails" $? 1
check "... without waiting for the 10 s timeout (under 5 s)" within 5 "$start"
has "... with the reason logged" "$err" "no key for use now: .*(refused|connect)"
has "... and NSS maps it to CKR_DEVICE_ERROR" "$err" "SEC_ERROR_PKCS11_DEVICE_ERROR"

finish
