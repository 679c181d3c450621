#!/usr/bin/env bash
# test_etsi_edges.sh - the ETSI GS QKD 014 client against answers kme-sim
# does not give (fake_kme.py: other servers' ways), and across fork():
#   - a dec_keys answer lost on the way, then "no such key": the error says
#     the key may have been given to the lost answer, not only "not found"
#   - enc_keys answers lost on the way: asked twice, not until the timeout
#   - a redirect: the error names where to
#   - an error page larger than any answer read: the HTTP status, not "too
#     large"
#   - keys in unpadded base64 or base64url: the error says which, for the
#     vendor, not only "not 32 bytes of base64"
#   - a KME that takes TCP connections and never does TLS: "TLS handshake
#     did not finish", not curl's "Connection timed out"
#   - several KMEs, every one failing: the error names each one's last
#     failure, in order, within a message's 511 bytes
#   - fork(): the child asks on a connection of its own, never the
#     parent's TLS session, and never closes a descriptor of its own that
#     took the number of a parent's connection; a program the process runs
#     inherits no KME connection
# Usage: test_etsi_edges.sh KMSTORE KME_SIM_PKI FORK_CLIENT
set -euo pipefail
kmstore=$1 pki=$2 fork_client=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
work=$(mktemp -d /tmp/test-etsi-edges.XXXXXX)
kme_pid=
stop() { [ -z "$kme_pid" ] || { kill "$kme_pid" 2>/dev/null; wait "$kme_pid" 2>/dev/null || true; }; kme_pid=; }
trap 'stop; rm -rf "$work"' EXIT
"$pki" "$work/pki" >/dev/null

# kme MODE: (re)starts fake_kme.py; $conf names it in profile "qkd".
kme() {
	stop
	rm -f "$work/port" "$work/port.log"
	python3 "$here/fake_kme.py" "$work/pki" "$work/port" "$1" &
	kme_pid=$!
	wait_for 10 test -s "$work/port"
	conf=$work/kmstore.conf
	cat >"$conf" <<CONF
[qkd]
type         = qkd
url          = https://127.0.0.1:$(cat "$work/port")
local-sae-id = SAE_A
peer-sae-id  = SAE_B
certificate  = $work/pki/sae-a.crt
private-key  = $work/pki/sae-a.key
ca           = $work/pki/ca.crt
timeout      = 3
CONF
	chmod 600 "$conf"
}
id=3f2504e0-4f89-11d3-9a0c-0305e82c3301

kme dec-lost
run "$kmstore" -c "$conf" key qkd --key-id "$id"
expect_rc 5 "dec_keys whose answer was cut off, then refused as no such key"
expect_in "HTTP 400: key not found or already retrieved" "$RUN_ERR" "... the KME's last word is quoted"
expect_in "after an earlier attempt whose answer was lost: transfer closed" "$RUN_ERR" \
	"... and the lost answer before it, which may have carried the key"
expect_eq 2 "$(grep -c "^req .*dec_keys" "$work/port.log")" "... two requests reached the KME"

# Each enc_keys answer lost may have taken keys at the KME (and left them
# waiting at the peer's): one retry, not one per back-off until the timeout.
kme enc-lost
run "$kmstore" -c "$conf" key qkd
expect_rc 8 "enc_keys whose every answer is cut off"
expect_in "transfer closed with 59 bytes remaining to read (after 2 attempts); 2 answers lost, not asked again: each may have taken keys at the KME" \
	"$RUN_ERR" "... the error says why it gave up before the timeout"
expect_eq 2 "$(grep -c "^req .*enc_keys" "$work/port.log")" "... two requests reached the KME, not one per back-off"

kme redirect
run "$kmstore" -c "$conf" key qkd
expect_rc 7 "a redirect is not followed"
expect_in "HTTP 307 (a redirect to https://kme-2.example:8443/api/v1/keys/SAE_B/enc_keys: kmstore follows none" \
	"$RUN_ERR" "... and the error says where it points"

# Three KMEs: the first refuses connections, the second redirects (an
# answer no other KME would change), so the third is not asked: the error
# does not say every KME failed.
port=$(cat "$work/port")
sed -i "s|^url .*|url          = https://127.0.0.1:1 https://127.0.0.1:$port https://127.0.0.1:2|" "$conf"
run "$kmstore" -c "$conf" key qkd
expect_rc 7 "three KMEs: one refusing, one redirecting, one not asked"
expect_in "2 of the 3 KMEs of profile 'qkd' failed enc_keys for SAE 'SAE_B' (2 tries; the rest not asked): https://127.0.0.1:1: cannot connect: Connection refused; https://127.0.0.1:$port: HTTP 307 (" \
	"$RUN_ERR" "... the error names the two asked, and says the rest were not"

kme big-503
run "$kmstore" -c "$conf" key qkd
expect_rc 7 "HTTP 503 with a 25 kB HTML page"
expect_in "HTTP 503 (its body is larger than 16384 bytes; not read)" "$RUN_ERR" \
	"... the error is the status, not a body too large"

kme unpadded
run "$kmstore" -c "$conf" key qkd
expect_rc 7 "a key in base64 without its padding is refused"
expect_in "is unpadded base64 (43 characters, no '='): ETSI GS QKD 014 asks for base64 (RFC 4648 section 4), 44 characters for 32 bytes" \
	"$RUN_ERR" "... saying it is unpadded base64"

kme url-unpadded
run "$kmstore" -c "$conf" key qkd
expect_rc 7 "a key in unpadded base64url is refused"
expect_in "is unpadded base64url (43 characters, no '='; '-' or '_', the URL-safe alphabet)" \
	"$RUN_ERR" "... saying it is unpadded base64url"

# TCP connects, TLS never answers: said so, not curl's "Connection timed out".
kme no-tls
sed -i 's/^timeout .*/timeout      = 1/' "$conf"
run "$kmstore" -c "$conf" key qkd
expect_rc 8 "a KME that never answers the TLS handshake"
expect_in "enc_keys for SAE 'SAE_B': TLS handshake did not finish within the timeout of 1.0 s: TCP connected, the KME's TLS did not answer (1 attempt; last: " \
	"$RUN_ERR" "... the error says the TLS handshake did not finish"

# Two KMEs: the first black-holes TLS, the second refuses connections
# (port 1: nothing listens). Each one's failure is in the error, in order.
port=$(cat "$work/port")
sed -i "s|^url .*|url          = https://127.0.0.1:$port https://127.0.0.1:1|; s/^timeout .*/timeout      = 2/" "$conf"
run "$kmstore" -c "$conf" key qkd
expect_rc 8 "two KMEs, one silent after TCP, one refusing: unreachable (the last failure's code)"
expect_match "every KME of profile 'qkd' failed enc_keys for SAE 'SAE_B' \([0-9]+ tries\): https://127\.0\.0\.1:$port: TLS handshake did not finish within [0-9.]+ s \(TCP connected\); https://127\.0\.0\.1:1: cannot connect: Connection refused\$" \
	"$RUN_ERR" "... the error names each KME's last failure, in order"

# Eight KMEs that refuse: too long for one message; each named, its words cut.
urls=
for i in 1 2 3 4 5 6 7 8; do urls="$urls https://127.0.0.1:$i/qkd-gateway-$i"; done
sed -i "s|^url .*|url          =$urls|; s/^timeout .*/timeout      = 1/" "$conf"
run "$kmstore" -c "$conf" key qkd
expect_rc 8 "eight KMEs refusing"
msg=$(printf '%s\n' "$RUN_ERR" | grep -o "every KME of profile.*" || true)
expect_eq 1 "$([ "${#msg}" -le 511 ] && [ "${#msg}" -ge 400 ] && echo 1 || echo "${#msg} bytes")" \
	"... the error fills, and is within, a message's 511 bytes"
expect_eq 8 "$(grep -oE 'https://127\.0\.0\.1:[1-8]/qkd-gateway-[1-8]: cannot conn' <<<"$msg" | sort -u | wc -l)" \
	"... and names all eight KMEs, each with the start of its failure"
expect_in "..." "$msg" "... their failures cut with '...'"

kme ok
run "$fork_client" "$conf" qkd fork
expect_rc 0 "a key in the parent, in a child of fork(), and in the parent again"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT" | sed 's/^/#   /'
expect_eq 0 "$(grep -c '^error' "$work/port.log" || true)" "... the KME saw no TLS or record error"
expect_eq "conn 1,req 1,conn 2,req 2,req 1" \
	"$(grep -E '^(conn|req)' "$work/port.log" | cut -d' ' -f1,2 | paste -sd,)" \
	"... the child asked on a connection of its own; the parent's stayed the parent's"

# A child that closes what it inherited and opens its own files on those
# numbers (a daemon's child) keeps them: its first key must not close one
# as if it were a copy of its parent's KME connection.
run "$fork_client" "$conf" qkd reuse
expect_rc 0 "a key in the parent; in a child that closed its descriptors and opened pipes, a key"
expect_not_in "is no longer its pipe" "$RUN_OUT" "... and the child's pipes are still its pipes"

# A program run by the process (pluto's updown, a shell) inherits no TCP
# socket: the SAE's connection to the KME is not kept up by it.
run "$fork_client" "$conf" qkd exec sh -c 'n=0
for f in /proc/$$/fd/*; do
	l=$(readlink "$f") || continue
	case $l in socket:*) i=${l#socket:[}; i=${i%]}
		grep -qs " $i " /proc/net/tcp /proc/net/tcp6 && n=$((n + 1)) ;; esac
done
echo "tcp sockets: $n"'
expect_rc 0 "a key, then fork and exec a shell"
expect_in "tcp sockets: 0" "$RUN_OUT" "... which inherits no TCP socket (the KME connection is close-on-exec)"
tap_done
