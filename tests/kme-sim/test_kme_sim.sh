#!/usr/bin/env bash
# Integration test of kme-sim: real HTTPS with mutual TLS on 127.0.0.1,
# driven with curl, as a user or a client under test would meet it.
#
#   test_kme_sim.sh PATH/TO/kme-sim PATH/TO/kme-sim-pki
#
# Prints "ok N - ..." per check (with expected and actual values when one
# fails) and "N passed, M failed"; exits non-zero if any check failed, 77
# if a tool it needs is missing.
set -euo pipefail

KMESIM=${1:?usage: test_kme_sim.sh KME_SIM KME_SIM_PKI}
PKI=${2:?usage: test_kme_sim.sh KME_SIM KME_SIM_PKI}
for tool in curl jq openssl timeout base64 awk python3; do
	command -v "$tool" >/dev/null || { echo "skip: $tool not found"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kme-sim-test.XXXXXX")
pki=$tmp/pki
sim_pids=()
cleanup() {
	local p
	for p in "${sim_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0 passed=0 failed=0
pass() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	echo "#   expected: $2"
	echo "#   got:      ${3:0:400}"
}
# check DESC EXPECTED ACTUAL
check() { if [[ $3 == "$2" ]]; then pass "$1"; else fail "$1" "$2" "$3"; fi; }
# check_re DESC REGEX ACTUAL
check_re() { if [[ $3 =~ $2 ]]; then pass "$1"; else fail "$1" "/$2/" "$3"; fi; }
# check_cmd DESC COMMAND...: the command succeeds
check_cmd() {
	local desc=$1; shift
	if "$@" >/dev/null 2>&1; then pass "$desc"; else fail "$desc" "success of: $*" "failure"; fi
}
# at_least DESC MIN ACTUAL (numbers, may be fractional)
at_least() {
	if awk -v a="$3" -v m="$2" 'BEGIN { exit !(a + 0 >= m + 0) }'; then
		pass "$1"
	else
		fail "$1" ">= $2" "$3"
	fi
}

# ---- running kme-sim ----

SIM= SIM_NAME= A= B= C= D= bad_exits= SIM_NOFILE=
# start_sim NAME [kme-sim options]: KME_A (SAE_A) and KME_B (SAE_B, SAE_C)
# on ephemeral ports, plus KME_C (wrong-name cert) and KME_D (rogue cert).
# SIM_NOFILE=N: kme-sim may open N descriptors (ulimit -n).
start_sim() {
	local name=$1; shift
	local ready=$tmp/$name.ready
	( [[ -z $SIM_NOFILE ]] || ulimit -n "$SIM_NOFILE"
	exec timeout -k 5 240 "$KMESIM" --ca "$pki/ca.crt" \
		--kme "id=KME_A,listen=127.0.0.1:0,cert=$pki/kme-a.crt,key=$pki/kme-a.key,sae=SAE_A" \
		--kme "id=KME_B,listen=127.0.0.1:0,cert=$pki/kme-b.crt,key=$pki/kme-b.key,sae=SAE_B+SAE_C" \
		--kme "id=KME_C,listen=127.0.0.1:0,cert=$pki/wrong-name.crt,key=$pki/wrong-name.key,sae=SAE_X" \
		--kme "id=KME_D,listen=127.0.0.1:0,cert=$pki/rogue-kme.crt,key=$pki/rogue-kme.key,sae=SAE_Y" \
		--ready-file "$ready" "$@" ) >"$tmp/$name.out" 2>"$tmp/$name.log" &
	SIM=$! SIM_NAME=$name
	sim_pids+=("$SIM")
	if ! timeout 10 bash -c "until [[ -s '$ready' ]]; do kill -0 $SIM || exit 1; sleep 0.05; done"; then
		echo "kme-sim ($name) did not start:"; cat "$tmp/$name.log"; exit 1
	fi
	A=$(awk '$1 == "KME_A" { print $2 }' "$ready")
	B=$(awk '$1 == "KME_B" { print $2 }' "$ready")
	C=$(awk '$1 == "KME_C" { print $2 }' "$ready")
	D=$(awk '$1 == "KME_D" { print $2 }' "$ready")
}

# stop_sim: SIGTERM; STOP_RC gets the exit status (KILL after 10 s: 137).
STOP_RC=
stop_sim() {
	local i
	kill -TERM "$SIM" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$SIM" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SIM" 2>/dev/null || true
	STOP_RC=0
	wait "$SIM" || STOP_RC=$?
	[[ $STOP_RC -eq 0 ]] || bad_exits+=" $SIM_NAME:$STOP_RC"
	# reaped: PIDs wrap within minutes here, so cleanup must not kill it
	local p kept=()
	for p in "${sim_pids[@]}"; do [[ $p == "$SIM" ]] || kept+=("$p"); done
	sim_pids=("${kept[@]}")
}

# req CERT URL [curl options]: CODE (HTTP status), RC (curl exit status),
# BODY, SIZE (bytes), TIME (seconds), VER (HTTP version), CTYPE. CERT is a
# file stem in the PKI (sae-a, rogue-sae-a, ...) or "none".
req() {
	local cert=$1 url=$2 out; shift 2
	local auth=()
	[[ $cert == none ]] || auth=(--cert "$pki/$cert.crt" --key "$pki/$cert.key")
	RC=0
	out=$(timeout 30 curl -sS --max-time 15 --cacert "$pki/ca.crt" "${auth[@]}" \
		-o "$tmp/body" -w '%{http_code} %{size_download} %{time_total} %{http_version} %{content_type}' \
		"$@" "$url" 2>"$tmp/curl.err") || RC=$?
	read -r CODE SIZE TIME VER CTYPE <<<"$out"
	BODY=$(head -c 100000 "$tmp/body" 2>/dev/null || true)
	rm -f "$tmp/body"
}
post() { local cert=$1 url=$2 data=$3; shift 3; req "$cert" "$url" -H 'Content-Type: application/json' --data-binary "$data" "$@"; }
# hold_conns PORT N SECONDS: N idle TCP connections (as many as connect)
hold_conns() {
	python3 - "$@" <<'PY'
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
held = []
for _ in range(n):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
    except OSError:
        pass
time.sleep(secs)
PY
}
# tls_client MODE PORT SECONDS: a TLS connection as SAE_A that sends
# nothing (MODE idle), or GET enc_keys over HTTP/1.1 or HTTP/2 (h1, h2)
# and reads nothing of the answer; after SECONDS, whether the server's end
# of it is still open (/proc/net/tcp): prints "open" or "closed".
tls_client() {
	python3 - "$@" "$pki" <<'PY'
import socket, ssl, struct, sys, time
mode, port, secs, pki = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/sae-a.crt", pki + "/sae-a.key")
ctx.set_alpn_protocols(["h2"] if mode == "h2" else ["http/1.1"])
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the answer stays in the server
raw.connect(("127.0.0.1", port))
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
path = b"/api/v1/keys/SAE_B/enc_keys"
def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def literal(name, value):  # HPACK, without indexing or Huffman
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value
if mode == "h1":
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: kme\r\n\r\n")
elif mode == "h2":  # windows as large as they go: only TCP holds the answer back
    big = 2**31 - 1
    head = b"".join(literal(n, v) for n, v in ((b":method", b"GET"), (b":scheme", b"https"),
                                               (b":path", path), (b":authority", b"kme")))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack(">HI", 4, big)) +
              frame(8, 0, 0, struct.pack(">I", big - 65535)) + frame(1, 5, 1, head))
time.sleep(secs)
me, state = s.getsockname()[1], None
with open("/proc/net/tcp") as f:
    for line in f.readlines()[1:]:
        local, remote, st = line.split()[1:4]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == me:
            state = st
print("open" if state == "01" else "closed")  # 01: ESTABLISHED
PY
}
key_bytes() { printf '%s' "$1" | base64 -d | wc -c | tr -d ' '; }
stored() { req sae-a "$A/api/v1/keys/SAE_B/status"; jq -r .stored_key_count <<<"$BODY"; }

# ---- the test PKI ----

"$PKI" "$pki" --sae SAE_A --sae SAE_B --sae SAE_C >/dev/null
missing=
for f in ca kme-a kme-b sae-a sae-b sae-c rogue-ca rogue-sae-a rogue-kme wrong-name; do
	[[ -s $pki/$f.crt && -s $pki/$f.key ]] || missing+=" $f"
done
check "kme-sim-pki makes the CA, KME, SAE, rogue and wrong-name files" "" "$missing"
check "kme-sim-pki leaves private keys mode 600" "600" \
	"$(stat -c %a "$pki"/*.key | sort -u | tr '\n' ' ' | sed 's/ $//')"
check_re "SAE certificate has CN=SAE_A and clientAuth" "CN ?= ?SAE_A.*TLS Web Client Authentication" \
	"$(openssl x509 -in "$pki/sae-a.crt" -noout -subject -ext extendedKeyUsage | tr '\n' ' ')"
check_re "KME certificate has IP:127.0.0.1, IP:::1 and DNS:localhost" "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost" \
	"$(openssl x509 -in "$pki/kme-a.crt" -noout -ext subjectAltName)"
rc=0; "$PKI" "$pki" >/dev/null 2>&1 || rc=$?
check "kme-sim-pki refuses to overwrite a PKI without --force" "1" "$rc"
cp "$pki/ca.crt" "$tmp/old-ca.crt"
rc=0; "$PKI" "$pki" --sae SAE_A --sae SAE_B --sae SAE_C --force >/dev/null 2>&1 || rc=$?
check "kme-sim-pki --force makes a new PKI" "0 differ" \
	"$rc $(cmp -s "$pki/ca.crt" "$tmp/old-ca.crt" && echo same || echo differ)"
"$PKI" "$tmp/pki2" --sae SAE_A --sae SAE_B --sae SAE_C >/dev/null
echo "not a certificate" >"$tmp/pki2/mine.crt"
rc=0; out=$("$PKI" "$tmp/pki2" --sae SAE_A --sae SAE_B --force 2>&1) || rc=$?
check_re "kme-sim-pki --force removes, and names, the earlier PKI's files it does not make" \
	"^0 kme-sim-pki: removed the earlier PKI's sae-c\.crt sae-c\.key " "$rc $(tr '\n' ' ' <<<"$out")"
bad=
for f in "$tmp/pki2"/*.crt; do
	case ${f##*/} in rogue-*|mine.crt) ;;
	*) openssl verify -CAfile "$tmp/pki2/ca.crt" "$f" >/dev/null 2>&1 || bad+=" ${f##*/}" ;;
	esac
done
check "kme-sim-pki --force: every certificate left (but the rogue ones) is from the new CA" "" "$bad"
check "kme-sim-pki --force leaves a file not its own" "not a certificate" "$(cat "$tmp/pki2/mine.crt")"
rc=0; out=$("$PKI" "$tmp/pki3" --sae 'SAE A' --sae SAE_A 2>&1) || rc=$?
check "kme-sim-pki refuses two SAE IDs of one file name" \
	"1 kme-sim-pki: --sae 'SAE_A' and --sae 'SAE A' would both write sae-a.crt and sae-a.key" "$rc $out"
cp "$tmp/pki2/ca.key" "$tmp/old-ca.key"
rc=0; out=$("$PKI" "$tmp/pki2" --sae CA --force 2>&1) || rc=$?
check "kme-sim-pki refuses an SAE ID whose file is the CA's, and says so" \
	"1 kme-sim-pki: --sae 'CA' and the CA would both write ca.crt and ca.key same" \
	"$rc $out $(cmp -s "$tmp/pki2/ca.key" "$tmp/old-ca.key" && echo same || echo differ)"

# ---- command line ----

rc=0; out=$(timeout 10 "$KMESIM" --help 2>&1) || rc=$?
check_re "--help documents the options" "^0 .*--kme.*--pool-size.*--key-rate.*--fault.*--ready-file" "$rc $(tr '\n' ' ' <<<"$out")"
rc=0; out=$(timeout 10 "$KMESIM" --kme "id=K,listen=127.0.0.1:0,cert=x,key=y,sae=S" 2>&1) || rc=$?
check_re "missing --ca is refused" "^1 kme-sim: --ca and at least one --kme" "$rc $out"
rc=0; out=$(timeout 10 "$KMESIM" --ca "$pki/ca.crt" \
	--kme "id=K1,listen=127.0.0.1:0,cert=$pki/kme-a.crt,key=$pki/kme-a.key,sae=S" \
	--kme "id=K2,listen=127.0.0.1:0,cert=$pki/kme-b.crt,key=$pki/kme-b.key,sae=S" 2>&1) || rc=$?
check_re "an SAE attached to two KMEs is refused" "^1 .*SAE S attached to both K1 and K2" "$rc $out"
rc=0; out=$(timeout 10 "$KMESIM" --ca "$pki/ca.crt" --fault "bogus:50" \
	--kme "id=K1,listen=127.0.0.1:0,cert=$pki/kme-a.crt,key=$pki/kme-a.key,sae=S" 2>&1) || rc=$?
check_re "an unknown fault is refused" "^1 .*unknown fault 'bogus'" "$rc $out"

# ---- the main instance: pool of 5 keys per link, never refilled ----

start_sim main --pool-size 5 --key-rate 0
check_re "ready file lists each KME with its URL" \
	"^KME_A https://127\.0\.0\.1:[0-9]+ KME_B https://127\.0\.0\.1:[0-9]+ KME_C .* KME_D " \
	"$(tr '\n' ' ' <"$tmp/main.ready")"
check "stdout has the same lines" "$(cat "$tmp/main.ready")" "$(cat "$tmp/main.out")"

port_a=${A##*:}
rc=0; out=$(timeout 10 "$KMESIM" --ca "$pki/ca.crt" \
	--kme "id=K1,listen=127.0.0.1:$port_a,cert=$pki/kme-a.crt,key=$pki/kme-a.key,sae=S" 2>&1) || rc=$?
check_re "a port in use is a clear error" "^1 .*kme-sim: K1: cannot listen on 127.0.0.1:$port_a: Address already in use" "$rc $out"

req sae-a "$A/api/v1/keys/SAE_B/status"
check "status: 200" "200" "$CODE"
check "status: the ETSI Status object with real counts" \
	"KME_A KME_B SAE_A SAE_B 256 5 5 128 4096 64 0" \
	"$(jq -r '[.source_KME_ID, .target_KME_ID, .master_SAE_ID, .slave_SAE_ID, .key_size, .stored_key_count, .max_key_count, .max_key_per_request, .max_key_size, .min_key_size, .max_SAE_ID_count] | join(" ")' <<<"$BODY")"

post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":1,"size":256}'
check "enc_keys POST at KME_A by SAE_A for SAE_B: 200" "200" "$CODE"
key_id=$(jq -r '.keys[0].key_ID' <<<"$BODY")
key=$(jq -r '.keys[0].key' <<<"$BODY")
check "enc_keys: one key" "1" "$(jq '.keys | length' <<<"$BODY")"
check_re "enc_keys: key_ID is a UUID v4" '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$key_id"
check "enc_keys: key is base64 of 32 bytes" "32" "$(key_bytes "$key")"
check "status: stored_key_count went from 5 to 4" "4" "$(stored)"

post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$key_id\"}]}"
check "dec_keys at KME_B by SAE_B gives the same key" "200 $key_id $key" \
	"$CODE $(jq -r '.keys[0] | "\(.key_ID) \(.key)"' <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$key_id\"}]}"
check_re "dec_keys again: 400, key consumed" "^400 key $key_id not found or already retrieved$" \
	"$CODE $(jq -r .message <<<"$BODY")"
check "error body has message and details[]" "true" \
	"$(jq '(.message | type == "string") and (.details | type == "array")' <<<"$BODY")"

req sae-a "$A/api/v1/keys/SAE_B/enc_keys?number=2&size=128"
check "enc_keys GET number=2 size=128: two 16-byte keys" "200 2 16 16" \
	"$CODE $(jq '.keys | length' <<<"$BODY") $(key_bytes "$(jq -r '.keys[0].key' <<<"$BODY")") $(key_bytes "$(jq -r '.keys[1].key' <<<"$BODY")")"
id1=$(jq -r '.keys[0].key_ID' <<<"$BODY") key1=$(jq -r '.keys[0].key' <<<"$BODY")
id2=$(jq -r '.keys[1].key_ID' <<<"$BODY") key2=$(jq -r '.keys[1].key' <<<"$BODY")
check "a 128-bit key uses one pool key: stored_key_count 2" "2" "$(stored)"

post sae-a "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$id1\"}]}"
check "SAE_A's certificate at KME_B's dec_keys: 401" "401" "$CODE"
check_re "401 says the SAE is not attached" "SAE 'SAE_A' .* not attached to KME KME_B" "$(jq -r .message <<<"$BODY")"
post sae-c "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$id1\"}]}"
check_re "dec_keys by SAE_C, not the key's slave: 401" "^401 SAE 'SAE_C' is not the slave SAE of key $id1$" \
	"$CODE $(jq -r .message <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$id1\"},{\"key_ID\":\"no-such-key\"}]}"
check "dec_keys with one unknown key_ID: 400" "400" "$CODE"
req sae-b "$B/api/v1/keys/SAE_A/dec_keys?key_ID=$id1"
check "...and nothing was consumed: dec_keys GET still gives the key" "200 $id1 $key1" \
	"$CODE $(jq -r '.keys[0] | "\(.key_ID) \(.key)"' <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$id2\"}]}"
check "dec_keys POST of the second key" "200 $key2" "$CODE $(jq -r '.keys[0].key' <<<"$BODY")"

req rogue-sae-a "$A/api/v1/keys/SAE_B/status"
check_re "client certificate from an untrusted CA: refused" "^(rc=[1-9][0-9]*|401) " "$([[ $RC -ne 0 ]] && echo "rc=$RC" || echo "$CODE") $CODE"
req none "$A/api/v1/keys/SAE_B/status"
check_re "no client certificate: refused" "^(rc=[1-9][0-9]*|401) " "$([[ $RC -ne 0 ]] && echo "rc=$RC" || echo "$CODE") $CODE"
req kme-b "$A/api/v1/keys/SAE_B/status"
check_re "a server certificate as client certificate: refused" "^(rc=[1-9][0-9]*|401) " "$([[ $RC -ne 0 ]] && echo "rc=$RC" || echo "$CODE") $CODE"
req rogue-sae-a "$A/api/v1/keys/SAE_B/status" --tlsv1.2 --tls-max 1.2
check_re "TLS 1.2, untrusted client certificate: handshake ends with alert unknown_ca" "^35 .*alert unknown ca" \
	"$RC $(cat "$tmp/curl.err")"
req none "$A/api/v1/keys/SAE_B/status" --tlsv1.2 --tls-max 1.2
check_re "TLS 1.2, no client certificate: handshake ends with an alert" "^35 .*alert handshake failure" \
	"$RC $(cat "$tmp/curl.err")"
check_re "the refusals are logged with the reason" "refused in the TLS handshake: .*issuer is unknown.*CN=kme-sim rogue CA" \
	"$(grep refused "$tmp/main.log" | tr '\n' ' ')"
req sae-a "$A/api/v1/keys/SAE_B/status" --cacert "$pki/rogue-ca.crt"
check "client trusting only the rogue CA refuses the KME (curl 60)" "60" "$RC"
req sae-a "$C/api/v1/keys/SAE_B/status"
check "wrong-name.crt fails hostname verification for 127.0.0.1 (curl 60)" "60" "$RC"
req sae-a "https://kme.invalid:${C##*:}/api/v1/keys/SAE_B/status" --resolve "kme.invalid:${C##*:}:127.0.0.1"
check "wrong-name.crt is valid for kme.invalid (TLS ok, SAE_A not at KME_C: 401)" "0 401" "$RC $CODE"
req sae-a "$D/api/v1/keys/SAE_B/status"
check "rogue-kme.crt is refused by a client trusting ca.crt (curl 60)" "60" "$RC"
req sae-a "$A/api/v1/keys/SAE_B/status" --tlsv1 --tls-max 1.1
check_re "TLS 1.1 is refused" "^[1-9]" "$RC"
req sae-a "$A/api/v1/keys/SAE_B/status" --tlsv1.2 --tls-max 1.2
check "TLS 1.2 is accepted" "0 200" "$RC $CODE"

req sae-a "$A/api/v1/keys/SAE%5FB/status"
check "percent-encoded SAE ID in the path is decoded" "200 SAE_B" "$CODE $(jq -r .slave_SAE_ID <<<"$BODY")"
req sae-a "$A/api/v1/keys/SAE%2FX/status"
check "%2F stays inside the SAE ID" "400 slave SAE 'SAE/X' is not attached to any KME of this simulator" \
	"$CODE $(jq -r .message <<<"$BODY")"
post sae-a "$A/api/v1/keys/SAE_A/enc_keys" '{}'
check_re "enc_keys for an SAE of the same KME: 400" "^400 .*attached to this KME" "$CODE $(jq -r .message <<<"$BODY")"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"size":100}'
check "size not a multiple of 8: 400" "400" "$CODE"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":0}'
check "number 0: 400" "400" "$CODE"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":1'
check_re "bad JSON: 400 with a JSON message" "^400 request body is not valid JSON" "$CODE $(jq -r .message <<<"$BODY")"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '[1]'
check "JSON that is not an object: 400" "400" "$CODE"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":"1"}'
check "number as a string: 400" "400" "$CODE"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":null}'
check "number null: 400, and the details say null" "400 null" "$CODE $(jq -r '.details[0].number' <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" '{"key_IDs":"x"}'
check "dec_keys with key_IDs not an array: 400" "400" "$CODE"
req sae-a "$A/api/v1/keys/SAE_B/keys"
check "unknown path: 404" "404" "$CODE"
req sae-a "$A/api/v1/keys/SAE_B/status" -X DELETE -D "$tmp/headers"
check "DELETE on status: 405 with Allow: GET" "405 GET" \
	"$CODE $(awk -F': ' 'tolower($1) == "allow" { print $2 }' "$tmp/headers" | tr -d '\r')"
post sae-a "$A/api/v1/keys/SAE_B/status" '{}'
check "POST on status: 405" "405" "$CODE"
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/big.json"
# kme-sim answers 413 on the Content-Length alone and closes: a client
# still sending the body may then see a reset instead of the answer (a
# race under load). With Expect: 100-continue it sends nothing more.
req sae-a "$A/api/v1/keys/SAE_B/enc_keys" --data-binary "@$tmp/big.json" -H 'Expect: 100-continue'
check "request body over 64 KiB: 413" "413" "$CODE"
req sae-a "$A/api/v1/keys/SAE_B/status" -H 'Transfer-Encoding: chunked' --data-binary "@$tmp/big.json" -X GET
check "chunked body over 64 KiB: 413" "413" "$CODE"

out=$(timeout 20 curl -sS -v --cacert "$pki/ca.crt" --cert "$pki/sae-a.crt" --key "$pki/sae-a.key" \
	-o /dev/null -o /dev/null "$A/api/v1/keys/SAE_B/status" "$A/api/v1/keys/SAE_B/status" 2>&1 || true)
check_re "keep-alive: the second request reuses the connection" "Re-using existing connection" "$out"

post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":3}'
check_re "pool exhaustion: 503 with a JSON message" "^503 not enough key material on link KME_A-KME_B: stored_key_count 2, 3 needed" \
	"$CODE $(jq -r .message <<<"$BODY")"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":2}'
check "the last 2 keys can still be had" "200 2" "$CODE $(jq '.keys | length' <<<"$BODY")"
check "stored_key_count is now 0" "0" "$(stored)"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}'
check "empty pool: 503" "503" "$CODE"
req sae-b "$B/api/v1/keys/SAE_A/status"
check "the link pool is shared by both directions" "0" "$(jq -r .stored_key_count <<<"$BODY")"

check_re "one log line per request: KME, address, SAE, method, path, status" \
	"KME_A 127\.0\.0\.1 SAE_A \"POST /api/v1/keys/SAE_B/enc_keys HTTP/1\.1\" 200 fault=-" "$(cat "$tmp/main.log")"
leaks=0
for k in "$key" "$key1" "$key2"; do grep -qF -- "$k" "$tmp/main.log" && leaks=$((leaks + 1)); done
check "no key material in the log" "0" "$leaks"
stop_sim
check "SIGTERM: clean exit 0" "0" "$STOP_RC"

# ---- pool refill ----

start_sim refill --pool-size 2 --key-rate 20
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":2}'
check "key-rate 20: a pool of 2 can be emptied" "200" "$CODE"
sleep 0.3
at_least "key-rate 20: after 0.3 s the pool has refilled" 1 "$(stored)"
stop_sim
start_sim unlimited --pool-size 3
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":3}'
first=$CODE
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":3}'
check "default key-rate (inf): the pool stays full" "200 200 3" "$first $CODE $(stored)"
stop_sim

# ---- fault injection ----

start_sim latency --fault kme=KME_A:latency=400
req sae-a "$A/api/v1/keys/SAE_B/status"
at_least "latency=400: the answer takes at least 0.4 s" 0.4 "$TIME"
check "latency=400: and is still a 200" "200" "$CODE"
check_re "the log names the fault" "\"GET /api/v1/keys/SAE_B/status HTTP/1\.1\" 200 fault=kme=KME_A:latency=400" "$(cat "$tmp/latency.log")"
stop_sim

start_sim 503 --fault 503
req sae-a "$A/api/v1/keys/SAE_B/status"
check_re "503: status 503 with a JSON message" "^503 fault injection:" "$CODE $(jq -r .message <<<"$BODY")"
stop_sim

start_sim 503pct --fault 503:50
urls=(); for ((i = 0; i < 40; i++)); do urls+=(-o /dev/null "$A/api/v1/keys/SAE_B/status"); done
codes=$(timeout 60 curl -sS --cacert "$pki/ca.crt" --cert "$pki/sae-a.crt" --key "$pki/sae-a.key" \
	-w '%{http_code}\n' "${urls[@]}" 2>/dev/null | sort -u | tr '\n' ' ' || true)
check "503:50: both 200 and 503 over 40 requests" "200 503 " "$codes"
stop_sim

start_sim count --fault 503,count=2 --fault kme=KME_B:drop,path=dec_keys
codes=
for i in 1 2 3; do req sae-a "$A/api/v1/keys/SAE_B/status"; codes+="$CODE "; done
check "503,count=2: two 503s, then service" "503 503 200 " "$codes"
req sae-b "$B/api/v1/keys/SAE_A/status"
check "kme=KME_B:drop,path=dec_keys leaves status alone" "200" "$CODE"
req sae-b "$B/api/v1/keys/SAE_A/dec_keys?key_ID=x"
check_re "...and drops dec_keys (curl 52 or 56)" "^(52|56)$" "$RC"
stop_sim

start_sim after --fault 503,after=2,count=1
codes=
for i in 1 2 3 4; do req sae-a "$A/api/v1/keys/SAE_B/status"; codes+="$CODE "; done
check "503,after=2,count=1: two served, one 503, then service" "200 200 503 200 " "$codes"
stop_sim

start_sim drop --fault drop
req sae-a "$A/api/v1/keys/SAE_B/status"
check_re "drop: connection closed without a response (curl 52 or 56)" "^(52|56)$" "$RC"
stop_sim

start_sim malformed --fault malformed
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}'
rc=0; jq . <<<"$BODY" >/dev/null 2>&1 || rc=$?
check "malformed: 200 whose body is not JSON" "200 not-json" "$CODE $([[ $rc -ne 0 ]] && echo not-json || echo json)"
stop_sim

start_sim truncated --fault truncated
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}'
check "truncated: body shorter than Content-Length (curl 18)" "18" "$RC"
stop_sim

start_sim oversized --fault oversized
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}'
at_least "oversized: a 200 body of several MB" 4000000 "$SIZE"
check "oversized: status 200" "200" "$CODE"
stop_sim

start_sim timeout --connection-timeout 1 --fault oversized=12000000,path=enc_keys
check "--connection-timeout 1: an idle connection is closed" "closed" "$(tls_client idle "${A##*:}" 2.5)"
check "--connection-timeout 1: so is one whose client reads no answer" "closed" "$(tls_client h1 "${A##*:}" 2.5)"
stop_sim
rc=0; out=$(timeout 10 "$KMESIM" --connection-timeout 0 2>&1) || rc=$?
check_re "--connection-timeout 0 is refused" "^1 kme-sim: --connection-timeout: '0' is not a number from 1 to 86400" "$rc $out"

start_sim html --fault html-error=502
req sae-a "$A/api/v1/keys/SAE_B/status"
check_re "html-error=502: 502 with an HTML body" "^502 text/html <html>" "$CODE $CTYPE ${BODY:0:6}"
stop_sim

start_sim status --fault status=403
req sae-a "$A/api/v1/keys/SAE_B/status"
check_re "status=403: 403 with a JSON message" "^403 fault injection: HTTP 403 Forbidden" "$CODE $(jq -r .message <<<"$BODY")"
stop_sim

start_sim wronglen --fault wrong-length
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"size":256}'
check "wrong-length: a 256-bit request gets 16 bytes" "200 16" "$CODE $(key_bytes "$(jq -r '.keys[0].key' <<<"$BODY")")"
stop_sim

start_sim wrongid --fault kme=KME_B:wrong-id
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}'
asked=$(jq -r '.keys[0].key_ID' <<<"$BODY")
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$asked\"}]}"
got=$(jq -r '.keys[0].key_ID' <<<"$BODY")
check "wrong-id: dec_keys answers with another key_ID" "200 differ" \
	"$CODE $([[ -n $got && $got != "$asked" ]] && echo differ || echo "same ($got)")"
stop_sim

start_sim extra --fault extra-key
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":1}'
check "extra-key: two keys when one was asked for" "200 2" "$CODE $(jq '.keys | length' <<<"$BODY")"
stop_sim

# A fault that alters keys fires on an answer with keys only: a request
# refused before (400) neither uses up its count= or after= nor shows it.
start_sim keycount --fault wrong-length,path=enc_keys,count=1 \
	--fault extra-key,path=dec_keys,after=1,count=1
codes=
for body in '{"size":12}' '{"number":2}' '{}'; do
	post sae-a "$A/api/v1/keys/SAE_B/enc_keys" "$body"
	codes+="$CODE $([[ $CODE != 200 ]] || key_bytes "$(jq -r '.keys[0].key' <<<"$BODY")") "
	[[ $body != '{"number":2}' ]] || ids=$(jq -r '.keys[].key_ID' <<<"$BODY")
done
check "wrong-length,count=1: a 400 first does not use it up" "400  200 16 200 32 " "$codes"
codes=
for id in no-such-key $ids; do
	post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$id\"}]}"
	codes+="$CODE $(jq '.keys | length' <<<"$BODY" 2>/dev/null) "
done
check "extra-key,after=1,count=1: a 400 first does not count for after=" "400 0 200 1 200 2 " "$codes"
check_re "the log names a key fault only on the answer it altered" \
	"enc_keys HTTP/1\.1\" 400 fault=- .*enc_keys HTTP/1\.1\" 200 fault=wrong-length,path=enc_keys,count=1 .*enc_keys HTTP/1\.1\" 200 fault=- .*dec_keys HTTP/1\.1\" 400 fault=- .*dec_keys HTTP/1\.1\" 200 fault=- .*dec_keys HTTP/1\.1\" 200 fault=extra-key" \
	"$(tr '\n' ' ' <"$tmp/keycount.log")"
stop_sim

start_sim seq --sequential-ids
ids=''
for k in 1 2; do
	post sae-a "$A/api/v1/keys/SAE_B/enc_keys" "{\"number\":$k}"
	ids+="$(jq -r '.keys[].key_ID' <<<"$BODY" | tr '\n' ' ')"
done
check "--sequential-ids: key_IDs count up from 1" \
	"00000000-0000-4000-8000-000000000001 00000000-0000-4000-8000-000000000002 00000000-0000-4000-8000-000000000003 " "$ids"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" '{"key_IDs":[{"key_ID":"00000000-0000-4000-8000-000000000002"}]}'
check "--sequential-ids: dec_keys finds a key by its counted ID" "200 00000000-0000-4000-8000-000000000002" \
	"$CODE $(jq -r '.keys[0].key_ID' <<<"$BODY")"
stop_sim

# Keys nobody retrieves: past --max-pending the oldest go, and only they.
start_sim evict --sequential-ids --max-pending 3
for i in 1 2 3 4 5; do post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{"number":1}'; done
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" '{"key_IDs":[{"key_ID":"00000000-0000-4000-8000-000000000002"}]}'
check_re "--max-pending 3, 5 keys not retrieved: the second is gone" \
	"^400 key 00000000-0000-4000-8000-000000000002 not found" "$CODE $(jq -r .message <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" \
	'{"key_IDs":[{"key_ID":"00000000-0000-4000-8000-000000000005"},{"key_ID":"00000000-0000-4000-8000-000000000003"},{"key_ID":"00000000-0000-4000-8000-000000000004"}]}'
check "... the three newest are there, found in any order" \
	"200 00000000-0000-4000-8000-000000000005 00000000-0000-4000-8000-000000000003 00000000-0000-4000-8000-000000000004" \
	"$CODE $(jq -r '[.keys[].key_ID] | join(" ")' <<<"$BODY")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" '{"key_IDs":[{"key_ID":"00000000-0000-4000-8000-000000000003"}]}'
check "... and once retrieved, gone" "400" "$CODE"
stop_sim
check "... kme-sim said which keys it dropped" \
	"00000000-0000-4000-8000-000000000001 00000000-0000-4000-8000-000000000002" \
	"$(sed -n 's/.*dropping the oldest, //p' "$tmp/evict.log" | tr '\n' ' ' | sed 's/ $//')"

start_sim blackhole --fault kme=KME_A:blackhole
req sae-a "$A/api/v1/keys/SAE_B/status" --max-time 2
check "blackhole: no answer, the client times out (curl 28)" "28" "$RC"
at_least "blackhole: after the client's 2 s" 1.9 "$TIME"
timeout 30 curl -sS --max-time 20 --cacert "$pki/ca.crt" --cert "$pki/sae-a.crt" --key "$pki/sae-a.key" \
	"$A/api/v1/keys/SAE_B/status" >/dev/null 2>&1 &
hanging=$!
sleep 0.5
start=$(date +%s.%N)
stop_sim
rc=$STOP_RC
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
wait "$hanging" 2>/dev/null || true
check "SIGTERM with a blackholed request pending: exit 0 at once" "0 fast" \
	"$rc $(awk -v t="$took" 'BEGIN { print (t < 5) ? "fast" : "slow (" t " s)" }')"

# ---- HTTP/2 (--http2) ----

start_sim http2 --http2
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}' --http2
check "--http2: a client that offers h2 gets HTTP/2" "200 2" "$CODE $VER"
h2_id=$(jq -r '.keys[0].key_ID' <<<"$BODY") h2_key=$(jq -r '.keys[0].key' <<<"$BODY")
check "--http2: ... and a 32-byte key" "32" "$(key_bytes "$h2_key")"
post sae-b "$B/api/v1/keys/SAE_A/dec_keys" "{\"key_IDs\":[{\"key_ID\":\"$h2_id\"}]}" --http1.1
check "--http2: a client that offers only http/1.1 gets HTTP/1.1, and the same key" \
	"200 1.1 $h2_key" "$CODE $VER $(jq -r '.keys[0].key' <<<"$BODY")"
req sae-a "$A/api/v1/keys/SAE_B/status" --http2 -X DELETE -D "$tmp/headers"
check "--http2: DELETE on status: 405 with Allow: GET" "405 2 GET" \
	"$CODE $VER $(awk -F': ' 'tolower($1) == "allow" { print $2 }' "$tmp/headers" | tr -d '\r')"
req sae-a "$A/api/v1/keys/SAE_B/enc_keys" --http2 --data-binary "@$tmp/big.json"
check "--http2: request body over 64 KiB: 413" "413 2" "$CODE $VER"
req rogue-sae-a "$A/api/v1/keys/SAE_B/status" --http2
check_re "--http2: a client certificate from an untrusted CA is refused" "^[1-9]" "$RC"
req sae-a "$A/api/v1/keys/SAE_B/status" --http2
check "--http2: GET status" "200 2 SAE_B" "$CODE $VER $(jq -r .slave_SAE_ID <<<"$BODY")"
check_re "--http2: the log says HTTP/2 or HTTP/1.1" \
	"SAE_A \"POST /api/v1/keys/SAE_B/enc_keys HTTP/2\" 200 .*SAE_B \"POST /api/v1/keys/SAE_A/dec_keys HTTP/1\.1\" 200" \
	"$(tr '\n' ' ' <"$tmp/http2.log")"
check "--http2: no key material in the log" "" "$(grep -F -- "$h2_key" "$tmp/http2.log" || true)"
out=$(python3 - "${A##*:}" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(256)]
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port), timeout=3)
try:
    print("closed" if extra.recv(1) == b"" else "data")
except socket.timeout:
    print("open")
except OSError:
    print("closed")
PY
)
check "--http2: beyond 256 connections a new one is closed at once" "closed" "$out"
check_re "--http2: ... and that is logged" "KME_A: 256 connections being served; closing new ones" "$(cat "$tmp/http2.log")"
stop_sim
start_sim http2-faults --http2 --fault 503,path=status --fault drop,path=dec_keys --fault truncated,path=enc_keys
req sae-a "$A/api/v1/keys/SAE_B/status" --http2
check "--http2 with a fault: 503" "503 2" "$CODE $VER"
post sae-a "$A/api/v1/keys/SAE_B/enc_keys" '{}' --http2
check_re "--http2, truncated: the stream is reset (curl 92, or 18)" "^(92|18)$" "$RC"
req sae-b "$B/api/v1/keys/SAE_A/dec_keys?key_ID=x" --http2
check_re "--http2, drop: the stream is reset (curl 92, or 16, 52, 56)" "^(92|16|52|56)$" "$RC"
stop_sim

# Out of descriptors, the front's accept() fails (EMFILE): it must try
# again once connections end, as libmicrohttpd does, not stop listening.
SIM_NOFILE=64 start_sim http2-nofile --http2
hold_conns "${A##*:}" 100 1
req sae-a "$A/api/v1/keys/SAE_B/status" --http2 --max-time 5
check "--http2: out of descriptors for a while, then served again" "0 200 2" "$RC $CODE $VER"
check "--http2: ... and the failed accept() is logged, once" "1" \
	"$(grep -c 'KME_A: cannot accept a connection: Too many open files; retrying' "$tmp/http2-nofile.log")"
stop_sim

# A client that stops reading an answer must not hold its connection (and
# a thread) for ever: the front closes it after --connection-timeout, as
# libmicrohttpd does.
start_sim http2-stall --http2 -v --connection-timeout 1 --fault oversized=12000000,path=enc_keys
tls_client h1 "${A##*:}" 3 >"$tmp/stall-h1" &
stall=$!
check "--http2: a client that reads no answer over HTTP/2 loses its connection" "closed" \
	"$(tls_client h2 "${A##*:}" 3)"
wait "$stall" || true
check "--http2: ... over HTTP/1.1 too" "closed" "$(cat "$tmp/stall-h1")"
req sae-a "$A/api/v1/keys/SAE_B/enc_keys" --http2
check "--http2: a client that reads gets the answer" "200 2" "$CODE $VER"
at_least "--http2: ... all 12 MB of it" 11999990 "$SIZE"
stop_sim
check "--http2 -v: no TCP option noise from the daemon's socket pairs" "" \
	"$(grep -E 'TCP_NODELAY|TCP_CORK|Failed to push' "$tmp/http2-stall.log" || true)"

check "every kme-sim exited 0 on SIGTERM" "" "$bad_exits"
# Under -fsanitize=address,undefined (or valgrind) reports land in the logs.
check "no sanitizer or valgrind report in the kme-sim logs" "" \
	"$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:|ERROR SUMMARY: [1-9]' "$tmp"/*.log || true)"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
