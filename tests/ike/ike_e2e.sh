#!/usr/bin/env bash
# ike_e2e.sh - two patched plutos (ppk-uri=) in two network namespaces,
# PPKs from the kmstore PKCS#11 module, QKD keys from kme-sim. IKE SAs only
# (this kernel has no ESP): the initiator omits the Child SA
# (--impair omit_v2_ike_auth_child). Every case asserts on pluto's logs.
#
#   ike_e2e.sh PATCHED_PREFIX STOCK_PREFIX MODULE KME_SIM KME_SIM_PKI [CASE...]
#
# PATCHED_PREFIX, STOCK_PREFIX: install prefixes of libreswan-patches/build.sh
# (patched, and --stock). MODULE: kmstore-pkcs11.so. CASEs: the case names
# below (default: all). Exit 77 (skip) when not root or when network
# namespaces cannot be made.
#
# The lab, all on 192.0.2.0/24 (RFC 5737), in three namespaces that are
# unique to this run (parallel runs are safe):
#
#   west  192.0.2.1 ---veth--- [bridge in "lab": 192.0.2.254] ---veth--- 192.0.2.2  east
#                                        |
#                         kme-sim: KME_A 192.0.2.254:8443 (west's SAE_A)
#                                  KME_B 192.0.2.254:8444 (east's SAE_B)
#
# One kme-sim process serves both KMEs, so that they share the simulated
# QKD link; each pluto reaches its own KME over the lab network. The lab
# namespace stands for "the network": west and east reach each other
# through its bridge.
set -uo pipefail

if [ $# -lt 5 ]; then
	sed -n '2,12p' "$0" >&2
	exit 2
fi
PATCHED=$1 STOCK=$2 MODULE=$3 KME_SIM=$4 KME_SIM_PKI=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/tap.sh
. "$here/../lib/tap.sh"
# shellcheck source=../lib/kme-env.sh
. "$here/../lib/kme-env.sh"
# pluto's logs are long: show their end only when a check fails
expect_in() {
	if [[ "$2" == *"$1"* ]]; then tap_ok "$3"; else
		tap_not_ok "$3" "expected to find: $1" "in (last lines):" "$(printf '%s\n' "$2" | grep -v '^.\{17\}: |' | tail -n 25)"
	fi
}
expect_not_in() {
	if [[ "$2" != *"$1"* ]]; then tap_ok "$3"; else
		tap_not_ok "$3" "did not expect: $1" "in: $(printf '%s\n' "$2" | grep -F -- "$1" | head -n 5)"
	fi
}

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "no ip command (iproute2)"
for t in modutil certutil; do
	command -v $t >/dev/null || skip "no $t (Debian: libnss3-tools)"
done
for p in "$PATCHED" "$STOCK"; do
	[ -x "$p/libexec/ipsec/pluto" ] || { echo "no pluto in $p (run libreswan-patches/build.sh)" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "no $MODULE" >&2; exit 1; }

id=$(printf '%05d' $(($$ % 100000)))
NS_W=kmsw$id NS_E=kmse$id NS_L=kmsl$id
T=$(mktemp -d "${TMPDIR:-/tmp}/ike-e2e.XXXXXX")
PLUTO_PIDS=()

cleanup() {
	set +e	# whatever fails here, the rest must still be cleaned up
	local p
	for p in "${PLUTO_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	kme_env_stop
	for n in "$NS_W" "$NS_E" "$NS_L"; do ip netns del "$n" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ] || [ "$TAP_FAIL" -gt 0 ]; then
		echo "# logs kept in $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'echo "# interrupted" >&2; exit 1' INT TERM

# --- the lab network -----------------------------------------------------

lab_up() {
	ip netns add "$NS_L" && ip netns add "$NS_W" && ip netns add "$NS_E" || return 1
	ip -n "$NS_L" link set lo up
	ip -n "$NS_L" link add br0 type bridge || return 1
	ip -n "$NS_L" addr add 192.0.2.254/24 dev br0
	ip -n "$NS_L" link set br0 up
	local side ns addr
	for side in w e; do
		if [ $side = w ]; then ns=$NS_W addr=192.0.2.1; else ns=$NS_E addr=192.0.2.2; fi
		ip link add "k${side}a$id" type veth peer name "k${side}b$id" || return 1
		ip link set "k${side}a$id" netns "$ns" || return 1
		ip link set "k${side}b$id" netns "$NS_L" || return 1
		ip -n "$ns" link set "k${side}a$id" name eth1
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add $addr/24 dev eth1
		ip -n "$ns" link set eth1 up
		ip -n "$NS_L" link set "k${side}b$id" master br0
		ip -n "$NS_L" link set "k${side}b$id" up
	done
}

lab_up 2>"$T/lab.err" || skip "cannot make network namespaces: $(head -n 1 "$T/lab.err")"
for i in $(seq 30); do
	ip netns exec "$NS_W" ping -c1 -W1 192.0.2.2 >/dev/null 2>&1 && break
	sleep 0.2
done

# --- the KMEs --------------------------------------------------------------

kmes_start() { # [kme-sim options...]
	KME_DIR=$T/kme
	mkdir -p "$KME_DIR"
	if [ ! -f "$KME_DIR/pki/ca.crt" ]; then
		"$KME_SIM_PKI" "$KME_DIR/pki" --ip 192.0.2.254 >"$KME_DIR/pki.log" 2>&1 || {
			cat "$KME_DIR/pki.log" >&2
			return 1
		}
		head -c 32 /dev/urandom >"$KME_DIR/static.key"
		chmod 600 "$KME_DIR/static.key"
	fi
	rm -f "$KME_DIR/ready"
	ip netns exec "$NS_L" "$KME_SIM" --ca "$KME_DIR/pki/ca.crt" \
		--kme "id=KME_A,listen=192.0.2.254:8443,cert=$KME_DIR/pki/kme-a.crt,key=$KME_DIR/pki/kme-a.key,sae=SAE_A" \
		--kme "id=KME_B,listen=192.0.2.254:8444,cert=$KME_DIR/pki/kme-b.crt,key=$KME_DIR/pki/kme-b.key,sae=SAE_B" \
		--ready-file "$KME_DIR/ready" "$@" >>"$KME_DIR/kme-sim.out" 2>>"$KME_DIR/kme-sim.log" &
	KME_PID=$!
	for i in $(seq 100); do
		[ -s "$KME_DIR/ready" ] && break
		kill -0 "$KME_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$KME_DIR/ready" ] || { cat "$KME_DIR/kme-sim.log" >&2; return 1; }
	KME_A_URL=https://192.0.2.254:8443 KME_B_URL=https://192.0.2.254:8444
	kme_env_write_conf "$KME_DIR/west.conf" "$KME_A_URL" SAE_A SAE_B \
		"$KME_DIR/pki/sae-a.crt" "$KME_DIR/pki/sae-a.key"
	kme_env_write_conf "$KME_DIR/east.conf" "$KME_B_URL" SAE_B SAE_A \
		"$KME_DIR/pki/sae-b.crt" "$KME_DIR/pki/sae-b.key"
}

kmes_start || { echo "kme-sim did not start" >&2; exit 1; }

# --- the plutos ------------------------------------------------------------

# side_setup SIDE PREFIX KMSTORE_CONF CONN_OPTIONS SECRETS_EXTRA
# Writes T/SIDE/{ipsec.conf,ipsec.secrets,nss,run}; KMSTORE_CONF empty: no
# module in the NSS database.
side_setup() {
	local side=$1 prefix=$2 conf=$3 opts=$4 extra=$5 d=$T/$1 me peer
	if [ "$side" = west ]; then me=192.0.2.1 peer=192.0.2.2; else me=192.0.2.2 peer=192.0.2.1; fi
	rm -rf "$d"
	mkdir -p "$d/nss" "$d/run"
	certutil -N -d "sql:$d/nss" --empty-password || return 1
	if [ -n "$conf" ]; then
		modutil -dbdir "sql:$d/nss" -add kmstore -libfile "$MODULE" \
			-string "config=$conf log=stderr log-level=info" -force >/dev/null || return 1
	fi
	cat >"$d/ipsec.conf" <<EOF
config setup
	plutodebug=none

conn west-east
	left=$me
	leftid=@$side
	right=$peer
	rightid=@$([ "$side" = west ] && echo east || echo west)
	authby=secret
	ikev2=yes
	retransmit-timeout=10s
$(printf '%s\n' "$opts" | sed 's/^/\t/')
EOF
	{
		echo "@west @east : PSK \"kmstore e2e pre-shared key, not the PPK\""
		[ -z "$extra" ] || echo "$extra"
	} >"$d/ipsec.secrets"
	chmod 600 "$d/ipsec.secrets"
	echo "$prefix" >"$d/prefix"
}

# side_start SIDE: pluto in the side's namespace, then the connection.
side_start() {
	local side=$1 d=$T/$1 ns prefix
	prefix=$(cat "$d/prefix")
	if [ "$side" = west ]; then ns=$NS_W; else ns=$NS_E; fi
	ip netns exec "$ns" "$prefix/libexec/ipsec/pluto" --nofork \
		--config "$d/ipsec.conf" --rundir "$d/run" \
		--secretsfile "$d/ipsec.secrets" --nssdir "$d/nss" \
		--logfile "$d/pluto.log" --log-no-append \
		>"$d/pluto.out" 2>"$d/pluto.err" &
	PLUTO_PIDS+=($!)
	echo $! >"$d/pid"
	for i in $(seq 100); do
		[ -S "$d/run/pluto.ctl" ] && break
		sleep 0.05
	done
	[ -S "$d/run/pluto.ctl" ] || { echo "pluto ($side) did not start:" >&2; cat "$d/pluto.err" "$d/pluto.log" >&2; return 1; }
	ip netns exec "$ns" "$prefix/libexec/ipsec/addconn" --ctlsocket "$d/run/pluto.ctl" \
		--config "$d/ipsec.conf" west-east >"$d/addconn.out" 2>&1 ||
		{ echo "addconn ($side) failed:" >&2; cat "$d/addconn.out" >&2; return 1; }
}

whack() { # SIDE ARGS...
	local side=$1 d=$T/$1
	shift
	timeout 30 "$(cat "$d/prefix")/libexec/ipsec/whack" --rundir "$d/run" "$@"
}

sides_stop() {
	local side pid
	for side in west east; do
		[ -f "$T/$side/pid" ] || continue
		pid=$(cat "$T/$side/pid")
		whack $side --shutdown >/dev/null 2>&1 &
		for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rm -f "$T/$side/pid"
	done
}

# initiate: west starts an IKE SA without a Child SA; no revival, so a
# failure stays a failure. Sets INIT_RC and INIT_SECS.
initiate() {
	whack west --impair omit_v2_ike_auth_child >/dev/null
	whack west --impair revival >/dev/null
	local t0 t1
	t0=$(date +%s.%N)
	whack west --initiate --name west-east >"$T/west/initiate.out" 2>&1
	INIT_RC=$?
	t1=$(date +%s.%N)
	INIT_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	sleep 0.3	# let the responder log its side
}

log() { cat "$T/$1/pluto.log" "$T/$1/pluto.err" 2>/dev/null; }

# the PPK_IDs a side used, one a line
ppk_ids_used() { log "$1" | sed -n 's/.*ppk-uri=[^ ]*: using\( received\)\{0,1\} PPK_ID \([^ ]*\).*/\2/p'; }

# case_begin NAME: announces a case, prints whether it is to run
CASES=("$@")
case_wanted() {
	[ ${#CASES[@]} -eq 0 ] && return 0
	local c
	for c in "${CASES[@]}"; do [ "$c" = "$1" ] && return 0; done
	return 1
}

established() { # SIDE WHAT
	expect_in "established IKE SA" "$(log "$1")" "$2"
}

# --- cases -----------------------------------------------------------------

W_CONF=$KME_DIR/west.conf E_CONF=$KME_DIR/east.conf

case_static() {
	echo "# static profile, ppk=insist on both sides"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_start west && side_start east || return
	run whack west --connectionstatus
	expect_in "ppk-uri: pkcs11:token=static;" "$RUN_OUT" "static: connectionstatus shows ppk-uri"
	initiate
	expect_rc_init 0 "static: west initiates"
	established west "static: IKE SA established (west)"
	established east "static: IKE SA established (east)"
	expect_in "PPK AUTH calculated as initiator" "$(log west)" "static: west used the PPK"
	expect_in "PPK AUTH calculated as responder" "$(log east)" "static: east used the PPK"
	expect_in "ppk-uri=pkcs11:token=static: using PPK_ID STATIC_PPK_1 (256-bit PPK)" "$(log west)" "static: west logs the key ID"
	expect_in "ppk-uri=pkcs11:token=static: using received PPK_ID STATIC_PPK_1" "$(log east)" "static: east logs the key ID"
	sides_stop
}

expect_rc_init() { # CODE WHAT
	if [ "$INIT_RC" -eq "$1" ]; then tap_ok "$2"; else
		tap_not_ok "$2" "whack --initiate exited $INIT_RC, expected $1" "$(cat "$T/west/initiate.out")"
	fi
}

case_qkd() {
	echo "# QKD profile: enc_keys at west's KME, dec_keys at east's"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_rc_init 0 "qkd: west initiates"
	established east "qkd: IKE SA established"
	expect_in "PPK AUTH calculated as initiator" "$(log west)" "qkd: west used the PPK"
	expect_in "PPK AUTH calculated as responder" "$(log east)" "qkd: east used the PPK"
	local wid eid
	wid=$(ppk_ids_used west) eid=$(ppk_ids_used east)
	if [ -n "$wid" ] && [ "$wid" = "$eid" ] && [ "$wid" != STATIC_PPK_1 ]; then
		tap_ok "qkd: both sides used the KME's key ID $wid"
	else
		tap_not_ok "qkd: both sides used the KME's key ID" "west: $wid" "east: $eid"
	fi
	echo "# two successive IKE SAs take two QKD keys"
	whack west --deletestate 1 >/dev/null 2>&1 || whack west --terminate --name west-east >/dev/null 2>&1
	sleep 0.5
	initiate
	expect_rc_init 0 "qkd: second IKE SA"
	local ids
	ids=$(ppk_ids_used west | sort -u | wc -l)
	if [ "$ids" -eq 2 ] && [ "$(ppk_ids_used east | sort -u)" = "$(ppk_ids_used west | sort -u)" ]; then
		tap_ok "qkd: two IKE SAs, two different key IDs, the same on both sides"
	else
		tap_not_ok "qkd: two IKE SAs, two different key IDs" "west: $(ppk_ids_used west | tr '\n' ' ')" "east: $(ppk_ids_used east | tr '\n' ' ')"
	fi
	sides_stop
}

case_mismatch() {
	echo "# key mismatch: same key ID, different keys"
	local other=$T/other.conf
	head -c 32 /dev/urandom >"$T/other.key"
	chmod 600 "$T/other.key"
	sed "s|file:.*static.key|file:$T/other.key|" "$E_CONF" >"$other"
	chmod 600 "$other"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_setup east "$PATCHED" "$other" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_start west && side_start east || return
	initiate
	expect_not_in "established IKE SA" "$(log west)$(log east)" "mismatch: no IKE SA"
	expect_in "AUTHENTICATION_FAILED" "$(log west)" "mismatch: west gets AUTHENTICATION_FAILED"
	sides_stop
}

case_unknown_id() {
	echo "# unknown key ID: west sends a static ID, east's QKD KME has no such key"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_not_in "established IKE SA" "$(log west)$(log east)" "unknown id: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID STATIC_PPK_1" "$(log east)" "unknown id: east logs URI, key ID and reason"
	expect_in "AUTHENTICATION_FAILED" "$(log west)" "unknown id: west gets AUTHENTICATION_FAILED"
	sides_stop
}

case_kme_down() {
	echo "# KME down: insist fails at once, propose goes on without PPK"
	kme_env_stop
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_not_in "established IKE SA" "$(log west)" "kme down, insist: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA" "$(log west)" "kme down, insist: west logs the URI and reason"
	expect_in "connection requires PPK" "$(log west)" "kme down, insist: west fails (ppk=insist)"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 5) }' && tap_ok "kme down, insist: failed in ${INIT_SECS}s" ||
		tap_not_ok "kme down, insist: fails fast" "took ${INIT_SECS}s"
	sides_stop
	side_setup west "$PATCHED" "$W_CONF" $'ppk=propose\nppk-uri=pkcs11:token=qkd' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=propose\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_rc_init 0 "kme down, propose: west initiates"
	established east "kme down, propose: IKE SA established without PPK"
	expect_in "continuing without PPK" "$(log west)" "kme down, propose: west goes on without PPK"
	expect_not_in "PPK AUTH calculated" "$(log west)$(log east)" "kme down, propose: no PPK used"
	sides_stop
	kmes_start || tap_not_ok "kme-sim restarts"
}

case_kme_silent() {
	echo "# KME silent (accepts, never answers): the fetch ends at the profile's timeout (3 s)"
	kme_env_stop
	kmes_start --fault blackhole,kme=KME_A || { tap_not_ok "kme-sim with a fault starts"; return; }
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_not_in "established IKE SA" "$(log west)" "kme silent, insist: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA" "$(log west)" "kme silent: west logs the URI and reason"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 8) }' && tap_ok "kme silent: failed in ${INIT_SECS}s (timeout 3 s)" ||
		tap_not_ok "kme silent: bounded by the timeout" "took ${INIT_SECS}s"
	sides_stop
	kme_env_stop
	kmes_start || tap_not_ok "kme-sim restarts"
}

case_intermediate() {
	echo "# intermediate=yes with QKD"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd' ''
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd' ''
	side_start west && side_start east || return
	initiate
	expect_rc_init 0 "intermediate: west initiates"
	established east "intermediate: IKE SA established"
	expect_in "PPK used in IKE_INTERMEDIATE as initiator" "$(log west)" "intermediate: west used the PPK"
	expect_in "PPK used in IKE_INTERMEDIATE as responder" "$(log east)" "intermediate: east used the PPK"
	local wid eid
	wid=$(ppk_ids_used west) eid=$(ppk_ids_used east)
	[ -n "$wid" ] && [ "$wid" = "$eid" ] && tap_ok "intermediate: one QKD key ID on both sides ($wid)" ||
		tap_not_ok "intermediate: one QKD key ID on both sides" "west: $wid" "east: $eid"
	sides_stop
}

static_ppks() { # the PPKS line for ipsec.secrets of a stock pluto
	echo "@west @east : PPKS \"STATIC_PPK_1\" 0x$(od -An -tx1 -v "$KME_DIR/static.key" | tr -d ' \n')"
}

case_interop() {
	echo "# patched initiator (ppk-uri, static) vs stock 5.2 responder (PPKS)"
	side_setup west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_setup east "$STOCK" '' 'ppk=insist' "$(static_ppks)"
	side_start west && side_start east || return
	initiate
	expect_rc_init 0 "interop: patched west initiates"
	established east "interop: stock east establishes the IKE SA"
	expect_in "PPK AUTH calculated as responder" "$(log east)" "interop: stock east used the PPK"
	sides_stop
	echo "# stock 5.2 initiator (PPKS) vs patched responder (ppk-uri, static)"
	side_setup west "$STOCK" '' 'ppk=insist' "$(static_ppks)"
	side_setup east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	side_start west && side_start east || return
	initiate
	expect_rc_init 0 "interop: stock west initiates"
	established east "interop: patched east establishes the IKE SA"
	expect_in "PPK AUTH calculated as initiator" "$(log west)" "interop: stock west used the PPK"
	expect_in "using received PPK_ID STATIC_PPK_1" "$(log east)" "interop: patched east took the key from its token"
	sides_stop
}

case_checkconfig() {
	echo "# addconn --checkconfig checks ppk-uri="
	local d=$T/check
	mkdir -p "$d"
	printf 'conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:token=static\n' >"$d/good.conf"
	printf 'conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:id=%%zz\n' >"$d/bad.conf"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/good.conf"
	expect_rc 0 "checkconfig: a good ppk-uri passes"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/bad.conf"
	expect_rc 3 "checkconfig: a bad ppk-uri is refused"
	expect_in "ppk-uri=pkcs11:id=%zz invalid" "$RUN_OUT$RUN_ERR" "checkconfig: the error names the URI"
}

ALL=(checkconfig static qkd mismatch unknown_id intermediate interop kme_down kme_silent)
started=$SECONDS
for c in "${ALL[@]}"; do
	case_wanted "$c" || continue
	t0=$SECONDS
	"case_$c"
	sides_stop
	echo "# case $c: $((SECONDS - t0)) s"
done
echo "# all cases: $((SECONDS - started)) s"
tap_done
