#!/usr/bin/env bash
# run-daemon.sh - kmstored against in-process, on two kme-sim KMEs on
# 127.0.0.1 (no faults). A benchmark: it prints figures.
#
# 1. Key fetches (bench/keyfetch): a new key at west then that key at east,
#    through libkmstore in-process, the OpenSSL provider in-process and
#    libkmstore through kmstored (a client configuration), one thread and
#    4, keys/s, latency percentiles and ratios.
# 2. Every face, in-process and through kmstored (bench/soak: lib, nss,
#    ossl; daemon-lib, daemon-nss, daemon-ossl), rounds/s, one face at a
#    time and all six at once, REPEATS times interleaved; the median of
#    each cell, each face's ratio to libkmstore in-process in the same
#    mode, and the worst cell of "the provider through kmstored over
#    libkmstore in-process" (target at least 0.8); kmstored's CPU per
#    round. Twice: with the soak's KME faults (bench/run-soak.sh: 5% 503,
#    2% dropped, 1% malformed; the workload the 0.23x of the provider
#    in-process was measured on), and without any (KMEs answering in
#    tens of microseconds on loopback: the faces' own overhead shows).
# 3. A warm pool (prefetch): "a key for use now" through the socket, each
#    timed (keyfetch -W): p50 and p99 (targets 100 us and 1 ms); and
#    kmstored's RSS with 10 profiles and their pools full.
#
# Usage: bash bench/run-daemon.sh [BUILD_DIR] [ROUNDS] [REPEATS]
#        (build/release, 1000, 3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$src/build/release}")
rounds=${2:-1000}
reps=${3:-3}
SOAK=$build/bench/soak KEYFETCH=$build/bench/keyfetch
export KMSTORED=$build/kmstore/daemon/kmstored
P11_MODULE=$build/provider/pkcs11/kmstore-pkcs11.so
PROVIDER_DIR=$build/provider/openssl
work=$(mktemp -d /tmp/bench-daemon.XXXXXX)
. "$src/tests/lib/kme-env.sh"
. "$src/tests/lib/kmstored-env.sh"
cleanup() {
	for s in "$work"/*.sock; do kmstored_stop "$s" KILL; done
	kme_env_stop
	rm -rf "$work"
}
trap cleanup EXIT
# part 1 takes 3 turns x (1 + 4 threads) x 3 faces x ROUNDS, curl 2 x ROUNDS
kme_env_start "$work/lab" "$build/tests/kme-sim/kme-sim" "$src/tests/kme-sim/kme-sim-pki" \
	--pool-size $((rounds * 50 + 1000)) >/dev/null
client() { # FILE SOCKET
	echo "daemon = $2" >"$1"
	chmod 600 "$1"
}

echo "== key fetches ($rounds round trips per thread and face, one thread and 4, 3 turns)"
# keyfetch's configuration: west's and east's QKD profiles, and the static
# one; kmstored serves the same file.
kme_env_both_sites "$work/keyfetch.conf" static
kmstored_start "$work/keyfetch.sock" "$work/keyfetch.conf"
client "$work/keyfetch-client.conf" "$work/keyfetch.sock"
# the provider's store cache reads a file written in the last seconds at
# each open: measure the steady state
sleep 3
"$KEYFETCH" -n "$rounds" -j 4 -r 3 -p "$PROVIDER_DIR" -D "$work/keyfetch-client.conf" \
	"$work/keyfetch.conf"
kmstored_stop "$work/keyfetch.sock"

nss_db() { # DIR SOURCE
	rm -rf "$1"
	mkdir -p "$1"
	certutil -N -d "sql:$1" --empty-password
	echo | modutil -dbdir "sql:$1" -add kmstore -libfile "$P11_MODULE" \
		-string "$2 log=stderr" -force >/dev/null 2>&1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # PID: utime + stime
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] + 0 }'; }
range() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }

# bench_faces LABEL [KME_SIM_OPTIONS...]: part 2 on a fresh lab.
bench_faces() {
	local label=$1 conf=$work/soak.conf sock=$work/kmstored.sock face rep dpid t0
	local d_ticks=0 d_rounds=0 faces=(lib daemon-lib)
	shift
	kme_env_stop
	rm -rf "$work/lab"
	kme_env_start "$work/lab" "$build/tests/kme-sim/kme-sim" "$src/tests/kme-sim/kme-sim-pki" \
		--pool-size $((rounds * reps * 16 + 1000)) "$@" >/dev/null
	# The soak's configuration: both sites in one file, profiles west and east.
	kme_env_both_sites "$conf"
	client "$work/client.conf" "$sock"
	kmstored_start "$sock" "$conf"
	dpid=$(kmstored_pid "$sock")
	if [[ -f $P11_MODULE ]]; then
		faces+=(nss daemon-nss)
		nss_db "$work/nss" "config=$conf"
		nss_db "$work/nss-daemon" "daemon=$sock"
	fi
	[[ -f $PROVIDER_DIR/kmstore.so ]] && faces+=(ossl daemon-ossl)
	declare -A rate=() med=() pids=()
	for rep in $(seq "$reps"); do
		for face in "${faces[@]}"; do
			t0=$(cpu_ticks "$dpid")
			rate[one,$face]+="$(soak_face "$face") "
			if [[ $face == daemon-* ]]; then
				d_ticks=$((d_ticks + $(cpu_ticks "$dpid") - t0))
				d_rounds=$((d_rounds + rounds))
			fi
		done
		for face in "${faces[@]}"; do
			soak_face "$face" >"$work/all-$face" &
			pids[$face]=$!
		done
		for face in "${faces[@]}"; do
			wait "${pids[$face]}" || true
			rate[all,$face]+="$(cat "$work/all-$face") "
		done
		printf '.' >&2
	done
	echo >&2
	echo
	echo "== every face, $label: $rounds rounds each (a round: a new key at west, that key at east), $reps repeats, medians"
	printf '%-12s %14s %17s %6s   %14s %17s %6s\n' face 'one at a time' '(min-max)' ratio 'all at once' '(min-max)' ratio
	for mode in one all; do
		for face in "${faces[@]}"; do
			med[$mode,$face]=$(median <<<"${rate[$mode,$face]}")
		done
	done
	for face in "${faces[@]}"; do
		printf '%-12s %14s %17s %6.2f   %14s %17s %6.2f\n' "$face" \
			"${med[one,$face]}" "($(range <<<"${rate[one,$face]}"))" \
			"$(awk -v a="${med[one,$face]}" -v b="${med[one,lib]}" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
			"${med[all,$face]}" "($(range <<<"${rate[all,$face]}"))" \
			"$(awk -v a="${med[all,$face]}" -v b="${med[all,lib]}" 'BEGIN { print (b > 0 ? a / b : 0) }')"
	done
	echo "(rounds/s; ratio: the face's over libkmstore in-process in the same mode)"
	if [[ " ${faces[*]} " == *" daemon-ossl "* ]]; then
		awk -v o="${med[one,daemon-ossl]}" -v lo="${med[one,lib]}" \
			-v a="${med[all,daemon-ossl]}" -v la="${med[all,lib]}" -v l="$label" 'BEGIN {
			r1 = o / lo; r2 = a / la; w = r1 < r2 ? r1 : r2
			printf "%s: the provider through kmstored over libkmstore in-process: %.2f one at a time, %.2f all at once; worst %.2f (target >= 0.8: %s)\n", l, r1, r2, w, (w >= 0.8 ? "met" : "NOT met")
		}'
		awk -v a="${med[one,daemon-ossl]}" -v b="${med[one,ossl]}" -v l="$label" \
			'BEGIN { printf "%s: the provider through kmstored over the provider in-process, one at a time: %.1fx\n", l, a / b }'
	fi
	awk -v t="$d_ticks" -v n="$d_rounds" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		if (n > 0) printf "kmstored CPU, one at a time: %.3f ms per round (two keys: enc_keys and dec_keys)\n", t / hz * 1000 / n }'
	echo "kmstored RSS at the end: $(awk '$1 == "VmRSS:" { print $2 " kB" }' "/proc/$dpid/status"), threads: $(awk '$1 == "Threads:" { print $2 }' "/proc/$dpid/status")"
	kmstored_stop "$sock"
}

# soak_face FACE: rounds/s of one soak run, on stdout.
soak_face() {
	local face=$1 base=${1#daemon-} target=$work/soak.conf out
	[[ $face == daemon-* ]] && target=$work/client.conf
	[[ $base == nss ]] && target=$work/nss
	[[ $face == daemon-nss ]] && target=$work/nss-daemon
	out=$("$SOAK" --face "$base" -n "$rounds" -w 100 -e any -r 1000000 -t 600 \
		-p "$PROVIDER_DIR" -q "$target" 2>"$work/$face.err") || {
		echo "run-daemon: soak --face $face failed:" >&2
		echo "$out" >&2
		tail -n 5 "$work/$face.err" >&2
		echo 0
		return
	}
	sed -n 's/.*(\([0-9.]*\) rounds\/s after.*/\1/p' <<<"$out"
}

# bench_pool: part 3.
bench_pool() {
	local sock=$work/pool.sock conf=$work/pool.conf i rss0
	kme_env_stop
	rm -rf "$work/lab"
	kme_env_start "$work/lab" "$build/tests/kme-sim/kme-sim" "$src/tests/kme-sim/kme-sim-pki" \
		--pool-size 1000000 -q >/dev/null
	sed "/^timeout /a prefetch = 1000" "$KME_DIR/west.conf" >"$conf"
	chmod 600 "$conf"
	client "$work/pool-client.conf" "$sock"
	kmstored_start "$sock" "$conf"
	for i in $(seq 300); do
		"$build/kmstore/kmstore" --daemon "$sock" metrics |
			grep -q '^kmstore_pool_keys{profile="qkd"} 1000$' && break
		sleep 0.1
	done
	echo
	echo "== a warm pool (prefetch = 1000, refilled below 500 while it serves)"
	"$KEYFETCH" -n "$rounds" -W "$work/pool-client.conf"
	kmstored_stop "$sock"
	# 10 QKD profiles, 1000 keys each
	: >"$conf"
	for i in $(seq 10); do
		sed -n '/^\[qkd\]/,/^$/p' "$KME_DIR/west.conf" |
			sed "s/^\[qkd\]/[qkd$i]/; /^timeout /a prefetch = 1000" >>"$conf"
		echo >>"$conf"
	done
	kmstored_start "$sock" "$conf"
	rss0=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$(kmstored_pid "$sock")/status")
	for i in $(seq 600); do
		[ "$("$build/kmstore/kmstore" --daemon "$sock" metrics |
			grep -c '^kmstore_pool_keys{profile="qkd[0-9]*"} 1000$')" = 10 ] && break
		sleep 0.1
	done
	echo "kmstored with 10 QKD profiles: RSS $rss0 kB at start, $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$(kmstored_pid "$sock")/status") kB with their 10 pools full (10 x 1000 keys of 256 bits), $(awk '$1 == "VmLck:" { print $2 }' "/proc/$(kmstored_pid "$sock")/status") kB locked, $(awk '$1 == "Threads:" { print $2 }' "/proc/$(kmstored_pid "$sock")/status") threads"
	kmstored_stop "$sock"
}

if [[ -z ${BENCH_ONLY_POOL:-} ]]; then
	bench_faces "with the soak's faults" --fault 503:5 --fault drop:2 --fault malformed:1
	bench_faces "without faults"
fi
bench_pool
