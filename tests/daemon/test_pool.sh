#!/usr/bin/env bash
# test_pool.sh - kmstored's key pool, KME failover, outage policy and
# metrics, against kme-sim (KME_A served by two listeners that share one
# key store, as two front ends of one KME would; KME_B likewise):
#   - the pool fills to prefetch, serves keys the peer's KME knows, is
#     refilled below prefetch-low, drops keys older than prefetch-max-age,
#     and survives a reload with the same KMEs; from a KME that gives 3
#     keys per request it asks for 3 at a time (its status), not halves,
#     from one of 2 that hides its status for halves;
#   - a key whose client has gone when the reply is written: logged and
#     counted as not delivered, not as served; a pooled one goes back to
#     the pool, first in line;
#   - a reload during a refill: its keys go to the new pool, which asks
#     for none meanwhile; with the pool removed, dropped (logged, counted);
#   - a reload that changes a full pool's url or removes the pool, and a
#     stop: its keys dropped, logged and counted, never silently;
#   - failover with the first KME down (nothing listening), black-holed,
#     answering 503, for enc_keys and dec_keys; a failed KME is skipped
#     during its back-off; the order of asking (up, busy, then in back-off
#     soonest back first); every KME down: a clear error in bounded time;
#   - exhaustion (a KME with no keys left) drains the pool, then fails
#     clearly; a KME answering 503 is backed off from, then asked for as
#     many keys as before;
#   - outage policy: drain serves the pool while every KME is down (with
#     a log line and a metric per key), fail refuses at once;
#   - metrics: after a known sequence, scraped with curl over HTTP on
#     127.0.0.1 and over a UNIX socket, and with kmstore metrics: the
#     counters expected, in a well-formed exposition; --metrics refuses a
#     non-loopback address; the KME's stored_key_count, polled at a
#     reload, has no line once its KME stops answering or a reload removes
#     its profile (nor have that profile's pool and KME gauges); metrics
#     past 512 KiB are served, and past the limit, say so; SIGTERM
#     during the status poller's pass ends it after the status in flight.
# Environment: KMSTORE, KMSTORED, KME_SIM, KME_SIM_PKI, DAEMON_CLIENT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
. "$here/../lib/kmstored-env.sh"
. "$here/../lib/daemon-client.sh"
: "${KMSTORE:?}" "${KMSTORED:?}" "${KME_SIM:?}" "${KME_SIM_PKI:?}" "${DAEMON_CLIENT:?}"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }

work=$(mktemp -d /tmp/test-pool.XXXXXX)
chmod 755 "$work" # nobody's clients reach the sockets in here
sim_pid=
cleanup() {
	set +e
	local s
	client_stop
	for s in "$work"/*.sock; do kmstored_stop "$s" KILL; done
	[ -z "$sim_pid" ] || { kill "$sim_pid"; wait "$sim_pid"; } 2>/dev/null
	[ -n "${POOL_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
"$KME_SIM_PKI" "$work/pki" >"$work/pki.log" 2>&1
unset KMSTORE_CONF

# sim [kme-sim options...]: kme-sim afresh; A1 A2 B1 B2 its URLs
# (SIM_A1_LISTEN=ADDR:PORT: A1 there, as a KME restarted).
sim() {
	local i
	if [ -n "$sim_pid" ]; then
		kill "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
	fi
	rm -f "$work/ready"
	"$KME_SIM" --ca "$work/pki/ca.crt" \
		--kme "id=KME_A,listen=${SIM_A1_LISTEN:-127.0.0.1:0},listen=127.0.0.1:0,cert=$work/pki/kme-a.crt,key=$work/pki/kme-a.key,sae=SAE_A" \
		--kme "id=KME_B,listen=127.0.0.1:0,listen=127.0.0.1:0,cert=$work/pki/kme-b.crt,key=$work/pki/kme-b.key,sae=SAE_B" \
		--ready-file "$work/ready" "$@" >/dev/null 2>>"$work/sim.log" &
	sim_pid=$!
	for i in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
	A1=$(awk '$1 == "KME_A" { print $2 }' "$work/ready")
	A2=$(awk '$1 == "KME_A/2" { print $2 }' "$work/ready")
	B1=$(awk '$1 == "KME_B" { print $2 }' "$work/ready")
	B2=$(awk '$1 == "KME_B/2" { print $2 }' "$work/ready")
	[ -n "$A2" ] && [ -n "$B2" ] || { echo "kme-sim did not start"; tail "$work/sim.log"; exit 1; }
}
# A port where nothing listens.
closed_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# conf FILE SITE URLS [EXTRA]: a site's QKD profile "qkd".
conf() {
	local me=SAE_A peer=SAE_B cert=sae-a
	[ "$2" = west ] || { me=SAE_B peer=SAE_A cert=sae-b; }
	cat >"$1" <<CONF
[qkd]
type         = qkd
url          = $3
local-sae-id = $me
peer-sae-id  = $peer
certificate  = $work/pki/$cert.crt
private-key  = $work/pki/$cert.key
ca           = $work/pki/ca.crt
timeout      = 2
${4:-}
CONF
	chmod 600 "$1"
}
json() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null || echo '(none)'; }
# The pool's level, from the metrics (status needs a KME that answers).
pool_keys() {
	"$KMSTORE" --daemon "$1" metrics 2>/dev/null |
		sed -n 's/^kmstore_pool_keys{profile="qkd"} //p'
}
pool_is() { [ "$(pool_keys "$1")" = "$2" ]; }
# metric_has SOCKET TEXT: a line of the metrics holds TEXT (a key is
# counted once its reply is written: its client may ask first).
metric_has() { "$KMSTORE" --daemon "$1" metrics 2>/dev/null | grep -qF "$2"; }
# expect_logged SECONDS MESSAGE GREP_ARGS...: a check that kmstored's west
# log gets a line GREP_ARGS match within SECONDS.
expect_logged() {
	local seconds=$1 what=$2
	shift 2
	if wait_for "$seconds" grep -q "$@" "$SW.log"; then
		tap_ok "$what"
	else
		tap_not_ok "$what" "$(tail -n 5 "$SW.log")"
	fi
}
# keys_at_once N: N clients ask the west daemon for a key at once; how
# many got one.
keys_at_once() {
	local pids=() ok=0 p i
	for i in $(seq "$1"); do "$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1 & pids+=($!); done
	for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
	echo "$ok"
}
enc_requests() { grep -c '"POST /api/v1/keys/SAE_B/enc_keys' "$work/sim.log" || true; }
at_listener() { grep -c "kme-sim $1 .*\"POST" "$work/sim.log" || true; }

SW=$work/west.sock SE=$work/east.sock

# --- the pool ----------------------------------------------------------------
sim
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 3'
conf "$work/east.conf" east "$B1"
kmstored_start "$SW" "$work/west.conf"
if wait_for 10 pool_is "$SW" 5; then tap_ok "the pool fills to prefetch (5)"; else
	tap_not_ok "the pool fills to prefetch (5)" "pool_keys $(pool_keys "$SW")" "$(cat "$SW.log")"; fi
run "$KMSTORE" --daemon "$SW" --json status qkd
expect_eq "5 5" "$(json "$RUN_OUT" 'd["pool_keys"], d["pool_target"]' | tr -d '(),')" "status --json: pool_keys and pool_target"
run "$KMSTORE" --daemon "$SW" status qkd
expect_match $'pool_keys +5\npool_target +5' "$RUN_OUT" "status: the pool's lines"
ticks() { awk '{ print $14 + $15 }' "/proc/$(kmstored_pid "$SW")/stat"; }
t0=$(ticks)
sleep 2
idle=$(($(ticks) - t0))
if [ "$idle" -le $(($(getconf CLK_TCK) / 10)) ]; then
	tap_ok "a full pool waits: kmstored uses no CPU while idle ($idle ticks in 2 s)"
else
	tap_not_ok "a full pool waits: kmstored uses no CPU while idle" "$idle ticks in 2 s"
fi
before=$(enc_requests)
run "$KMSTORE" --daemon "$SW" --json key qkd
expect_rc 0 "a key for use now"
id=$(json "$RUN_OUT" 'd["key_id"]') kcv=$(json "$RUN_OUT" 'd["check_value"]')
# kmstored logs a key once its reply is written: the client may be first.
expect_logged 5 "... from the pool (kmstored's log)" -F "key $id for use now, from the pool"
expect_eq "$before" "$(enc_requests)" "... with no enc_keys request to the KME"
run "$KMSTORE" -c "$work/east.conf" --json key qkd --key-id "$id"
expect_eq "$kcv" "$(json "$RUN_OUT" 'd["check_value"]')" "the peer's KME gives the same key for its ID (dec_keys)"
"$KMSTORE" --daemon "$SW" key qkd >/dev/null
expect_eq 3 "$(pool_keys "$SW")" "two keys taken: 3 left, not below prefetch-low (3): no refill yet"
"$KMSTORE" --daemon "$SW" key qkd >/dev/null
if wait_for 5 pool_is "$SW" 5; then tap_ok "below prefetch-low: refilled to prefetch"; else
	tap_not_ok "below prefetch-low: refilled to prefetch" "pool_keys $(pool_keys "$SW")"; fi
before=$(enc_requests)
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload, the profile's KMEs unchanged"
expect_eq 5 "$(pool_keys "$SW")" "... the pool's keys are kept"
expect_eq "$before" "$(enc_requests)" "... none fetched again"
sleep 2
echo 'prefetch-max-age = 2' >>"$work/west.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload with prefetch-max-age = 2 s"
expect_logged 5 "keys older than prefetch-max-age are dropped (logged)" 'prefetched keys older than prefetch-max-age (2 s) dropped unused'
if wait_for 5 pool_is "$SW" 5; then tap_ok "... and replaced"; else tap_not_ok "... and replaced" "pool_keys $(pool_keys "$SW")"; fi
expect_in 'kmstore_pool_expired_total{profile="qkd"} 5' "$("$KMSTORE" --daemon "$SW" metrics)" "... counted in kmstore_pool_expired_total"
expect_eq 1 "$(($(enc_requests) - before))" "... with one enc_keys request for the five (number = 5)"
# The pool's keys are in locked memory and in no core dump: dump kmstored
# with a full pool, then take those keys, revealed, and search the dump.
if command -v gcore >/dev/null && [ "${KMSTORE_SANITIZED:-0}" != 1 ]; then
	mkdir -p "$work/pooled"
	if timeout 120 gcore -o "$work/kmstored-core" "$(kmstored_pid "$SW")" >"$work/gcore.out" 2>&1; then
		for i in 1 2 3 4 5; do
			"$KMSTORE" --daemon "$SW" key qkd --reveal hex |
				awk '$1 == "key" { print $2 }' >"$work/pooled/key-$i"
		done
		expect_eq 5 "$(cat "$work/pooled"/key-* | grep -c '^[0-9a-f]\{64\}$')" "five pooled keys taken, revealed"
		run python3 "$here/../hygiene/scan_secrets.py" "$work/pooled" "$work"/kmstored-core.*
		expect_rc 0 "a core dump of kmstored with a full pool holds none of its keys"
		[ "$RUN_RC" -eq 0 ] || cp /proc/"$(kmstored_pid "$SW")"/maps "$work/kmstored.maps"
		expect_match "^[1-9]" "$(awk '$1 == "VmLck:" { print $2 }' "/proc/$(kmstored_pid "$SW")/status")" "... they are in locked memory (VmLck)"
		[ "$RUN_RC" -ne 0 ] || rm -f "$work"/kmstored-core.*
	else
		tap_ok "# SKIP gcore cannot dump here: $(tail -n 1 "$work/gcore.out")"
	fi
fi
kmstored_stop "$SW"

# --- a key a client does not take ------------------------------------------------
# A client gone before its reply is written (it gave up after a timeout of
# its own): the key is logged and counted as not delivered, not as served;
# a key from the pool goes back to it, first in line.
sim --fault latency=3000,path=enc_keys
conf "$work/west.conf" west "$A1"
sed -i 's/^timeout .*/timeout      = 10/' "$work/west.conf"
kmstored_start "$SW" "$work/west.conf"
run timeout 1 "$KMSTORE" --daemon "$SW" key qkd
expect_rc 124 "a client gives up after 1 s on a KME 3 s away"
expect_logged 15 "... kmstored logs its key as consumed at the KME, not delivered" 'key [^ ]* for use now not delivered (the client is gone): consumed at the KME, lost (check value [0-9a-f]*)$'
expect_not_in "for use now (check value" "$(cat "$SW.log")" "... not as served"
m=$("$KMSTORE" --daemon "$SW" metrics)
expect_in 'kmstore_keys_undelivered_total{profile="qkd",kind="new",source="kme"} 1' "$m" "... counted in kmstore_keys_undelivered_total"
expect_not_in 'kmstore_keys_served_total' "$m" "... not in kmstore_keys_served_total"
kmstored_stop "$SW"
# A reload that raises a profile's timeout reaches a client that listed
# the profiles before it (pluto's module, running): its request outlasting
# the old wait (2 s and a margin) asks kmstored for the profile's timeout
# again and waits on, so the key kmstored fetches is delivered, not lost.
sim --fault latency=3500,path=enc_keys
conf "$work/west.conf" west "$A1"
kmstored_start "$SW" "$work/west.conf"
client_start "$SW"
expect_eq ready "$ANSWER" "a long-lived client opens kmstored's store (timeout 2 s)"
sed -i 's/^timeout .*/timeout      = 6/' "$work/west.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "... then a reload raises the timeout to 6 s"
for i in 1 2; do
	client_ask "key qkd"
	expect_match "^ok " "$ANSWER" "... its key $i from a KME 3.5 s slow arrives"
done
expect_not_in "not delivered" "$(cat "$SW.log")" "... each delivered, none lost"
client_stop
kmstored_stop "$SW"
sim
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 3'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 5 || true
# A KEY request from a client that shut its reading side first: kmstored's
# reply cannot be written (EPIPE), whatever the timing.
python3 -c 'import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.shutdown(socket.SHUT_RD)
body = b"\x01" + struct.pack(">I", len(sys.argv[2])) + sys.argv[2].encode()
s.sendall(b"KMSD\x01\x02\x00\x00" + struct.pack(">I", len(body)) + body)' "$SW" qkd
expect_logged 10 "a pooled key whose client is gone goes back to the pool (logged)" 'for use now, from the pool, not delivered (the client is gone): back in the pool'
expect_eq 5 "$(pool_keys "$SW")" "... the pool holds 5 keys again"
id=$(sed -n 's/.*: key \([^ ]*\) for use now, from the pool, not delivered.*/\1/p' "$SW.log")
run "$KMSTORE" --daemon "$SW" --json key qkd
expect_eq "$id" "$(json "$RUN_OUT" 'd["key_id"]')" "... first in line: the next client gets it"
wait_for 5 metric_has "$SW" 'kmstore_keys_served_total{' || true
m=$("$KMSTORE" --daemon "$SW" metrics)
expect_in 'kmstore_keys_served_total{profile="qkd",kind="new",source="pool"} 1' "$m" "... served once, when delivered"
expect_in 'kmstore_keys_undelivered_total{profile="qkd",kind="new",source="pool"} 1' "$m" "... and not delivered once"
run python3 "$here/check_exposition.py" <<<"$m"
expect_rc 0 "... a well-formed exposition"
kmstored_stop "$SW"

# --- a reload during a refill ---------------------------------------------------
# kme-sim -v logs each enc_keys its latency holds as it arrives: the pool's
# refill is then under way. A reload that keeps the pool (same KMEs) hands
# the refill's keys to the new pool, which asks for none meanwhile; one
# that removes the pool drops them, logged and counted.
sim -v --fault latency=5000,path=enc_keys
mark=$(wc -l <"$work/sim.log")
held() { tail -n +$((mark + 1)) "$work/sim.log" | grep -c 'enc_keys: answering in 5000 ms (latency)' || true; }
held_is() { [ "$(held)" -ge "$1" ]; }
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 3'
sed -i 's/^timeout .*/timeout      = 10/' "$work/west.conf"
kmstored_start "$SW" "$work/west.conf"
wait_for 10 held_is 1 || true
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload while the pool's first refill waits on its KME"
expect_logged 15 "... the refill's 5 keys go to the new pool (logged)" "profile 'qkd': a refill under way at a reload brought 5 keys to the new pool"
expect_eq 5 "$(pool_keys "$SW")" "... which holds them"
expect_eq 1 "$(held)" "... and asked the KME for none itself"
expect_not_in 'kmstore_pool_dropped_total' "$("$KMSTORE" --daemon "$SW" metrics)" "... none dropped"
for i in 1 2 3; do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
wait_for 10 held_is 2 || true
conf "$work/west.conf" west "$A1"
sed -i 's/^timeout .*/timeout      = 10/' "$work/west.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload without prefetch while the pool refills (3 keys)"
expect_logged 5 "... the pool's 2 keys are dropped, logged" -F "profile 'qkd': 2 prefetched keys dropped unused: the reload removed or changed the profile"
expect_logged 15 "... the refill's keys are dropped, logged" "3 keys fetched for profile 'qkd' after it was removed or changed by a reload, dropped"
expect_in 'kmstore_pool_dropped_total{profile="qkd"} 5' "$("$KMSTORE" --daemon "$SW" metrics)" "... and all 5 counted in kmstore_pool_dropped_total"
kmstored_stop "$SW"

# --- a reload that changes or removes a full pool -------------------------------
# Prefetched keys were taken from the KME and wait unused at the peer's
# KME: dropped by a reload that changes the profile's KMEs or removes its
# pool, or by a stop, they are logged and counted, never wiped unseen.
sim
conf "$work/west.conf" west "$A1" 'prefetch = 8'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 8 || true
conf "$work/west.conf" west "$A2" 'prefetch = 8'
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "a full pool of 8, then a reload that changes the profile's url"
expect_logged 5 "... its 8 keys are dropped, logged" -F "profile 'qkd': 8 prefetched keys dropped unused: the reload removed or changed the profile"
expect_in 'kmstore_pool_dropped_total{profile="qkd"} 8' "$("$KMSTORE" --daemon "$SW" metrics)" "... and counted in kmstore_pool_dropped_total"
if wait_for 10 pool_is "$SW" 8; then tap_ok "... the new pool fills from the new url"; else
	tap_not_ok "... the new pool fills from the new url" "pool_keys $(pool_keys "$SW")"; fi
conf "$work/west.conf" west "$A2" 'prefetch = 0'
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "then a reload with prefetch = 0"
twice() { [ "$(grep -c "profile 'qkd': 8 prefetched keys dropped unused: the reload removed or changed the profile" "$SW.log")" -eq 2 ]; }
if wait_for 5 twice; then tap_ok "... the pool's 8 keys are dropped, logged"; else
	tap_not_ok "... the pool's 8 keys are dropped, logged" "$(tail -n 3 "$SW.log")"; fi
expect_in 'kmstore_pool_dropped_total{profile="qkd"} 16' "$("$KMSTORE" --daemon "$SW" metrics)" "... and counted: 16 in all"
conf "$work/west.conf" west "$A2" 'prefetch = 8'
"$KMSTORE" --daemon "$SW" reload >/dev/null
wait_for 10 pool_is "$SW" 8 || true
kmstored_stop "$SW"
expect_in "profile 'qkd': 8 prefetched keys dropped unused: kmstored stops" "$(cat "$SW.log")" "a stop with a full pool logs its keys dropped too"

# --- a KME that gives at most 2 keys per request, its status hidden -----------
# libkmstore halves the pool's refused request, and keeps the number given
# as the KME's limit: 5 (refused), 2, 2, 1.
sim --max-keys-per-request 2 --fault status=404,path=status
mark=$(wc -l <"$work/sim.log")
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 3'
kmstored_start "$SW" "$work/west.conf"
if wait_for 10 pool_is "$SW" 5; then tap_ok "the pool fills from a KME of 2 whose status is hidden"; else
	tap_not_ok "the pool fills from a KME of 2 whose status is hidden" "pool_keys $(pool_keys "$SW")" "$(tail -n 5 "$SW.log")"; fi
expect_eq "5 2 2 1" "$(tail -n +$((mark + 1)) "$work/sim.log" | sed -n 's/.*enc_keys for SAE_B: number //p' | tr '\n' ' ' | sed 's/ $//')" \
	"... asking for 5, then for half as many, then for the rest"
expect_in "asking for at most 2 keys per request for 10 minutes (half as many; its status did not tell)" "$(cat "$SW.log")" \
	"... and warns once"
kmstored_stop "$SW"

# --- a KME that gives at most 3 keys per request ------------------------------
# The pool's first request (5 keys) is refused, or clamped once the
# watcher has read the KME's status; either way it asks for 3 at a time,
# as the status says, not for halves of 5.
sim --max-keys-per-request 3
mark=$(wc -l <"$work/sim.log")
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 3'
conf "$work/east.conf" east "$B1"
kmstored_start "$SW" "$work/west.conf"
if wait_for 10 pool_is "$SW" 5; then tap_ok "the pool fills from a KME that gives 3 keys per request"; else
	tap_not_ok "the pool fills from a KME that gives 3 keys per request" "pool_keys $(pool_keys "$SW")" "$(tail -n 5 "$SW.log")"; fi
expect_in "enc_keys for SAE_B: number 3" "$(tail -n +$((mark + 1)) "$work/sim.log")" \
	"... asking for 3 at a time, as its status says"
kmstored_stop "$SW"

# --- failover ------------------------------------------------------------------
down=https://127.0.0.1:$(closed_port)
conf "$work/west.conf" west "$down $A2"
kmstored_start "$SW" "$work/west.conf"
run "$KMSTORE" --daemon "$SW" --json key qkd
expect_rc 0 "failover, first KME down (nothing listens): a key from the second"
id=$(json "$RUN_OUT" 'd["key_id"]') kcv=$(json "$RUN_OUT" 'd["check_value"]')
run "$KMSTORE" -c "$work/east.conf" --json key qkd --key-id "$id"
expect_eq "$kcv" "$(json "$RUN_OUT" 'd["check_value"]')" "... a key the peer's KME knows"
run "$KMSTORE" --daemon "$SW" --json status qkd
expect_eq "down up" "$(json "$RUN_OUT" '" ".join(k["state"] for k in d["kmes"])')" "status: the first KME down, the second up"
expect_match "cannot connect" "$(json "$RUN_OUT" 'd["kmes"][0]["last_error"]')" "... with its last error"
kmstored_stop "$SW"
# A KME back up is up, its old error not shown beside it as if current
# (kmstored logged it at the time): killed, a request fails; restarted on
# its address, a request gets a key.
sim
conf "$work/west.conf" west "$A1"
kmstored_start "$SW" "$work/west.conf"
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "the KME killed: a request fails (8)"
expect_match "cannot connect" "$RUN_ERR" "... it cannot connect"
SIM_A1_LISTEN=${A1#https://} sim
if wait_for 10 "$KMSTORE" --daemon "$SW" key qkd; then tap_ok "the KME restarted: a request gets a key"; else
	tap_not_ok "the KME restarted: a request gets a key" "$(tail -n 3 "$SW.log")"; fi
run "$KMSTORE" --daemon "$SW" --json status qkd
expect_eq "up, no last_error" "$(json "$RUN_OUT" 'd["kmes"][0]["state"] + ", " + d["kmes"][0].get("last_error", "no last_error")')" \
	"... status --json: up, its old error gone"
run "$KMSTORE" --daemon "$SW" status qkd
expect_match $'(^|\n)kme +https://[^ ]+ up($|\n)' "$RUN_OUT" "... status: 'up', and nothing after it"
kmstored_stop "$SW"
sim --fault "blackhole,kme=KME_A/1"
conf "$work/west.conf" west "$A1 $A2"
conf "$work/east.conf" east "$B1"
kmstored_start "$SW" "$work/west.conf"
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "failover, first KME black-holed: a key from the second"
expect_faster 3 "... within the profile's timeout (2 s) and a second"
a1=$(at_listener KME_A)
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "the next key"
expect_faster 0.5 "... at once: the black-holed KME is in its back-off"
expect_eq "$a1" "$(at_listener KME_A)" "... and was not asked"
kmstored_stop "$SW"
# Requests failing together are one failure of the KME: 16 at once (each
# answer 200 ms late) while its first front end drops every connection.
sim --fault "drop,kme=KME_A/1,path=enc_keys" --fault latency=200,path=enc_keys
conf "$work/west.conf" west "$A1 $A2"
kmstored_start "$SW" "$work/west.conf"
ok=$(keys_at_once 16)
expect_eq 16 "$ok" "16 keys at once, the first front end dropping them: all from the second"
dropped=$("$KMSTORE" --daemon "$SW" metrics | sed -n "s|^kmstore_kme_requests_total{profile=\"qkd\",kme=\"$A1\",op=\"enc_keys\",outcome=\"dropped\"} ||p")
run "$KMSTORE" --daemon "$SW" --json status qkd
failures=$(json "$RUN_OUT" 'd["kmes"][0]["failures"]')
# (fewer than dropped: a straggler after the 1 s back-off counts again;
# status asks the first front end again then, and finds it up: 0)
if [ "${dropped:-0}" -ge 2 ] && [ "$failures" -lt "$dropped" ]; then
	tap_ok "... $dropped requests dropped there together: one failure of that front end ($failures now)"
else
	tap_not_ok "... requests dropped together: one failure of that front end" "dropped ${dropped:-none}, failures $failures"
fi
# Each enc_keys at the second front end took 200 ms and more (its latency),
# and less than the profile's timeout (2 s): the histogram is in seconds,
# none in the buckets up to 0.1 s, all of them in the one of 5 s.
m=$("$KMSTORE" --daemon "$SW" metrics)
hist() { sed -n "s|^kmstore_kme_request_duration_seconds_$1{profile=\"qkd\",kme=\"$A2\",op=\"enc_keys\"$2} ||p" <<<"$m"; }
count=$(hist count '') sum=$(hist sum '')
if [[ ${count:-0} -ge 1 ]] && [ "$(hist bucket ',le="0.1"')" = 0 ] && [ "$(hist bucket ',le="5"')" = "$count" ] &&
	awk -v s="$sum" -v n="$count" 'BEGIN { exit !(s >= 0.2 * n && s <= 5 * n) }'; then
	tap_ok "kmstore_kme_request_duration_seconds: $count requests of 200 ms and more, in seconds (sum $sum)"
else
	tap_not_ok "kmstore_kme_request_duration_seconds: requests of 200 ms and more, in seconds" "$(grep "kme_request_duration_seconds.*$A2.*enc_keys" <<<"$m")"
fi
kmstored_stop "$SW"
# A burst at a slow KME: the four sent at once take 4.5 s of the 6 s
# timeout and get their keys; the four that waited behind them go with
# 1.5 s left and run out of time. That is the queue's doing, not the
# KME's: it stays up. (One process's threads, released together: a request
# arriving 1.5 s late would be sent with half the timeout, and count.)
sim --fault latency=4500,path=enc_keys
conf "$work/west.conf" west "$A1"
sed -i 's/^timeout .*/timeout      = 6/' "$work/west.conf"
kmstored_start "$SW" "$work/west.conf"
client_start "$SW"
client_ask "burst qkd 8" 30
client_stop
read -r _ ok failed _ <<<"$ANSWER"
short=$(grep -c "no answer in the [0-9.]* s it was given of the timeout of 6.0 s" "$SW.log" || true)
if [ "${ok:-0}" -ge 4 ] && [ "${failed:-0}" -ge 1 ] && [ "$short" -eq "${failed:-0}" ]; then
	tap_ok "a burst at a KME 4.5 s slow: $ok keys, $short requests cut short by their wait in the queue"
else
	tap_not_ok "a burst at a KME 4.5 s slow: the first four get keys, the rest are cut short" \
		"burst: $ANSWER; cut short in kmstored's log: $short" "$(tail -n 8 "$SW.log")"
fi
expect_in "kmstore_kme_up{profile=\"qkd\",kme=\"$A1\"} 1" "$("$KMSTORE" --daemon "$SW" metrics)" \
	"... and the KME that answered every request sent with its whole share stays up"
kmstored_stop "$SW"
sim --fault "503,kme=KME_A/1" --fault "503,kme=KME_B/1"
conf "$work/west.conf" west "$A1 $A2"
conf "$work/east.conf" east "$B1 $B2"
kmstored_start "$SW" "$work/west.conf"
kmstored_start "$SE" "$work/east.conf"
run "$KMSTORE" --daemon "$SW" --json key qkd
expect_rc 0 "failover, first KME answering 503: a key from the second"
id=$(json "$RUN_OUT" 'd["key_id"]') kcv=$(json "$RUN_OUT" 'd["check_value"]')
# (the next asked at once, from a running client: a second is short for a
# command to start under a sanitizer)
client_start "$SW"
client_ask "key qkd" 10
ans=$ANSWER a1=$(at_listener KME_A)
client_ask "key qkd" 10
expect_match "^ok .*ok " "$ans $ANSWER" "... the next keys, from a running client: from the second"
expect_eq "$a1" "$(at_listener KME_A)" "... at once, the busy first asked after it for a second"
client_stop
run "$KMSTORE" --daemon "$SE" --json key qkd --key-id "$id"
expect_rc 0 "failover for dec_keys too (east's first KME answers 503)"
expect_eq "$kcv" "$(json "$RUN_OUT" 'd["check_value"]')" "... the same key"
kmstored_stop "$SW"
kmstored_stop "$SE"
# The order of asking: a KME that refused connections is in its back-off,
# one that answered 503 is busy for a second. With both failing, the next
# request asks the busy one first: it is up, only loaded.
down=https://127.0.0.1:$(closed_port)
conf "$work/west.conf" west "$down $A1"
kmstored_start "$SW" "$work/west.conf"
client_start "$SW"
client_ask "key qkd" 10
first=$ANSWER
client_ask "key qkd" 10
expect_match "^error [0-9]+ .*: $down: cannot connect[^;]*; $A1: HTTP 503" "$first" \
	"two KMEs failing, the first refusing connections, the second 503: asked as configured"
expect_match "^error [0-9]+ .*: $A1: HTTP 503[^;]*; $down: cannot connect" "$ANSWER" \
	"... and at once again: the busy one first, the one in its back-off after it"
client_stop
kmstored_stop "$SW"
# Two KMEs in their back-off: the one back sooner is asked first, whatever
# the configured order. The first, refusing connections, fails twice (its
# back-off doubles to 2 s); the second answers until kme-sim stops, then
# fails once (1 s). A failing request goes round the KMEs until its
# timeout: 1 s here, so that it ends before the second's back-off does.
sim
down=https://127.0.0.1:$(closed_port) # not one kme-sim just took
conf "$work/west.conf" west "$down $A1"
sed -i 's/^timeout .*/timeout      = 1/' "$work/west.conf"
kmstored_start "$SW" "$work/west.conf"
client_start "$SW"
client_ask "key qkd" 10
sleep 1.2
client_ask "key qkd" 10
second=$ANSWER
kill -KILL "$sim_pid" # at once: the checks below count on time
wait "$sim_pid" 2>/dev/null || true
sim_pid=
client_ask "key qkd" 10
third=$ANSWER
client_ask "key qkd" 10
expect_match "^ok " "$second" "the first KME failing twice in a row, the second answering: a key"
expect_match "^error [0-9]+ .*: $A1: [^;]*; $down: cannot connect" "$third" \
	"... the second gone: asked first (it is up), the first in its back-off after it"
expect_match "^error [0-9]+ .*: $A1: [^;]*; $down: cannot connect" "$ANSWER" \
	"... and at once again: both in their back-off, the one back sooner (the second) first"
client_stop
kmstored_stop "$SW"
sim --fault "503,kme=KME_A"
conf "$work/west.conf" west "$A1 $A2"
kmstored_start "$SW" "$work/west.conf"
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 7 "every KME answering 503: the KME's error (exit 7)"
expect_match "every KME of profile 'qkd' failed enc_keys for SAE 'SAE_B' \([0-9]+ tries\): https://[^ ]+: HTTP 503[^;]*; https://[^ ]+: HTTP 503" "$RUN_ERR" "... saying every KME failed, and each one's reason"
expect_faster 3 "... within the timeout and a second"
kmstored_stop "$SW"

# --- exhaustion ----------------------------------------------------------------
sim --pool-size 7 --key-rate 0
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 4'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 5 || true
ok=0
for i in 1 2 3 4 5 6 7; do
	"$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>"$work/exhaust.err" && ok=$((ok + 1))
done
expect_eq 7 "$ok" "a KME with 7 keys: the pool and the KME serve all 7"
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 7 "then the KME is exhausted: a clear error (exit 7)"
expect_match "HTTP 503" "$RUN_ERR" "... the KME's 503 relayed"
expect_eq 0 "$(pool_keys "$SW")" "... and the pool is empty"
expect_in "pool refill failed" "$(cat "$SW.log")" "kmstored logs the failed refill"
kmstored_stop "$SW"
# A KME out of keys answers 503 (here its first 10 enc_keys). A 5xx to
# several keys may mean it holds fewer: the pool asks for fewer then, but
# learns no limit: once the KME answers, a refill asks for all it lacks.
sim --fault 503,path=enc_keys,count=10
conf "$work/west.conf" west "$A1" $'prefetch = 16\nprefetch-low = 8'
kmstored_start "$SW" "$work/west.conf"
if wait_for 40 pool_is "$SW" 16; then tap_ok "a KME answering 503 for a while: the pool fills once it answers"; else
	tap_not_ok "a KME answering 503 for a while: the pool fills once it answers" "pool_keys $(pool_keys "$SW")" "$(tail -n 5 "$SW.log")"; fi
expect_eq "" "$(grep 'per request for 10 minutes' "$SW.log" || true)" "... learning no limit from a 503"
mark=$(wc -l <"$work/sim.log")
for i in $(seq 9); do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
wait_for 10 pool_is "$SW" 16 || true
expect_eq 9 "$(tail -n +$((mark + 1)) "$work/sim.log" | sed -n 's/.*enc_keys for SAE_B: number //p' | tr '\n' ' ' | sed 's/ $//')" \
	"... 9 keys taken: one request for all 9"
kmstored_stop "$SW"
# A KME holding 10 keys, refilled by none: a pool of 16 is answered 503,
# asks its status and takes the 10 it holds.
sim --pool-size 10 --key-rate 0
mark=$(wc -l <"$work/sim.log")
conf "$work/west.conf" west "$A1" $'prefetch = 16\nprefetch-low = 8'
kmstored_start "$SW" "$work/west.conf"
if wait_for 10 pool_is "$SW" 10; then tap_ok "a KME holding 10 keys: a pool of 16 takes the 10"; else
	tap_not_ok "a KME holding 10 keys: a pool of 16 takes the 10" "pool_keys $(pool_keys "$SW")" "$(tail -n 5 "$SW.log")"; fi
expect_in "enc_keys for SAE_B: number 10" "$(tail -n +$((mark + 1)) "$work/sim.log")" "... in one request, as many as its status says it holds"
kmstored_stop "$SW"
# Without a pool, 16 fetches at once from a KME holding 10 (each answer
# 200 ms late): those behind the first go together and are answered 503,
# the KME holding fewer than asked; each then asks alone, so 10 get keys.
sim --pool-size 10 --key-rate 0 --fault latency=200,path=enc_keys
conf "$work/west.conf" west "$A1"
kmstored_start "$SW" "$work/west.conf"
ok=$(keys_at_once 16)
expect_eq 10 "$ok" "16 fetches at once from a KME holding 10: 10 keys, the KME's all"
kmstored_stop "$SW"
# A KME out of keys answers 503: it answered, so it is not down, and
# outage = fail keeps serving the pool's keys. 8 keys: 5 for the pool,
# then 2 and 1 more; the next refill fails.
sim --pool-size 8 --key-rate 0
conf "$work/west.conf" west "$A1" $'prefetch = 5\nprefetch-low = 4\noutage = fail'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 5 || true
for i in 1 2; do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
wait_for 10 pool_is "$SW" 5 || true
for i in 1 2; do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
wait_for 10 pool_is "$SW" 4 || true
"$KMSTORE" --daemon "$SW" key qkd >/dev/null
expect_logged 10 "a refill from a KME out of keys: refused (503)" 'pool refill failed (3 keys left of 5)'
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "... outage = fail still serves the pool: the KME is not down"
expect_in 'kmstore_kme_up{profile="qkd",kme="'"$A1"'"} 1' "$("$KMSTORE" --daemon "$SW" metrics)" "... kmstore_kme_up 1"
kmstored_stop "$SW"
# An answer it cannot read is no refusal of the number of keys: the pool
# backs off and asks for as many (16) again, learning no limit.
sim --fault malformed,path=enc_keys,count=1
mark=$(wc -l <"$work/sim.log")
conf "$work/west.conf" west "$A1" $'prefetch = 16\nprefetch-low = 8'
kmstored_start "$SW" "$work/west.conf"
if wait_for 20 pool_is "$SW" 16; then tap_ok "a garbled answer to a refill: the pool fills at the next"; else
	tap_not_ok "a garbled answer to a refill: the pool fills at the next" "pool_keys $(pool_keys "$SW")" "$(tail -n 5 "$SW.log")"; fi
expect_in "pool refill failed (0 keys left of 16)" "$(cat "$SW.log")" "... the garbled answer logged"
expect_eq "" "$(grep 'per request for 10 minutes' "$SW.log" || true)" "... and no limit learned from it"
expect_eq 16 "$(tail -n +$((mark + 1)) "$work/sim.log" | sed -n 's/.*enc_keys for SAE_B: number //p' | sort -u | tr '\n' ' ' | sed 's/ $//')" \
	"... asking for 16 keys each time"
kmstored_stop "$SW"

# A refill that fails backs off, doubling (1 s, 2 s, 4 s, ...), rather than
# asking its KME again at once: with the only KME down (nothing listens,
# each request refused at once), its enc_keys requests start at 0, 1, 3 and
# 7 s. Counted over 6.5 s after the first: 3, 4 at most. A load that
# delays kmstored only lowers the count; a pool that does not back off
# makes thousands, one that does not double 7.
gone_url="https://127.0.0.1:$(closed_port)"
conf "$work/west.conf" west "$gone_url" $'prefetch = 5\nprefetch-low = 3'
kmstored_start "$SW" "$work/west.conf"
refills() {
	"$KMSTORE" --daemon "$SW" metrics 2>/dev/null | awk -v k="kme=\"$gone_url\",op=\"enc_keys\"" \
		'index($0, "kmstore_kme_requests_total{") == 1 && index($0, k) { n += $NF } END { print n + 0 }'
}
first_ok=0
for i in $(seq 100); do [ "$(refills)" -ge 1 ] && { first_ok=1; break; }; sleep 0.1; done
t0=$(date +%s%N) seen=
while [ $((($(date +%s%N) - t0) / 1000000)) -lt 6500 ]; do
	sleep 0.5
	seen+=" $((($(date +%s%N) - t0) / 1000000))ms:$(refills)"
done
n=${seen##*:}
if [ "$first_ok" = 1 ] && [ "$n" -ge 2 ] && [ "$n" -le 4 ]; then
	tap_ok "the only KME down: the pool's refills back off, doubling ($n enc_keys requests in 6.5 s)"
else
	tap_not_ok "the only KME down: the pool's refills back off, doubling" "$n enc_keys requests in 6.5 s (want 2 to 4); after the first:$seen" \
		"$("$KMSTORE" --daemon "$SW" metrics | grep "^kmstore_kme_requests_total{profile=\"qkd\",kme=\"$gone_url\"")" "$(tail -n 3 "$SW.log")"
fi
kmstored_stop "$SW"
# A KME that fails is asked first again only after a back-off that doubles
# (1 s, 2 s, 4 s, ... 60 s): its third failure in a row (each past the last
# back-off) puts it 4 s away. status --json shows it (failures, retry_in_ms);
# a load that delays this script only makes the failures later, not fewer.
conf "$work/west.conf" west "$gone_url"
kmstored_start "$SW" "$work/west.conf"
"$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1 || true
sleep 1.2
"$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1 || true
sleep 2.2
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "the only KME down: unreachable (exit 8)"
run "$KMSTORE" --daemon "$SW" --json status qkd
health=$(json "$RUN_OUT" 'd["kmes"][0]["failures"], d["kmes"][0]["retry_in_ms"]' | tr -d '(),')
read -r fails retry_in <<<"$health"
if [ "$fails" = 3 ] && [ "$retry_in" -gt 2000 ] && [ "$retry_in" -le 4000 ]; then
	tap_ok "... three failures: the KME's back-off has doubled twice (retry in $retry_in ms)"
else
	tap_not_ok "... three failures: the KME's back-off has doubled twice" "failures, retry_in_ms: $health (want 3, 2001 to 4000)"
fi
kmstored_stop "$SW"

# --- outage policy and metrics -------------------------------------------------
sim
conf "$work/west.conf" west "$A1 $A2" $'prefetch = 4\nprefetch-low = 1\nprefetch-max-age = 600'
printf '\n[static]\ntype   = static\nkey-id = STATIC_1\nkey    = hex:%s\n' \
	"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >>"$work/west.conf"
port=$(closed_port)
run "$KMSTORED" --config "$work/west.conf" --socket "$work/x.sock" --metrics 192.0.2.1:9999
expect_rc 2 "--metrics on a non-loopback address: refused (2, an option: not restarted by its unit)"
expect_in "is not a loopback address" "$RUN_ERR" "... saying why"
# A start that fails after the configuration loaded leaves no pool thread
# to race exit's cleanup (under ASan a double free or a SEGV in 9 of 40
# such starts, before the pools started last).
codes=
for i in $(seq 10); do
	rc=0
	timeout -k 5 30 "$KMSTORED" --config "$work/west.conf" --socket "$work/x.sock" --foreground \
		--metrics 192.0.2.1:9999 >"$work/x.out" 2>&1 || rc=$?
	codes+=" $rc"
	[ $rc = 2 ] || break
done
if [ "$codes" = "$(printf ' 2%.0s' $(seq 10))" ]; then
	tap_ok "... ten times over, each exit 2, none a crash"
else
	tap_not_ok "... ten times over, each exit 2, none a crash" "exits:$codes" "$(tail -n 5 "$work/x.out")"
fi
kmstored_start "$SW" "$work/west.conf"
kmstored_stop "$SW"
conf "$work/east.conf" east "$B1"
"$KMSTORED" --config "$work/west.conf" --socket "$SW" --foreground --metrics "127.0.0.1:$port" >"$SW.log" 2>&1 &
echo $! >"$SW.pid"
wait_for 10 grep -q 'serving' "$SW.log"
wait_for 10 pool_is "$SW" 4
# The known sequence: 2 keys from the pool, 1 by its ID (made at east),
# 1 unknown ID, 1 client refused, 1 static key.
for i in 1 2; do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
"$KMSTORE" --daemon "$SW" key static >/dev/null
id=$("$KMSTORE" -c "$work/east.conf" --json key qkd | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
"$KMSTORE" --daemon "$SW" key qkd --key-id "$id" >/dev/null
"$KMSTORE" --daemon "$SW" key qkd --key-id 00000000-0000-0000-0000-000000000000 >/dev/null 2>&1 || true
setpriv --reuid=65534 --regid=65534 --clear-groups "$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1 || true
wait_for 5 metric_has "$SW" 'kmstore_keys_served_total{profile="qkd",kind="by_id",source="kme"} 1' || true
run curl -sS --max-time 5 "http://127.0.0.1:$port/metrics"
expect_rc 0 "curl scrapes http://127.0.0.1:$port/metrics"
m=$RUN_OUT
expect_in 'kmstore_keys_served_total{profile="qkd",kind="new",source="pool"} 2' "$m" "2 keys served from the pool"
expect_in 'kmstore_keys_served_total{profile="qkd",kind="by_id",source="kme"} 1' "$m" "1 key served by its ID"
expect_in 'kmstore_keys_served_total{profile="static",kind="new",source="static"} 1' "$m" "1 static key, its source static (no KME's)"
expect_in 'kmstore_requests_failed_total{profile="qkd",cause="not-found"} 1' "$m" "1 failure: an unknown key ID (not-found)"
expect_in 'kmstore_clients_refused_total 1' "$m" "1 client refused"
expect_match 'kmstore_pool_keys\{profile="qkd"\} [0-9]' "$m" "the pool level"
expect_in 'kmstore_pool_target{profile="qkd"} 4' "$m" "the pool's target"
expect_match "kmstore_kme_requests_total\\{profile=\"qkd\",kme=\"$A1\",op=\"enc_keys\",outcome=\"ok\"\\} [1-9]" "$m" "the KME's enc_keys requests, by outcome"
expect_match "kmstore_kme_request_duration_seconds_count\\{profile=\"qkd\",kme=\"$A1\",op=\"enc_keys\"\\} [1-9]" "$m" "their latency histogram"
expect_match "kmstore_kme_up\\{profile=\"qkd\",kme=\"$A2\"\\} 1" "$m" "each KME's health"
if wait_for 35 sh -c "curl -sS http://127.0.0.1:$port/metrics | grep -q 'kmstore_kme_stored_key_count{profile=\"qkd\",kme_id=\"KME_A\"}'"; then
	tap_ok "the KME's own stored_key_count, from its status"
else
	tap_not_ok "the KME's own stored_key_count, from its status"
fi
run python3 "$here/check_exposition.py" <<<"$(curl -sS "http://127.0.0.1:$port/metrics")"
expect_rc 0 "the exposition is well formed (HELP and TYPE, names, labels, histograms)"
[ "$RUN_RC" -eq 0 ] || echo "$RUN_OUT$RUN_ERR" | head -n 5 | sed 's/^/#   /'
run "$KMSTORE" --daemon "$SW" metrics
expect_rc 0 "kmstore metrics"
expect_in 'kmstore_keys_served_total{profile="qkd",kind="new",source="pool"} 2' "$RUN_OUT" "... the same counters"
run setpriv --reuid=65534 --regid=65534 --clear-groups "$KMSTORE" --daemon "$SW" metrics
expect_rc 4 "kmstore metrics as nobody: refused"
run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other"
expect_eq 404 "$RUN_OUT" "anything but /metrics: 404"
# Outage: every KME down (kme-sim gone); a status marks them down.
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=
run "$KMSTORE" --daemon "$SW" status qkd
expect_rc 8 "every KME down: status fails (exit 8)"
expect_match $'(^|\n)state +failed\n' "$RUN_OUT" "... yet says what there is to know: the state"
expect_match $'(^|\n)pool_keys +[1-9][0-9]*\npool_target +[0-9]+' "$RUN_OUT" "... the pool's level"
expect_match $'(^|\n)kme +https://[^ ]+ down' "$RUN_OUT" "... and each KME's health"
expect_in "cannot connect" "$RUN_ERR" "... then the error"
run "$KMSTORE" --daemon "$SW" --json status qkd
expect_eq "failed down unreachable" \
	"$(json "$RUN_OUT" 'd["state"], d["kmes"][0]["state"], d["error"]["code"]' | tr -d "(),'")" \
	"... status --json: the state, each KME and the error together"
left=$(pool_keys "$SW")
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "every KME down, outage = drain: a key from the pool"
expect_in "every KME is down: key" "$(cat "$SW.log")" "... logged as the pool drains"
drained=0
while "$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1; do drained=$((drained + 1)); [ $drained -lt 10 ] || break; done
expect_eq "$((left - 1))" "$drained" "... until the pool is empty ($left keys)"
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "then: unreachable (exit 8)"
expect_match "kmstore_pool_served_in_outage_total\\{profile=\"qkd\"\\} $left" "$(curl -sS "http://127.0.0.1:$port/metrics")" "the outage metric counts the $left keys"
kmstored_stop "$SW"
sim
conf "$work/west.conf" west "$A1" $'prefetch = 3\noutage = fail'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 3 || true
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=
"$KMSTORE" --daemon "$SW" status qkd >/dev/null 2>&1 || true
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "every KME down, outage = fail: refused at once"
expect_in "every KME is down and its outage policy is 'fail': no key (3 prefetched keys kept unused)" "$RUN_ERR" "... saying so"
sleep 1.5
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "... and still past the KME's first back-off (1 s): it is still down"
kmstored_stop "$SW"
# The outage ends when a KME answers: dropping a dec_keys marks it down;
# as its back-off ends the pool asks its status, which it answers.
sim --fault drop,path=dec_keys
conf "$work/west.conf" west "$A1" $'prefetch = 3\noutage = fail'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 3 || true
"$KMSTORE" --daemon "$SW" key qkd --key-id 00000000-0000-4000-8000-000000000001 >/dev/null 2>&1 || true
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 8 "a KME down (a dec_keys dropped), outage = fail: refused"
expect_logged 10 "... its status asked as its back-off ends: the outage is over (logged)" 'a KME answers again (its status): the outage is over'
run "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "... and the pool serves again"
kmstored_stop "$SW"
# Stopped while that status is asked (answered 1.5 s late): the pool's
# thread ends when it is answered, not at its next wake (its keys' age).
sim -v --fault drop,path=dec_keys --fault latency=1500,path=status
conf "$work/west.conf" west "$A1" $'prefetch = 3\noutage = fail'
kmstored_start "$SW" "$work/west.conf"
wait_for 10 pool_is "$SW" 3 || true
"$KMSTORE" --daemon "$SW" key qkd --key-id 00000000-0000-4000-8000-000000000001 >/dev/null 2>&1 || true
"$KMSTORE" --daemon "$SW" key qkd >/dev/null 2>&1 || true
mark=$(wc -l <"$work/sim.log")
wait_for 10 sh -c "tail -n +$((mark + 1)) '$work/sim.log' | grep -q 'status: answering in 1500 ms (latency)'" || true
t0=$(date +%s%N)
kmstored_stop "$SW"
took=$((($(date +%s%N) - t0) / 1000000))
if [ "$took" -lt 8000 ] && ! grep -q 'still in a KME request' "$SW.log"; then
	tap_ok "stopped while the outage's status is asked: in $took ms"
else
	tap_not_ok "stopped while the outage's status is asked" "$took ms; $(tail -n 2 "$SW.log")"
fi
# A metrics socket.
sim
conf "$work/west.conf" west "$A1"
"$KMSTORED" --config "$work/west.conf" --socket "$SW" --foreground --metrics "$work/metrics.sock" >"$SW.log" 2>&1 &
echo $! >"$SW.pid"
wait_for 10 grep -q 'serving' "$SW.log"
run curl -sS --max-time 5 --unix-socket "$work/metrics.sock" http://kmstored/metrics
expect_in "kmstore_profiles 1" "$RUN_OUT" "metrics over a UNIX socket (curl --unix-socket)"
kmstored_stop "$SW"
expect_eq "" "$(ls "$work/metrics.sock" 2>/dev/null)" "... removed when kmstored stops"
# Metrics past 512 KiB: served whole up to kmstored's limit (1 MiB less a
# reply's header), not refused at half of it; past the limit, the answer
# says so, not "out of memory". Profiles of 8 KMEs where nothing listens,
# each asked its status by the poller (timeout 0.5 s): some 19 KB of
# series each, 40 of them over 512 KiB, 80 over 1 MiB.
urls=$(python3 -c '
import socket
held = [socket.socket() for _ in range(8)]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join("https://127.0.0.1:%d" % s.getsockname()[1] for s in held))')
many() { # N: a configuration of N such profiles
	local i
	for i in $(seq -w 1 "$1"); do
		conf "$work/one.conf" west "$urls" 'timeout = 0.5'
		sed "s/^\[qkd\]$/[many-$i]/; /^timeout .*= 2$/d" "$work/one.conf"
		echo
	done >"$work/many.conf"
	chmod 600 "$work/many.conf"
}
many 40
"$KMSTORED" --config "$work/many.conf" --socket "$SW" --foreground --metrics "127.0.0.1:$port" >"$SW.log" 2>&1 &
echo $! >"$SW.pid"
wait_for 10 grep -q 'serving' "$SW.log" || true
polled() { "$KMSTORE" --daemon "$SW" metrics 2>/dev/null | grep -qF "kmstore_kme_request_duration_seconds_count{profile=\"many-$1\""; }
wait_for 60 polled 40 || true
run curl -sS --max-time 5 -o "$work/big.prom" -w '%{http_code}' "http://127.0.0.1:$port/metrics"
size=$(wc -c <"$work/big.prom")
if [ "$RUN_OUT" = 200 ] && [ "$size" -gt 524288 ]; then
	tap_ok "40 profiles of 8 KMEs: a scrape of $size bytes (over 512 KiB) served"
else
	tap_not_ok "40 profiles of 8 KMEs: a scrape of over 512 KiB served" "HTTP $RUN_OUT, $size bytes: $(head -c 200 "$work/big.prom")"
fi
run python3 "$here/check_exposition.py" <"$work/big.prom"
expect_rc 0 "... a well-formed exposition"
run "$KMSTORE" --daemon "$SW" metrics
expect_rc 0 "... and kmstore metrics gives it too"
many 80
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "a reload to 80 such profiles"
scrape_code_is() { [ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")" = "$1" ]; }
wait_for 60 scrape_code_is 500 || true
run curl -sS --max-time 5 -o "$work/big.prom" -w '%{http_code}' "http://127.0.0.1:$port/metrics"
expect_eq "500 kmstored: the metrics exceed 1048512 bytes, the most it serves (fewer profiles or KMEs would fit)" \
	"$RUN_OUT $(head -c 300 "$work/big.prom" | tr -d '\n')" "... over 1 MiB: HTTP 500, saying so (not 'out of memory')"
run "$KMSTORE" --daemon "$SW" metrics
expect_rc 10 "... kmstore metrics fails (10)"
expect_in "kmstored: the metrics exceed 1048512 bytes" "$RUN_ERR" "... saying so"
expect_eq 1 "$(grep -c 'the metrics exceed 1048512 bytes, the most kmstored serves: every scrape fails' "$SW.log" || true)" \
	"... and kmstored logs it, once for both"
kmstored_stop "$SW"
# SIGTERM while the status poller (every QKD profile's, with --metrics)
# waits on a KME that takes requests and never answers, 6 profiles of
# timeout 5 s: kmstored stops once the status in flight times out, not
# after the whole pass (some 28 s, its socket long gone).
sim --fault blackhole
for i in 1 2 3 4 5 6; do
	conf "$work/one.conf" west "$A1"
	sed "s/^\[qkd\]$/[slow-$i]/; s/^timeout .*/timeout      = 5/" "$work/one.conf"
	echo
done >"$work/slow.conf"
chmod 600 "$work/slow.conf"
"$KMSTORED" --config "$work/slow.conf" --socket "$SW" --foreground --metrics "127.0.0.1:$port" >"$SW.log" 2>&1 &
pid=$!
wait_for 10 grep -q 'serving' "$SW.log" || true
sleep 2
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
took=$((($(date +%s%N) - t0) / 1000000))
# (5 s at most, the status in flight; 10 with room for a loaded machine)
if [ "$rc" -eq 0 ] && [ "$took" -lt 10000 ]; then
	tap_ok "SIGTERM while the status poller waits on a silent KME (6 profiles, 5 s each): stopped in $took ms"
else
	tap_not_ok "SIGTERM while the status poller waits on a silent KME: stopped within a request's timeout" \
		"exit $rc after $took ms" "$(tail -n 3 "$SW.log")"
fi
expect_not_in "still in" "$(cat "$SW.log")" "... having waited for the poller, not left it running"
# Stopping while the pool's refill waits on a black-holed KME (up to the
# 2 s timeout): the metrics go first, before the configuration a scrape
# reads, so a scrape then finds none instead of crashing kmstored.
sim --fault blackhole,path=enc_keys
conf "$work/west.conf" west "$A1" 'prefetch = 5'
"$KMSTORED" --config "$work/west.conf" --socket "$SW" --foreground --metrics "127.0.0.1:$port" >"$SW.log" 2>&1 &
pid=$!
wait_for 10 grep -q 'serving' "$SW.log"
sleep 0.3
kill -TERM "$pid"
wait_for 2 grep -q stopping "$SW.log" || true
for i in 1 2 3 4 5; do curl -sS --max-time 1 "http://127.0.0.1:$port/metrics" >/dev/null 2>&1 || true; sleep 0.1; done
rc=0
wait "$pid" || rc=$?
expect_eq 0 "$rc" "stopped while a refill waits on its KME, scraped meanwhile: exit 0"

# --- gauges of KMEs that stop answering and of profiles that go ------------------
# kmstore_kme_stored_key_count is what the last status poll got (at start,
# every 30 s, at once after a reload): the KME's count after a known
# sequence; no line for a profile a reload removed, nor for a KME that no
# longer answers: a missing series, never a stale count. The pool's and
# the KMEs' gauges of a removed profile go too. A link of 100 keys, never
# refilled, shared by profiles qkd (no pool) and gone (a pool of 2).
sim --pool-size 100 --key-rate 0
conf "$work/west.conf" west "$A1"
gone=$(sed 's/^\[qkd\]$/[gone]/' "$work/west.conf")
printf '\n%s\nprefetch = 2\n' "$gone" >>"$work/west.conf"
"$KMSTORED" --config "$work/west.conf" --socket "$SW" --foreground --metrics "127.0.0.1:$port" >"$SW.log" 2>&1 &
echo $! >"$SW.pid"
wait_for 10 grep -q 'serving' "$SW.log" || true
# scrape: the metrics over HTTP, or a failure (never an empty answer that
# would pass for a missing line).
scrape() {
	local m
	m=$(curl -sS --max-time 5 "http://127.0.0.1:$port/metrics") || return 1
	[[ "$m" == *kmstore_profiles* ]] || return 1
	printf '%s\n' "$m"
}
shows() { local m; m=$(scrape) && [[ "$m" == *"$1"* ]]; }
lacks() { local m; m=$(scrape) && [[ "$m" != *"$1"* ]]; }
stored() { echo "kmstore_kme_stored_key_count{profile=\"$1\",kme_id=\"KME_A\"}"; }
# expect_shown SECONDS TEXT WHAT, expect_gone SECONDS TEXT WHAT: within
# SECONDS, a scrape has (has no) line holding TEXT.
expect_shown() {
	if wait_for "$1" shows "$2"; then tap_ok "$3"; else
		tap_not_ok "$3" "no line holding: $2" "$(scrape | grep '^kmstore_kme_stored\|^kmstore_kme_up\|^kmstore_pool_keys' || true)"; fi
}
expect_gone() {
	if wait_for "$1" lacks "$2"; then tap_ok "$3"; else
		tap_not_ok "$3" "still: $(scrape | grep -F "$2" || true)"; fi
}
wait_for 10 shows 'kmstore_pool_keys{profile="gone"} 2' || true
for i in 1 2 3; do "$KMSTORE" --daemon "$SW" key qkd >/dev/null; done
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "a KME of 100 keys, 2 taken by a pool and 3 by clients; reload"
expect_shown 10 "$(stored qkd) 95" "kmstore_kme_stored_key_count: the KME's count (95), polled at the reload"
expect_shown 1 "$(stored gone) 95" "... for each profile on its link"
conf "$work/west.conf" west "$A1"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload without profile gone"
expect_gone 10 "$(stored gone)" "... its kmstore_kme_stored_key_count goes"
expect_gone 1 'kmstore_pool_keys{profile="gone"}' "... its kmstore_pool_keys too"
expect_gone 1 'kmstore_pool_target{profile="gone"}' "... its kmstore_pool_target too"
expect_gone 1 'kmstore_kme_up{profile="gone"' "... its kmstore_kme_up too"
expect_shown 1 "$(stored qkd) 95" "... profile qkd's stays"
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=
kill -HUP "$(kmstored_pid "$SW")"
# The reload's poll finds the KME gone (bounded past the 30 s poll: the
# count must go whichever poll sees it first).
expect_gone 35 "$(stored qkd)" "the KME killed, a poll (SIGHUP's): its kmstore_kme_stored_key_count goes"
expect_shown 1 "kmstore_kme_up{profile=\"qkd\",kme=\"$A1\"} 0" "... and kmstore_kme_up says 0"
run python3 "$here/check_exposition.py" <<<"$(scrape)"
expect_rc 0 "... a well-formed exposition"
kmstored_stop "$SW"
tap_done
