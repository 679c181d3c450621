# ike-lab.sh - two libreswan plutos, west and east, in network namespaces,
# each with an NSS database holding the kmstore PKCS#11 module and its own
# KME (kme-sim). Used by tests/ike/ike_e2e.sh, bench/ike and scripts/demo.sh.
# Bash, also under set -e; source it, then:
#
#   ike_lab_init MODULE KME_SIM KME_SIM_PKI [DIR]
#                      settings (kmstore-pkcs11.so, kme-sim, kme-sim-pki);
#                      DIR: the lab's files [a new mktemp directory]
#   ike_lab_up         the network: 1 with the reason on stderr when
#                      namespaces cannot be made (not root, no netns)
#   ike_lab_kmes_start [kme-sim options...]
#                      kme-sim in the lab namespace: KME_A (west's) and KME_B
#                      (east's) sharing one simulated QKD link, and the
#                      sites' kmstore.conf: $IKE_LAB_DIR/kme/{west,east}.conf,
#                      profiles "qkd" (timeout $KME_TIMEOUT, default 3 s) and
#                      "static" (STATIC_PPK_1, in $IKE_LAB_DIR/kme/static.key);
#                      KME_A_CERT as in kme-env.sh; KME_A_LISTENERS=2: KME_A
#                      also on 192.0.2.254:8445 ($KME_A2_URL, one key store)
#   ike_lab_kmes_stop
#   ike_lab_side SIDE PREFIX KMSTORE_CONF [CONN_OPTIONS] [SECRETS] [CONF_EXTRA]
#                      SIDE (west|east) to run the pluto installed in PREFIX
#                      (libreswan-patches/build.sh) with conn "west-east"
#                      (PSK authentication, IKEv2, retransmit-timeout
#                      $IKE_LAB_RETRANSMIT_TIMEOUT [10s], plus CONN_OPTIONS,
#                      one a line), SECRETS added to ipsec.secrets and
#                      CONF_EXTRA to ipsec.conf; KMSTORE_CONF empty: no module;
#                      IKE_LAB_SETUP: lines for its "config setup";
#                      IKE_LAB_MODULE_PARAMS: the module's parameters
#                      besides config= (or daemon=) [log=stderr log-level=info]
#   ike_lab_version PREFIX          the libreswan release installed there
#                      (5.2, 5.4, ...)
#   ike_lab_start SIDE [--kmstored-later]
#                      pluto, then every conn of its ipsec.conf added;
#                      IKE_LAB_WRAPPER: a command to run pluto under
#                      (e.g. valgrind with its options); --kmstored-later:
#                      daemon mode without starting the side's kmstored
#   ike_lab_whack SIDE ARGS...      whack for that pluto (30 s at most)
#   ike_lab_initiate SIDE CONN [WHACK_OPTIONS...]
#                      an IKE SA without a Child SA (this kernel has no ESP)
#                      and without revival; whack's output in
#                      $IKE_LAB_DIR/SIDE/initiate.out, its exit status
#                      returned, its wall time in $IKE_LAB_SECS
#   ike_lab_log SIDE   pluto's log so far (with the module's messages)
#   ike_lab_conn SIDE NAME [OPTION...]
#                      "conn NAME" for SIDE's ipsec.conf (CONF_EXTRA of
#                      ike_lab_side): west to east, IDs @west-NAME and
#                      @east-NAME, PSK, IKEv2, then each OPTION
#                      ("ppk=insist") on a line of its own
#   ike_lab_log_time   the times in pluto's log lines on stdin, in seconds
#                      since midnight
#   ike_lab_elapsed A B  seconds from time A to time B (B after midnight)
#   ike_lab_burst_secs  seconds from west's first initiation to its last
#                      IKE SA established (a burst started by one whack)
#   ike_lab_count SIDE PATTERN  lines of SIDE's pluto log matching PATTERN
#                      (grep's basic regular expression)
#   ike_lab_wait_count SIDE PATTERN COUNT SECONDS
#                      until COUNT lines match (1 if SECONDS pass first)
#   ike_lab_exec SIDE CMD...        CMD in SIDE's namespace (reaches its KME)
#   ike_lab_scan_secrets [KEY_FILE...]
#                      the plutos' logs (with the module's lines), whack's
#                      outputs and kme-sim's log searched for the static
#                      key and KEY_FILEs (tests/hygiene/scan_secrets.py):
#                      1 with the LEAK lines on stdout if one is found
#   ike_lab_stop [SIDE...]          shuts the plutos down [both] (killed
#                      after 2 s, 60 s under IKE_LAB_WRAPPER); pluto's exit status in $IKE_LAB_DIR/SIDE/exit;
#                      $IKE_LAB_CRASHES counts the plutos that died of a
#                      signal other than that SIGKILL, $IKE_LAB_LEAKS those
#                      whose leak detective (on by default from 5.4) found
#                      leaks at shutdown (their files are kept)
#   ike_lab_down       everything stopped and removed, the files too unless
#                      IKE_LAB_KEEP=1; safe to call twice (an EXIT trap)
#
# Daemon mode (IKE_LAB_DAEMON=1, KMSTORED naming the program): each side's
# module gets daemon=SOCKET instead of config=, and ike_lab_start starts
# that side's kmstored (in the side's namespace, with the KMSTORE_CONF
# given to ike_lab_side) before pluto; ike_lab_stop stops both.
#   ike_lab_kmstored SIDE   the side's socket ($IKE_LAB_DIR/SIDE/kmstored.sock;
#                      its log and pid beside it, tests/lib/kmstored-env.sh)
#   ike_lab_kmstored_start SIDE, ike_lab_kmstored_stop SIDE [SIGNAL]
#
# The network, all on 192.0.2.0/24 (RFC 5737), namespaces named after the
# caller's PID so that parallel runs do not collide:
#
#   west 192.0.2.1 --veth-- [bridge br0 in "lab": 192.0.2.254] --veth-- 192.0.2.2 east
#                                      |
#                    kme-sim: KME_A 192.0.2.254:8443, KME_B 192.0.2.254:8444
#
# Files: $IKE_LAB_DIR/SIDE/{ipsec.conf,ipsec.secrets,nss/,run/,pluto.log}.

# shellcheck shell=bash disable=SC2034 # the IKE_LAB_* globals are the API
# shellcheck source=kme-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/kme-env.sh"
# shellcheck source=kmstored-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/kmstored-env.sh"

ike_lab_abs() { # PATH -> absolute (pluto runs in its dump directory)
	case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
}

ike_lab_init() {
	IKE_LAB_MODULE=$(ike_lab_abs "$1") IKE_LAB_KME_SIM=$(ike_lab_abs "$2")
	IKE_LAB_KME_SIM_PKI=$(ike_lab_abs "$3")
	IKE_LAB_DIR=${4:-$(mktemp -d "${TMPDIR:-/tmp}/ike-lab.XXXXXX")}
	mkdir -p "$IKE_LAB_DIR"
	IKE_LAB_ID=$(printf '%05d' $(($$ % 100000)))
	IKE_LAB_NS_W=kmsw$IKE_LAB_ID IKE_LAB_NS_E=kmse$IKE_LAB_ID IKE_LAB_NS_L=kmsl$IKE_LAB_ID
	IKE_LAB_PIDS=() IKE_LAB_SECS=0 IKE_LAB_CRASHES=0 IKE_LAB_LEAKS=0
}

ike_lab_ns() { # SIDE -> the namespace
	case $1 in
	west) echo "$IKE_LAB_NS_W" ;;
	east) echo "$IKE_LAB_NS_E" ;;
	*) echo "$IKE_LAB_NS_L" ;;
	esac
}

ike_lab_up() {
	local id=$IKE_LAB_ID side ns addr i
	{
		ip netns add "$IKE_LAB_NS_L" && ip netns add "$IKE_LAB_NS_W" && ip netns add "$IKE_LAB_NS_E" &&
			ip -n "$IKE_LAB_NS_L" link set lo up &&
			ip -n "$IKE_LAB_NS_L" link add br0 type bridge &&
			ip -n "$IKE_LAB_NS_L" addr add 192.0.2.254/24 dev br0 &&
			ip -n "$IKE_LAB_NS_L" link set br0 up
	} 2>"$IKE_LAB_DIR/lab.err" || { head -n 1 "$IKE_LAB_DIR/lab.err" >&2; return 1; }
	for side in w e; do
		if [ $side = w ]; then ns=$IKE_LAB_NS_W addr=192.0.2.1; else ns=$IKE_LAB_NS_E addr=192.0.2.2; fi
		{
			ip link add "k${side}a$id" type veth peer name "k${side}b$id" &&
				ip link set "k${side}a$id" netns "$ns" &&
				ip link set "k${side}b$id" netns "$IKE_LAB_NS_L" &&
				ip -n "$ns" link set "k${side}a$id" name eth1 &&
				ip -n "$ns" link set lo up &&
				ip -n "$ns" addr add $addr/24 dev eth1 &&
				ip -n "$ns" link set eth1 up &&
				ip -n "$IKE_LAB_NS_L" link set "k${side}b$id" master br0 &&
				ip -n "$IKE_LAB_NS_L" link set "k${side}b$id" up
		} 2>"$IKE_LAB_DIR/lab.err" || { head -n 1 "$IKE_LAB_DIR/lab.err" >&2; return 1; }
	done
	# the bridge has no STP: its ports forward at once; check when we can
	command -v ping >/dev/null || return 0
	for i in $(seq 30); do
		ip netns exec "$IKE_LAB_NS_W" ping -c1 -W1 192.0.2.2 >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "ike-lab: west cannot reach east" >&2
	return 1
}

ike_lab_kmes_start() { # [kme-sim options...]
	local d=$IKE_LAB_DIR/kme i
	KME_DIR=$d	# for kme_env_write_conf
	mkdir -p "$d"
	if [ ! -f "$d/pki/ca.crt" ]; then
		"$IKE_LAB_KME_SIM_PKI" "$d/pki" --ip 192.0.2.254 --dns kme.test >"$d/pki.log" 2>&1 || {
			cat "$d/pki.log" >&2
			return 1
		}
		head -c 32 /dev/urandom >"$d/static.key"
		chmod 600 "$d/static.key"
	fi
	rm -f "$d/ready"
	local second=
	[ "${KME_A_LISTENERS:-1}" = 2 ] && second=,listen=192.0.2.254:8445
	ip netns exec "$IKE_LAB_NS_L" "$IKE_LAB_KME_SIM" --ca "$d/pki/ca.crt" \
		--kme "id=KME_A,listen=192.0.2.254:8443$second,cert=$d/pki/${KME_A_CERT:-kme-a}.crt,key=$d/pki/${KME_A_CERT:-kme-a}.key,sae=SAE_A" \
		--kme "id=KME_B,listen=192.0.2.254:8444,cert=$d/pki/kme-b.crt,key=$d/pki/kme-b.key,sae=SAE_B" \
		--ready-file "$d/ready" "$@" >>"$d/kme-sim.out" 2>>"$d/kme-sim.log" &
	IKE_LAB_KME_PID=$!
	for i in $(seq 100); do
		[ -s "$d/ready" ] && break
		kill -0 "$IKE_LAB_KME_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -s "$d/ready" ]; then
		echo "ike-lab: kme-sim did not start:" >&2
		tail -n 5 "$d/kme-sim.log" >&2
		return 1
	fi
	KME_A_URL=https://192.0.2.254:8443 KME_B_URL=https://192.0.2.254:8444
	KME_A2_URL=https://192.0.2.254:8445
	kme_env_write_conf "$d/west.conf" "$KME_A_URL" SAE_A SAE_B "$d/pki/sae-a.crt" "$d/pki/sae-a.key"
	kme_env_write_conf "$d/east.conf" "$KME_B_URL" SAE_B SAE_A "$d/pki/sae-b.crt" "$d/pki/sae-b.key"
}

ike_lab_kmes_stop() {
	if [ -n "${IKE_LAB_KME_PID:-}" ]; then
		kill "$IKE_LAB_KME_PID" 2>/dev/null || true
		wait "$IKE_LAB_KME_PID" 2>/dev/null || true
		IKE_LAB_KME_PID=
	fi
	return 0
}

ike_lab_side() { # SIDE PREFIX KMSTORE_CONF [CONN_OPTIONS] [SECRETS] [CONF_EXTRA]
	local side=$1 prefix=$2 conf=$3 opts=${4:-} secrets=${5:-} conf_extra=${6:-}
	local d=$IKE_LAB_DIR/$1 me=192.0.2.1 peer=192.0.2.2 peer_side=east
	[ "$side" = west ] || { me=192.0.2.2 peer=192.0.2.1 peer_side=west; }
	prefix=$(ike_lab_abs "$prefix")
	[ -x "$prefix/libexec/ipsec/pluto" ] || { echo "ike-lab: no pluto in $prefix" >&2; return 1; }
	ike_lab_kmstored_stop "$side"
	rm -rf "$d"
	mkdir -p "$d/nss" "$d/run"
	certutil -N -d "sql:$d/nss" --empty-password || return 1
	if [ -n "$conf" ]; then
		local source="config=$conf"
		if [ "${IKE_LAB_DAEMON:-0}" = 1 ]; then
			source="daemon=$(ike_lab_kmstored "$side")"
			echo "$conf" >"$d/kmstored.conf-path"
		fi
		modutil -dbdir "sql:$d/nss" -add kmstore -libfile "$IKE_LAB_MODULE" \
			-string "$source ${IKE_LAB_MODULE_PARAMS-log=stderr log-level=info}" -force >/dev/null 2>&1 || return 1
	fi
	cat >"$d/ipsec.conf" <<EOF
config setup
	plutodebug=none
$(printf '%s\n' "${IKE_LAB_SETUP:-}" | sed '/^$/d; s/^/\t/')

conn west-east
	left=$me
	leftid=@$side
	right=$peer
	rightid=@$peer_side
	authby=secret
	keyexchange=ikev2
	retransmit-timeout=${IKE_LAB_RETRANSMIT_TIMEOUT:-10s}
$(printf '%s\n' "$opts" | sed '/^$/d; s/^/\t/')
$conf_extra
EOF
	{
		echo "@west @east : PSK \"kmstore lab pre-shared key, not the PPK\""
		[ -z "$secrets" ] || printf '%s\n' "$secrets"
	} >"$d/ipsec.secrets"
	chmod 600 "$d/ipsec.secrets"
	echo "$prefix" >"$d/prefix"
}

ike_lab_kmstored() { echo "$IKE_LAB_DIR/$1/kmstored.sock"; }

ike_lab_kmstored_start() { # SIDE
	local d=$IKE_LAB_DIR/$1
	[ -f "$d/kmstored.conf-path" ] || return 0
	kmstored_start "$(ike_lab_kmstored "$1")" "$(cat "$d/kmstored.conf-path")" \
		ip netns exec "$(ike_lab_ns "$1")"
}

ike_lab_kmstored_stop() { # SIDE [SIGNAL]
	[ -n "${IKE_LAB_DIR:-}" ] || return 0
	kmstored_stop "$(ike_lab_kmstored "$1")" "${2:-TERM}"
}

ike_lab_version() { # PREFIX
	"$1/libexec/ipsec/pluto" --version 2>/dev/null | awk '$1 == "Libreswan" { print $2; exit }'
}

ike_lab_start() { # SIDE [--kmstored-later]
	local side=$1 d=$IKE_LAB_DIR/$1 ns prefix i
	ns=$(ike_lab_ns "$side") prefix=$(cat "$d/prefix")
	[ "${2:-}" = --kmstored-later ] || ike_lab_kmstored_start "$side" || return 1
	rm -f "$d/run/pluto.ctl"
	# --stderrlog: pluto's log and the module's messages (log=stderr) in
	# one file, in order; but a side whose config names a logfile= gets it
	# (5.4's --stderrlog would override it, 5.2's would not)
	local stderrlog=--stderrlog
	! grep -q '^[[:space:]]*logfile=' "$d/ipsec.conf" || stderrlog=
	# shellcheck disable=SC2086 # IKE_LAB_WRAPPER is a command line
	ip netns exec "$ns" ${IKE_LAB_WRAPPER:-} "$prefix/libexec/ipsec/pluto" --nofork $stderrlog \
		--config "$d/ipsec.conf" --rundir "$d/run" \
		--secretsfile "$d/ipsec.secrets" --nssdir "$d/nss" --dumpdir "$d/run" \
		>"$d/pluto.out" 2>"$d/pluto.log" &
	IKE_LAB_PIDS+=($!)
	echo $! >"$d/pid"
	for i in $(seq 600); do
		[ -S "$d/run/pluto.ctl" ] && break
		sleep 0.05
	done
	[ -S "$d/run/pluto.ctl" ] || { echo "ike-lab: pluto ($side) did not start:" >&2; tail -n 20 "$d/pluto.log" >&2; return 1; }
	# shellcheck disable=SC2046 # one word per conn
	ip netns exec "$ns" "$prefix/libexec/ipsec/addconn" --ctlsocket "$d/run/pluto.ctl" \
		--config "$d/ipsec.conf" $(awk '$1 == "conn" && $2 != "%default" { print $2 }' "$d/ipsec.conf") \
		>"$d/addconn.out" 2>&1 ||
		{ echo "ike-lab: addconn ($side) failed:" >&2; cat "$d/addconn.out" >&2; return 1; }
}

ike_lab_whack() { # SIDE ARGS...
	local d=$IKE_LAB_DIR/$1
	shift
	timeout 30 "$(cat "$d/prefix")/libexec/ipsec/whack" --rundir "$d/run" "$@"
}

ike_lab_initiate() { # SIDE CONN [WHACK_OPTIONS...]
	local side=$1 conn=$2 t0 t1 rc
	shift 2
	ike_lab_whack "$side" --impair omit_v2_ike_auth_child >/dev/null || true
	ike_lab_whack "$side" --impair revival >/dev/null || true
	t0=$(date +%s.%N) rc=0
	ike_lab_whack "$side" --initiate --name "$conn" "$@" >"$IKE_LAB_DIR/$side/initiate.out" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	IKE_LAB_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	return $rc
}

ike_lab_conn() { # SIDE NAME [OPTION...]
	local side=$1 name=$2 me=west peer=east ma=192.0.2.1 pa=192.0.2.2 o
	[ "$side" = west ] || { me=east peer=west ma=192.0.2.2 pa=192.0.2.1; }
	shift 2
	printf 'conn %s\n\tleft=%s\n\tleftid=@%s-%s\n\tright=%s\n\trightid=@%s-%s\n\tauthby=secret\n\tkeyexchange=ikev2\n' \
		"$name" $ma $me "$name" $pa $peer "$name"
	for o in "$@"; do
		printf '\t%s\n' "$o"
	done
}

ike_lab_log_time() { awk '{ split($3, t, ":"); printf "%.6f\n", t[1] * 3600 + t[2] * 60 + t[3] }'; }

ike_lab_elapsed() { # A B
	awk -v a="$1" -v b="$2" 'BEGIN { if (b < a - 43200) b += 86400; printf "%.6f\n", b - a }'
}

ike_lab_burst_secs() {
	local log=$IKE_LAB_DIR/west/pluto.log
	ike_lab_elapsed "$(grep -m1 -F 'initiating IKEv2 connection' "$log" | ike_lab_log_time)" \
		"$(grep -F 'initiator established IKE SA' "$log" | tail -n 1 | ike_lab_log_time)"
}

ike_lab_count() { # SIDE PATTERN
	local log=$IKE_LAB_DIR/$1/pluto.log
	if [ -f "$log" ]; then grep -c -- "$2" "$log" || true; else echo 0; fi
}

ike_lab_wait_count() { # SIDE PATTERN COUNT SECONDS
	local i
	for i in $(seq $(($4 * 20))); do
		[ "$(ike_lab_count "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

ike_lab_log() { # SIDE
	cat "$IKE_LAB_DIR/$1/pluto.log" 2>/dev/null
}

ike_lab_exec() { # SIDE CMD...
	local ns
	ns=$(ike_lab_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

ike_lab_scan_secrets() { # [KEY_FILE...]
	local secrets=$IKE_LAB_DIR/secrets f files out
	files=$(find "$IKE_LAB_DIR"/west "$IKE_LAB_DIR"/east "$IKE_LAB_DIR"/kme \
		\( -name '*.log' -o -name '*.out' \) 2>/dev/null)
	[ -n "$files" ] || return 0 # no pluto ran
	mkdir -p "$secrets"
	for f in "$IKE_LAB_DIR/kme/static.key" "$@"; do
		[ ! -f "$f" ] || kme_env_hex "$f" >"$secrets/$(basename "$f" .key)"
	done
	# logs and outputs, not ipsec.secrets (a stock pluto's PPKS line
	# holds the key by design)
	# shellcheck disable=SC2086 # one path a line, none with blanks
	out=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../hygiene/scan_secrets.py" "$secrets" $files 2>&1) ||
		{ grep LEAK <<<"$out"; return 1; }
}

ike_lab_stop() { # [SIDE...]
	local side pid i rc
	[ $# -gt 0 ] || set -- west east
	for side in "$@"; do
		if [ ! -f "$IKE_LAB_DIR/$side/pid" ]; then
			ike_lab_kmstored_stop "$side"
			continue
		fi
		pid=$(cat "$IKE_LAB_DIR/$side/pid")
		ike_lab_whack "$side" --shutdown >/dev/null 2>&1 &
		# under a wrapper (valgrind) the shutdown takes longer
		for i in $(seq "$([ -n "${IKE_LAB_WRAPPER:-}" ] && echo 1200 || echo 40)"); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		# reaped: its PID is free for any process on the machine (they
		# wrap within minutes), so ike_lab_down must not kill it again
		ike_lab_forget_pid "$pid"
		echo $rc >"$IKE_LAB_DIR/$side/exit"
		if [ $rc -gt 128 ] && [ $rc != 137 ]; then
			IKE_LAB_CRASHES=$((IKE_LAB_CRASHES + 1))
			cp -a "$IKE_LAB_DIR/$side" "$IKE_LAB_DIR/crash-$side-$$-$SECONDS"
			echo "ike-lab: pluto ($side) died of signal $((rc - 128)); kept: $IKE_LAB_DIR/crash-$side-$$-$SECONDS" >&2
		fi
		if grep -q 'leak detective found [0-9]' "$IKE_LAB_DIR/$side/pluto.log" 2>/dev/null; then
			IKE_LAB_LEAKS=$((IKE_LAB_LEAKS + 1))
			cp -a "$IKE_LAB_DIR/$side" "$IKE_LAB_DIR/leak-$side-$$-$SECONDS"
			echo "ike-lab: pluto ($side): $(grep -o 'leak detective found [0-9].*' "$IKE_LAB_DIR/$side/pluto.log"); kept: $IKE_LAB_DIR/leak-$side-$$-$SECONDS" >&2
		fi
		rm -f "$IKE_LAB_DIR/$side/pid"
		ike_lab_kmstored_stop "$side"
	done
	return 0
}

ike_lab_forget_pid() { # PID
	local p kept=()
	for p in "${IKE_LAB_PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
	IKE_LAB_PIDS=("${kept[@]}")
}

ike_lab_down() {
	local p n
	[ -n "${IKE_LAB_DIR:-}" ] || return 0
	for p in "${IKE_LAB_PIDS[@]}"; do
		{ kill -9 "$p" && wait "$p"; } 2>/dev/null || true
	done
	IKE_LAB_PIDS=()
	ike_lab_kmstored_stop west KILL
	ike_lab_kmstored_stop east KILL
	ike_lab_kmes_stop
	for n in "$IKE_LAB_NS_W" "$IKE_LAB_NS_E" "$IKE_LAB_NS_L"; do ip netns del "$n" 2>/dev/null || true; done
	if [ "${IKE_LAB_KEEP:-0}" != 1 ]; then
		rm -rf "$IKE_LAB_DIR"
		IKE_LAB_DIR=
	fi
	return 0
}
