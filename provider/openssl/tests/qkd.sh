#!/usr/bin/env bash
# Two sites, each with its own KME (kme-sim, HTTPS with mutual TLS on
# 127.0.0.1): west asks for a key for use now, east asks for that key by
# its ID; both see the same check value and compute the same HMAC. A KME
# that is down is a readable error in bounded time. Skipped (77) without
# kme-sim.
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../../.." && pwd)
[[ -n ${KME_SIM:-} && -x ${KME_SIM:-} ]] || skip_all "kme-sim is not built"
[[ -x ${KME_SIM_PKI:-} ]] || skip_all "kme-sim-pki not found"
source "$root/tests/lib/kme-env.sh"
cleanups+=(kme_env_stop)
KME_TIMEOUT=2
kme_env_start "$work/lab" "$KME_SIM" "$KME_SIM_PKI" --pool-size 20 --key-rate 0
W=$KME_DIR/west.conf
E=$KME_DIR/east.conf
field() { awk -v k="$1:" '$1 == k { print $2; exit }' <<<"$2"; }
# Percent-encodes a key ID for a URI (RFC 3986 unreserved stay).
pct() {
	local s=$1 i c out=
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

KMSTORE_CONF=$W run out ossl storeutl "${prov[@]}" kmstore:
check "west: listing shows the QKD profile and its KME" has "$out" "qkd, 256 bits, KME $KME_A_URL"

KMSTORE_CONF=$W run out ossl storeutl "${prov[@]}" -text kmstore:profile=qkd
check "west: a key for use now (enc_keys)" has "$out" "Total found: 1"
check "west: source is KME_A's enc_keys" has "$out" "KME $KME_A_URL (enc_keys"
id=$(field key-id "$out")
kcv=$(field check-value "$out")
printf '# west: key-id %s check-value %s\n' "$id" "$kcv"
check "west: key ID and check value printed" test -n "$id" -a -n "$kcv"

KMSTORE_CONF=$E run out ossl storeutl "${prov[@]}" -text "kmstore:profile=qkd;key-id=$(pct "$id")"
check "east: that key by its ID (dec_keys)" has "$out" "Total found: 1"
check "east: same key ID" has "$out" "key-id:      $id"
check "east: same check value as west" has "$out" "check-value: $kcv"
check "east: source is KME_B's dec_keys" has "$out" "KME $KME_B_URL (dec_keys"

KMSTORE_CONF=$E run out ossl storeutl "${prov[@]}" -text "kmstore:profile=qkd;key-id=$(pct "$id")"
check "east: a key is delivered once: readable error" has "$out" ":kmstore:"
check "east: ... and nothing found" found_none "$out"
printf '#   %s\n' "$(grep -m1 ':kmstore:' <<<"$out" || true)"

# The same through an application: HMAC on both sides.
msg="two sites, one key"
KMSTORE_CONF=$W run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" kmstore-first \
	kmstore:profile=qkd /dev/null "$msg"
id2=$(sed -n 's/^key-id=//p' <<<"$out")
mac_w=$(sed -n 's/^digestsign=//p' <<<"$out")
check "west program: new key and HMAC" test -n "$id2" -a -n "$mac_w"
KMSTORE_CONF=$E run out "$TEST_HMAC" "$KMSTORE_PROVIDER_DIR" default-first \
	"kmstore:profile=qkd;key-id=$(pct "$id2")" /dev/null "$msg"
check "east program: same HMAC with the key fetched by ID" has "$out" "digestsign=$mac_w"

# A KME that accepts connections and never answers: the profile's
# timeout (2 s here) bounds the wait.
python3 - "$work/port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
PY
cleanups+=("kill $! 2>/dev/null")
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
sed "s|^url .*|url = https://127.0.0.1:$(cat "$work/port")|" "$W" >"$work/silent.conf"
chmod 600 "$work/silent.conf"
start=$SECONDS
KMSTORE_CONF=$work/silent.conf run out ossl storeutl "${prov[@]}" -text kmstore:profile=qkd
check "silent KME: readable error" has "$out" "KME https://127.0.0.1:"
check "silent KME: nothing found" found_none "$out"
check "silent KME: gave up within the timeout (+1 s)" test $((SECONDS - start)) -le 3
printf '#   %s\n' "$(grep -m1 ':kmstore:' <<<"$out" || true)"

# The KME is down: connection refused, a readable error, quickly.
kme_env_stop
start=$SECONDS
KMSTORE_CONF=$W run out ossl storeutl "${prov[@]}" -text kmstore:profile=qkd
check "KME down: readable error" has "$out" "KME $KME_A_URL"
check "KME down: Total found: 0" found_none "$out"
check "KME down: within the profile's timeout" test $((SECONDS - start)) -le 4
printf '#   %s\n' "$(grep -m1 ':kmstore:' <<<"$out" || true)"

finish
