#!/usr/bin/env bash
# test_qkd.sh - the kmstore command against two real KMEs (kme-sim, HTTPS
# with mutual TLS on 127.0.0.1): keys shared by enc_keys/dec_keys, and each
# fault a KME or the network can show, each a clear error in bounded time.
# Usage: test_qkd.sh KMSTORE KME_SIM KME_SIM_PKI CLIENT_THREADS
set -euo pipefail
kmstore=$1 kmesim=$2 pki=$3 threads=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
. "$here/../lib/kme-env.sh"
work=$(mktemp -d /tmp/test-qkd.XXXXXX)
trap 'kme_env_stop; rm -rf "$work"' EXIT

KME_TIMEOUT=2
# Restarts the lab with other kme-sim options (faults).
lab() {
	kme_env_stop
	rm -rf "$work/lab"
	kme_env_start "$work/lab" "$kmesim" "$pki" "$@"
	W=$work/lab/west.conf E=$work/lab/east.conf
}
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2" 2>/dev/null || echo '(none)'; }
# A copy of a site's config with one setting changed: conf_with FILE NAME VALUE
conf_with() {
	local out=$work/lab/changed.conf
	sed "s|^$2 .*|$2 = $3|" "$1" >"$out"
	chmod 600 "$out"
	echo "$out"
}

lab

# --- the good path ---------------------------------------------------------
run "$kmstore" -c "$W" --json key qkd
expect_rc 0 "west gets a new key from KME_A (enc_keys)"
id=$(json "$RUN_OUT" key_id) kcv_w=$(json "$RUN_OUT" check_value)
run "$kmstore" -c "$E" --json key qkd --key-id "$id"
expect_rc 0 "east gets that key from KME_B by its ID (dec_keys)"
expect_eq "$kcv_w" "$(json "$RUN_OUT" check_value)" "both sites hold the same key (check value $kcv_w)"
expect_eq "$id" "$(json "$RUN_OUT" key_id)" "east's key has the ID west was given"
run "$kmstore" -c "$E" key qkd --key-id "$id"
expect_rc 5 "a key is delivered once: the second dec_keys is 'no such key'"
expect_in "HTTP 400" "$RUN_ERR" "the error quotes the KME's HTTP status"
expect_in "HTTP 400: key $id not found or already retrieved (details: key_ID=$id" "$RUN_ERR" \
	"... and the message and details of its ETSI error object"
run "$kmstore" -c "$W" key qkd --reveal hex
expect_rc 0 "west gets another key, revealed"
hex=$(awk '$1 == "key" { print $2 }' <<<"$RUN_OUT")
id2=$(awk '$1 == "key-id" { print $2 }' <<<"$RUN_OUT")
run "$kmstore" -c "$E" key "kmstore:profile=qkd;key-id=$id2" --reveal hex
expect_eq "$hex" "$(awk '$1 == "key" { print $2 }' <<<"$RUN_OUT")" "the revealed keys are the same 32 bytes"
expect_eq 64 "${#hex}" "the key has the configured 256 bits"
run "$kmstore" -c "$W" status qkd
expect_rc 0 "status answers"
expect_in "stored_key_count" "$RUN_OUT" "status shows the KME's key count"
run "$kmstore" -c "$W" check
expect_rc 0 "check accepts the QKD profile, its certificate, key and CA"
cp "$work/lab/pki/ca.crt" "$work/lab/open-ca.crt"
chmod 666 "$work/lab/open-ca.crt"
run "$kmstore" -c "$(conf_with "$W" ca "$work/lab/open-ca.crt")" check
expect_rc 1 "check refuses a CA file that others may write"
expect_in "chmod go-w" "$RUN_ERR" "... and says how to fix it"
# Group-writable is refused too, and the SAE's certificate is held to
# the same rule (kmstore.conf(5)): neither is trusted if others may edit it.
chmod 664 "$work/lab/open-ca.crt"
run "$kmstore" -c "$(conf_with "$W" ca "$work/lab/open-ca.crt")" check
expect_rc 1 "check refuses a CA file that its group may write"
expect_in "open-ca.crt is writable by group or others (mode 0664)" "$RUN_ERR" "... naming the file and its mode"
cp "$work/lab/pki/sae-a.crt" "$work/lab/open-sae.crt"
chmod 646 "$work/lab/open-sae.crt"
run "$kmstore" -c "$(conf_with "$W" certificate "$work/lab/open-sae.crt")" check
expect_rc 1 "check refuses a certificate file that others may write"
expect_in "open-sae.crt is writable by group or others (mode 0646)" "$RUN_ERR" "... naming the file and its mode"
# The SAE's TLS key is checked (owner, mode) on an open descriptor: it must
# be read through that one too, not opened again by name (by curl), or
# whoever may rename files in its directory can swap it in between.
if ! command -v strace >/dev/null; then
	tap_not_ok "strace is installed (scripts/deps.sh)"
elif timeout 10 strace -o /dev/null true 2>/dev/null; then
	# (LeakSanitizer cannot run under ptrace: an ASan build aborts at exit)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -e trace=open,openat,openat2 -o "$work/strace.txt" "$kmstore" -c "$W" key qkd >/dev/null 2>&1 &&
		tap_ok "kmstore key qkd under strace" || tap_not_ok "kmstore key qkd under strace" "exit $?"
	expect_eq 1 "$(grep -c "\"$work/lab/pki/sae-a.key\"" "$work/strace.txt")" \
		"the TLS private key is opened once for a request (checked and read through one descriptor)"
	# Many requests in one process: the key is read once and kept while
	# the file is unchanged, once its times are old enough to tell.
	while [ $(($(date +%s) - $(stat -c %Z "$work/lab/pki/sae-a.key"))) -le 3 ]; do sleep 0.2; done
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -e trace=open,openat,openat2 -o "$work/strace.txt" "$threads" "$W" "$E" 4 3 >/dev/null 2>&1 &&
		tap_ok "client_threads under strace" || tap_not_ok "client_threads under strace" "exit $?"
	expect_eq 1 "$(grep -c "\"$work/lab/pki/sae-a.key\"" "$work/strace.txt")" \
		"... many requests in one process read the TLS key once (kept while the file is unchanged)"
else
	echo "# strace cannot trace here: the TLS key's single open is not checked"
fi
# No thread of its own, and safe from many: see client_threads.c.
c=$(conf_with "$W" url "https://localhost:${KME_A_URL##*:}")
run "$threads" "$c" "$E" 4 25
expect_rc 0 "the client creates no thread and serves 4 threads at once"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
# Keys asked for by ID at once ride together: with every dec_keys answered
# 300 ms late, the burst's requests queue behind the four in flight and go
# in one request; the bogus ID among them makes the KME refuse it, and each
# asks again alone (client_threads.c checks that every key arrives).
lab --fault latency=300,path=dec_keys
run "$threads" "$W" "$E" 8 1
expect_rc 0 "a burst of 8 keys by ID (and a bogus ID) at a slow KME"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
batch=$(grep 'dec_keys for .*key_IDs \[.*,' "$work/lab/kme-sim.log" | grep bad0 || true)
[ -n "$batch" ] && tap_ok "... the ones behind went to the KME together (one dec_keys, the bogus ID among them)" ||
	tap_not_ok "... the ones behind went to the KME together (one dec_keys, the bogus ID among them)" \
		"$(grep 'dec_keys for' "$work/lab/kme-sim.log" | tail -n 12)"
# A KME that takes one key ID per request (max_key_per_request 1): the
# requests it refused get their keys alone, and the profile asks for one
# at a time (two rounds of round trips give it two chances before
# the burst with its bogus ID).
lab --fault latency=300,path=dec_keys --max-keys-per-request 1
run "$threads" "$W" "$E" 8 2
expect_rc 0 "a KME that takes one key ID per request still serves a burst of 8"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
expect_in "asking for one key ID per request for 10 minutes" "$RUN_ERR" "... and the client says it asks one ID at a time"
expect_eq 1 "$(grep -c "asking for one key ID per request" <<<"$RUN_ERR")" "... once"
# New keys asked for at once ride together too: with every enc_keys
# answered 300 ms late, the four threads behind the four in flight go in
# one enc_keys of several keys.
lab --fault latency=300,path=enc_keys
run "$threads" "$W" "$E" 8 1
expect_rc 0 "a burst of 8 new keys at a KME slow to make them"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
most=$(grep -o 'enc_keys for [^:]*: number [0-9]*' "$work/lab/kme-sim.log" |
	awk '$NF > m { m = $NF } END { print m + 0 }')
[ "$most" -ge 2 ] && tap_ok "... the ones behind went to the KME together (one enc_keys of $most keys)" ||
	tap_not_ok "... the ones behind went to the KME together (one enc_keys of several keys)" \
		"$(grep 'enc_keys for' "$work/lab/kme-sim.log" | tail -n 12)"
# A KME that gives one key per request refuses the gathered ones: each
# gets its key alone, and the profile asks for one at a time.
lab --fault latency=300,path=enc_keys --max-keys-per-request 1
run "$threads" "$W" "$E" 8 1
expect_rc 0 "a KME that makes one key per request still serves a burst of 8 new keys"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
expect_in "refused an enc_keys of" "$RUN_ERR" "... and the client says the KME refused the gathered request"
expect_eq 1 "$(grep -c "asking for one key per request" <<<"$RUN_ERR")" "... and asks for one key at a time, said once"
# One that makes three: its status tells the client how many to ask for;
# when its status does not tell, half as many as it refused (12 threads:
# eight gathered behind the four in flight, with a second for the
# stragglers of a loaded machine to join them).
KME_TIMEOUT=8 lab --fault latency=1000,path=enc_keys --max-keys-per-request 3
run "$threads" "$W" "$E" 12 1
expect_rc 0 "a KME that makes 3 keys per request serves a burst of 12 new keys"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
expect_eq 1 "$(grep -c "asking for at most 3 keys per request for 10 minutes (its status's max_key_per_request)" <<<"$RUN_ERR")" \
	"... and asks for at most 3 at a time, as its status says, said once"
KME_TIMEOUT=8 lab --fault latency=1000,path=enc_keys --fault status=404,path=status --max-keys-per-request 2
run "$threads" "$W" "$E" 12 1
expect_rc 0 "a KME that makes 2 keys per request and hides its status serves a burst of 12"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
expect_match "asking for at most [0-9]+ keys per request for 10 minutes \(half as many; its status did not tell\)" \
	"$RUN_ERR" "... and asks for half as many as it refused"
# A 403 to a gathered request (a front end's rule, say) whose keys then
# come alone says nothing of how many keys the KME takes: only a 400 or
# a 413 teaches a limit, to the queue as to kmstored's pool. (The 403 goes
# to the sixth enc_keys: one round trip, four alone, then the gathered.)
KME_TIMEOUT=8 lab --fault latency=1000,path=enc_keys --fault status=403,path=enc_keys,after=5,count=1
run "$threads" "$W" "$E" 8 1
expect_rc 0 "a KME that refuses one gathered enc_keys with a 403 serves a burst of 8 new keys"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT"
expect_match "enc_keys.* 403 .*status=403" "$(cat "$work/lab/kme-sim.log")" "... the 403 went to the gathered request"
expect_eq 0 "$(grep -c "asking for" <<<"$RUN_ERR")" "... and the client learns no limit from it"
lab

# --- refused by the KME or the TLS layer ----------------------------------
c=$(conf_with "$E" url "$KME_A_URL")
run "$kmstore" -c "$c" key qkd
expect_rc 7 "SAE_B's certificate at SAE_A's KME is refused"
expect_in "HTTP 401" "$RUN_ERR" "... with the KME's 401"
c=$(conf_with "$W" certificate "$work/lab/pki/rogue-sae-a.crt")
c2=$work/lab/rogue.conf
sed "s|^private-key .*|private-key = $work/lab/pki/rogue-sae-a.key|" "$c" >"$c2"
chmod 600 "$c2"
run "$kmstore" -c "$c2" key qkd
expect_rc 8 "a client certificate from an untrusted CA is refused"
# TLS 1.3: the KME's alert, or a broken pipe when the request went first.
expect_match "TLS failure(: .*alert|\\? the KME closed)" "$RUN_ERR" "... as a TLS failure"
expect_faster 1.5 "... at once, without retries"
c=$(conf_with "$W" ca "$work/lab/pki/rogue-ca.crt")
run "$kmstore" -c "$c" key qkd
expect_rc 8 "a KME whose certificate is not from the configured CA is refused"
expect_in "TLS failure" "$RUN_ERR" "... as a TLS failure"
# This SAE's own key, not matching its certificate (a rotation half
# done): a configuration error at once, no KME blamed.
c=$(conf_with "$W" private-key "$work/lab/pki/sae-b.key")
run "$kmstore" -c "$c" --json status qkd
expect_rc 3 "this SAE's key not matching its certificate: a configuration error"
expect_in "this SAE's TLS credentials cannot be used" "$RUN_ERR" "... saying whose credentials"
run "$kmstore" -c "$c" key qkd
expect_faster 1 "... at once, without retries or failover"
# This SAE's key encrypted with a passphrase (PKCS#8, and the traditional
# form's Proc-Type header): kmstore has none to give. A configuration
# error naming the file, with no prompt (OpenSSL's, on the terminal) and
# no crash (libcurl 7.88 took the length of its missing password).
openssl pkey -in "$work/lab/pki/sae-a.key" -aes256 -passout pass:secret -out "$work/lab/enc8.key"
openssl pkey -in "$work/lab/pki/sae-a.key" -traditional -aes256 -passout pass:secret -out "$work/lab/enc1.key"
expect_in "Proc-Type: 4,ENCRYPTED" "$(cat "$work/lab/enc1.key")" "(the traditional form made here has the header)"
for k in enc8 enc1; do
	chmod 600 "$work/lab/$k.key"
	c=$(conf_with "$W" private-key "$work/lab/$k.key")
	run "$kmstore" -c "$c" check </dev/null
	expect_rc 1 "$k: an encrypted TLS private key: kmstore check fails"
	expect_match "(^|\n)FAILED +qkd " "$RUN_OUT" "... on the QKD profile"
	expect_in "TLS private key $work/lab/$k.key is encrypted" "$RUN_ERR" "... naming the file"
	expect_not_in "pass phrase" "$RUN_ERR" "... asking for no passphrase"
	for cmd in "key qkd" "status qkd"; do
		# shellcheck disable=SC2086 # the command's words
		run "$kmstore" -c "$c" $cmd </dev/null
		expect_rc 3 "$k: kmstore $cmd fails as a configuration error"
		expect_in "TLS private key $work/lab/$k.key is encrypted" "$RUN_ERR" "... naming the file"
		expect_not_in "pass phrase" "$RUN_ERR" "... asking for no passphrase"
	done
done
# Certificates out of their dates fail check, naming the date; one near
# its end is warned of.
kme_env_dated_cert "$work/lab/expired.crt" 20200101000000Z 20210101000000Z
run "$kmstore" -c "$(conf_with "$W" certificate "$work/lab/expired.crt")" check
expect_rc 1 "an expired SAE certificate: check fails"
expect_match "(^|\n)FAILED +qkd " "$RUN_OUT" "... on the QKD profile"
expect_in "certificate: $work/lab/expired.crt expired on Jan  1 00:00:00 2021 GMT: the KME refuses it" "$RUN_ERR" "... saying when"
# A CA file may hold an ended CA beside the one in use (a rollover): one
# valid now is enough. One with none valid fails.
cat "$work/lab/expired.crt" "$work/lab/pki/ca.crt" >"$work/lab/bundle.crt"
run "$kmstore" -c "$(conf_with "$W" ca "$work/lab/bundle.crt")" check
expect_rc 0 "a CA file with an ended certificate before the valid one: check passes"
run "$kmstore" -c "$(conf_with "$W" ca "$work/lab/expired.crt")" check
expect_rc 1 "a CA file whose every certificate ended: check fails"
expect_in "ca: no CA certificate in $work/lab/expired.crt is valid now (the last one ended on Jan  1 00:00:00 2021 GMT" \
	"$RUN_ERR" "... saying so"
kme_env_dated_cert "$work/lab/later.crt" 20900101000000Z 20910101000000Z
run "$kmstore" -c "$(conf_with "$W" certificate "$work/lab/later.crt")" check
expect_rc 1 "a certificate not valid yet: check fails"
expect_in "later.crt is not valid before Jan  1 00:00:00 2090 GMT (is this host's clock right?)" "$RUN_ERR" "... saying from when"
kme_env_dated_cert "$work/lab/ending.crt" "$(date -u +%Y%m%d%H%M%SZ)" "$(date -u -d '+10 days' +%Y%m%d%H%M%SZ)"
run "$kmstore" -c "$(conf_with "$W" certificate "$work/lab/ending.crt")" check
expect_rc 0 "a certificate that ends in 10 days: check passes"
expect_match "certificate: $work/lab/ending.crt expires on .*, in (9|10) days: renew it before then" "$RUN_ERR" "... with a warning"
port=${KME_A_URL##*:}
c=$(conf_with "$W" url "https://localhost:$port")
run "$kmstore" -c "$c" key qkd
expect_rc 0 "the KME certificate's DNS name (localhost) is accepted"

# A KME at an IPv6 address in the URL (its certificate names ::1 too).
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	KME_A_HOST='[::1]' lab
	expect_match '^https://\[::1\]:[0-9]+$' "$KME_A_URL" "kme-sim serves KME_A on [::1]"
	run "$kmstore" -c "$W" --json key qkd
	expect_rc 0 "a key from a KME at an IPv6 address (url = $KME_A_URL)"
	id=$(json "$RUN_OUT" key_id) kcv=$(json "$RUN_OUT" check_value)
	run "$kmstore" -c "$E" --json key qkd --key-id "$id"
	expect_rc 0 "... the peer gets it by its ID"
	expect_eq "$kcv" "$(json "$RUN_OUT" check_value)" "... the same key"
	run "$kmstore" -c "$W" status qkd
	expect_rc 0 "... and its status"
	kill -STOP "$KME_PID"
	run "$kmstore" -c "$W" key qkd
	kill -CONT "$KME_PID"
	expect_rc 8 "a stopped KME at an IPv6 address: unreachable (exit 8)"
	# Its kernel still takes the TCP connection: TLS is what never answers.
	expect_in "TLS handshake did not finish within the timeout" "$RUN_ERR" \
		"... says the timeout (in the TLS handshake), not a parse error"
else
	tap_ok "# SKIP IPv6 KME: no ::1 on this machine"
fi

KME_A_CERT=wrong-name lab
run "$kmstore" -c "$W" key qkd
expect_rc 8 "a KME certificate issued to another name is refused"
expect_in "TLS failure" "$RUN_ERR" "... as a TLS failure"
lab

# --- the KME is away ------------------------------------------------------
kme_env_stop
run "$kmstore" -c "$W" key qkd
expect_rc 8 "KME down: unreachable"
expect_in "cannot connect" "$RUN_ERR" "... says it cannot connect"
expect_faster 1.0 "... at once (connection refused is not retried)"
run "$kmstore" -c "$W" status qkd
expect_rc 8 "KME down: status fails too"
expect_match $'(^|\n)kme +https://[^ ]+ down' "$RUN_OUT" "... showing the KME's health"

# --- faults injected by kme-sim ------------------------------------------
lab --fault latency=3000
run "$kmstore" -c "$W" key qkd
expect_rc 8 "a KME slower than the 2 s timeout"
expect_in "timeout" "$RUN_ERR" "... is reported as a timeout"
expect_faster 3.0 "... within the timeout plus a margin"

lab --fault latency=1000
run "$kmstore" -c "$W" key qkd
expect_rc 0 "a KME slow but within the timeout still serves"

lab --fault 503,count=3
run "$kmstore" -c "$W" key qkd
expect_rc 0 "three 503 answers, then a key: the client retried"
expect_eq 4 "$(grep -c '/enc_keys ' "$work/lab/kme-sim.log")" "... four requests reached the KME"

lab --fault 503
run "$kmstore" -c "$W" key qkd
expect_rc 7 "a KME that always answers 503"
expect_in "HTTP 503" "$RUN_ERR" "... is reported with its status after the retries"
expect_faster 3.0 "... within the timeout plus a margin"

lab --fault malformed
run "$kmstore" -c "$W" key qkd
expect_rc 7 "a malformed JSON answer"
expect_in "not valid JSON" "$RUN_ERR" "... is named as such"

lab --fault oversized
run "$kmstore" -c "$W" key qkd
expect_rc 7 "an oversized answer"
expect_in "larger than" "$RUN_ERR" "... is cut off and named"

lab --fault wrong-length
run "$kmstore" -c "$W" key qkd
expect_rc 7 "a key of the wrong length"
expect_in "not 32 bytes" "$RUN_ERR" "... is named"

lab --fault extra-key
run "$kmstore" -c "$W" key qkd
expect_rc 7 "two keys where one was asked for"
expect_in "sent 2 keys" "$RUN_ERR" "... is named"

lab --fault html-error=404
run "$kmstore" -c "$W" key qkd
expect_rc 7 "an HTML error page"
expect_in "HTTP 404 (the body is not an ETSI error message: " "$RUN_ERR" "... is reported with its status"
expect_in "bytes of HTML or XML; not quoted)" "$RUN_ERR" "... and described, not quoted"

lab --fault drop
run "$kmstore" -c "$W" key qkd
expect_rc 8 "a KME that drops every connection"
expect_faster 3.0 "... fails within the timeout plus a margin"

lab --fault blackhole
run "$kmstore" -c "$W" key qkd
expect_rc 8 "a KME that accepts and never answers"
expect_faster 3.0 "... fails within the timeout plus a margin"

lab --pool-size 1 --key-rate 0
run "$kmstore" -c "$W" key qkd
expect_rc 0 "the last key of the pool"
run "$kmstore" -c "$W" key qkd
expect_rc 7 "an empty pool (503 until the timeout)"
expect_in "HTTP 503" "$RUN_ERR" "... names the KME's 503"

lab --fault wrong-id,path=dec_keys
run "$kmstore" -c "$W" --json key qkd
id=$(json "$RUN_OUT" key_id)
run "$kmstore" -c "$E" key qkd --key-id "$id"
expect_rc 7 "dec_keys answered with another key ID"
expect_in "not the '$id' asked for" "$RUN_ERR" "... is named"

tap_done
