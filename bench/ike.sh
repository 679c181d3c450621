#!/usr/bin/env bash
# bench/ike.sh - IKE SAs per second between two patched plutos in network
# namespaces (tests/lib/ike-lab.sh), by where the PPK comes from, against
# libreswan's own PPKS entry of ipsec.secrets. A benchmark, not a test: it
# prints figures (run it as root, on as quiet a machine as you have).
#
#   bash bench/ike.sh [BUILD_DIR] [N] [REPEATS]   (build/release, 200, 3)
#
# What changes between configurations is only the PPK's source:
#   ppks        PPKS "PPK_ID_1" in ipsec.secrets, no module in NSS
#   static-uri  ppk-uri=pkcs11:token=static: the module, in-process
#   qkd-uri     ppk-uri=pkcs11:token=qkd: a new QKD key per IKE SA (enc_keys
#               at west's KME, dec_keys at east's), the module in-process
#   qkd-daemon  the same through each side's kmstored, no pool
#   qkd-pool    the same, west's kmstored with a pool (prefetch = N), so the
#               initiator takes no KME round trip; east's dec_keys cannot
#               be prefetched
# Every configuration has the same ipsec.secrets (a PSK and a PPKS line per
# connection: the ppk-uri ones do not use the PPKS lines) and the same
# ipsec.conf but for the ppk-uri= line. Each run starts fresh plutos with N
# connections and brings up N IKE SAs without a Child SA (this kernel has
# no ESP), with each proposal set (DH19: ike=aes256-sha2_256-dh19; X25519:
# ike=aes256-sha2_256-curve25519) and each way:
#   one   one whack per IKE SA, each waiting for its SA: SAs/s by the
#         wall clock (whack's cost is in it, the same for all), and each
#         SA's own time in pluto's log (initiating to established)
#   all   one whack initiates all N (connalias=all, --asynchronous): SAs/s
#         from pluto's first initiation to the last SA established
# Configurations are interleaved, REPEATS times; each cell is the median.
# Besides the rates: the plutos' CPU per IKE SA (west + east), kme-sim's
# and the kmstoreds' apart; under each target, for the all-at-once cells,
# how busy ppks kept the CPUs and what CPU per IKE SA the target ratio
# leaves for the PPK's source (cpu_budget). Then memory (rss_once): each
# configuration's RSS at start and its growth per IKE SA over a first and
# a second burst of N (ppks is in configs for the comparison). Then a
# far KME: kme-sim delaying every answer by 5 and by 20 ms, qkd-uri and
# qkd-pool, all at once (BENCH_FAR_CONFIGS="qkd-pool+8 ..." runs a
# configuration with pluto's nhelpers=8). BENCH_CONFIGS and
# BENCH_FAR_CONFIGS pick configurations;
# BENCH_NO_DELAY=1 skips the far KME, BENCH_ONLY_DELAY=1 all but it;
# BENCH_PERF=DIR keeps a perf profile of each all-at-once burst.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${1:-build/release}
n=${2:-200}
reps=${3:-3}
case $build in /*) ;; *) build=$top/$build ;; esac
prefix=$build/libreswan/prefix
module=$build/provider/pkcs11/kmstore-pkcs11.so
export KMSTORED=$build/kmstore/daemon/kmstored
[ "$(id -u)" -eq 0 ] || { echo "bench/ike: needs root (network namespaces)" >&2; exit 1; }
[ -x "$prefix/libexec/ipsec/pluto" ] || { echo "bench/ike: no pluto in $prefix (libreswan-patches/build.sh $build/libreswan)" >&2; exit 1; }
[ -f "$module" ] || { echo "bench/ike: no $module (build kmstore first)" >&2; exit 1; }

# The module at its default log level (warnings), as installed: the lab's
# log-level=info writes a line and computes a check value per key, which
# tests read and gateways do not.
export IKE_LAB_MODULE_PARAMS=${IKE_LAB_MODULE_PARAMS-log=stderr}
# shellcheck source=../tests/lib/ike-lab.sh
. tests/lib/ike-lab.sh
ike_lab_init "$module" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki
trap ike_lab_down EXIT
ike_lab_up
kme_opts=(--pool-size 1000000 --max-pending 1000000 -q)
ike_lab_kmes_start "${kme_opts[@]}"
ppk_hex=$(kme_env_hex "$IKE_LAB_DIR/kme/static.key")
hz=$(getconf CLK_TCK)

# N connections (c1 ... cN), west's behind connalias=all; with sets=2,
# 2N behind set1 and set2 (the RSS runs)
sets=1
conns() { # SIDE PPK_LINE PROPOSAL
	local side=$1 opt=$2 prop=$3 i alias=
	for i in $(seq $((n * sets))); do
		if [ "$side" != west ]; then alias=
		elif [ "$sets" = 1 ]; then alias=connalias=all
		else alias=connalias=set$(((i - 1) / n + 1)); fi
		ike_lab_conn "$side" "c$i" ppk=insist "ike=$prop" retransmit-timeout=30s "$opt" $alias
	done
}
secrets() { # the same for every configuration
	local i
	for i in $(seq $((n * sets))); do
		echo "@west-c$i @east-c$i : PSK \"bench pre-shared key $i\""
		echo "@west-c$i @east-c$i : PPKS \"PPK_ID_1\" 0x$ppk_hex"
	done
}
# the profiles, and west's with a pool
qkd_conf() { # SIDE POOL
	local f=$IKE_LAB_DIR/bench-$1.conf
	cp "$IKE_LAB_DIR/kme/$1.conf" "$f"
	[ "$2" = 0 ] || sed -i "/^timeout /a prefetch = $2\nprefetch-low = $(($2 / 2))\nprefetch-max-age = 3600" "$f"
	echo "$f"
}

setup() { # CONFIG PROPOSAL
	local side conf opt daemon=0 pool
	# every configuration alike: room for a burst of N IKE_SA_INIT
	# requests in the responder's socket buffer (see run_once)
	local IKE_LAB_SETUP="${IKE_LAB_SETUP:-}
ike-socket-bufsize=$((4 * 1024 * 1024))"
	for side in west east; do
		pool=0
		case $1 in
		ppks) conf='' opt='# PPKS in ipsec.secrets' ;;
		static-uri) conf=$IKE_LAB_DIR/kme/$side.conf opt='ppk-uri=pkcs11:token=static' ;;
		qkd-uri) conf=$IKE_LAB_DIR/kme/$side.conf opt='ppk-uri=pkcs11:token=qkd' ;;
		qkd-daemon) conf=$IKE_LAB_DIR/kme/$side.conf opt='ppk-uri=pkcs11:token=qkd' daemon=1 ;;
		qkd-pool) opt='ppk-uri=pkcs11:token=qkd' daemon=1
			[ $side = east ] || pool=$n
			conf=$(qkd_conf $side $pool) ;;
		esac
		IKE_LAB_DAEMON=$daemon ike_lab_side $side "$prefix" "$conf" 'ppk=insist' "$(secrets)" \
			"$(conns $side "$opt" "$2")"
	done
	ike_lab_start west && ike_lab_start east
	ike_lab_whack west --impair omit_v2_ike_auth_child >/dev/null
	ike_lab_whack west --impair revival >/dev/null
	if [ "$1" = qkd-pool ]; then # a full pool before the clock starts
		local i
		for i in $(seq 300); do
			"$build/kmstore/kmstore" --daemon "$(ike_lab_kmstored west)" metrics 2>/dev/null |
				grep -q "^kmstore_pool_keys{profile=\"qkd\"} $n\$" && break
			sleep 0.1
		done
	fi
}

pid_of() { cat "$IKE_LAB_DIR/$1/pid"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
threads() { ls "/proc/$1/task" | wc -l; }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# CPU ticks of west's and east's pluto, of kme-sim, of the kmstoreds
cpu_now() {
	local k=0 s
	for s in west east; do
		if [ -f "$(ike_lab_kmstored $s).pid" ]; then k=$((k + $(ticks "$(kmstored_pid "$(ike_lab_kmstored $s)")"))); fi
	done
	echo "$(($(ticks "$(pid_of west)") + $(ticks "$(pid_of east)"))) $(ticks "$IKE_LAB_KME_PID") $k"
}
established() { ike_lab_count west 'initiator established IKE SA'; }
wait_established() { ike_lab_wait_count west 'initiator established IKE SA' "$1" 60 || true; }

# BENCH_PERF=DIR: a perf profile of every process of the lab (plutos,
# kmstoreds, kme-sim) over each all-at-once burst, DIR/CONFIG.GROUP.N.data
perf_pid=
perf_start() { # NAME
	[ -n "${BENCH_PERF:-}" ] || return 0
	local pids k s
	pids="$(pid_of west),$(pid_of east),$IKE_LAB_KME_PID"
	for s in west east; do
		k=$(ike_lab_kmstored $s)
		[ ! -f "$k.pid" ] || pids+=",$(kmstored_pid "$k")"
	done
	mkdir -p "$BENCH_PERF"
	k=1
	while [ -e "$BENCH_PERF/$1.$k.data" ]; do k=$((k + 1)); done
	perf record -q -g -F 4000 -p "$pids" -o "$BENCH_PERF/$1.$k.data" 2>/dev/null &
	perf_pid=$!
	sleep 0.5 # perf attaches to every thread before the clock starts
}
perf_stop() {
	[ -n "$perf_pid" ] || return 0
	kill -INT "$perf_pid" && wait "$perf_pid" || true
	perf_pid=
}

# run_once CONFIG PROPOSAL MODE: "rate per_sa_ms cpu_ms kme_ms daemon_ms fails
# retransmissions west_threads east_threads" (threads: each pluto's once
# the SAs are up, waiting helpers included). A burst of N IKE_SA_INIT
# requests once overflowed the responder's default socket buffer: a lost
# one came again 0.5 s later, and the run's rate with it; setup() gives
# both plutos 4 MiB.
run_once() {
	local config=$1 prop=$2 mode=$3 t0 t1 c0 c1 ok i rate persa
	setup "$config" "$prop"
	read -r -a c0 <<<"$(cpu_now)"
	t0=$(date +%s.%N)
	if [ "$mode" = one ]; then
		for i in $(seq "$n"); do
			ike_lab_whack west --initiate --name "c$i" >/dev/null 2>&1 || true
		done
		t1=$(date +%s.%N)
		rate=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.1f", n / (b - a) }')
	else
		perf_start "$config.$(pname "$prop")"
		ike_lab_whack west --initiate --name all --asynchronous >/dev/null 2>&1 || true
		wait_established "$n"
		perf_stop
		rate=$(awk -v n="$n" -v d="$(ike_lab_burst_secs)" 'BEGIN { printf "%.1f", (d > 0 ? n / d : 0) }')
	fi
	sleep 0.2
	read -r -a c1 <<<"$(cpu_now)"
	ok=$(established)
	# each SA's time in pluto: from "initiating" to "established", by SA serial
	persa=$(awk '
		function s(t, f) { split(t, f, ":"); return f[1] * 3600 + f[2] * 60 + f[3] }
		/initiating IKEv2 connection/ { if (match($0, /#[0-9]+/)) start[substr($0, RSTART, RLENGTH)] = s($3) }
		/initiator established IKE SA/ { if (match($0, /#[0-9]+/) && (substr($0, RSTART, RLENGTH) in start)) { d = s($3) - start[substr($0, RSTART, RLENGTH)]; print (d < 0 ? d + 86400 : d) * 1000 } }
	' "$IKE_LAB_DIR/west/pluto.log" | sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }')
	echo "$rate $persa $(awk -v a="${c0[0]}" -v b="${c1[0]}" -v n="$ok" -v hz="$hz" 'BEGIN { printf "%.3f", n ? (b - a) / hz * 1000 / n : 0 }') \
$(awk -v a="${c0[1]}" -v b="${c1[1]}" -v n="$ok" -v hz="$hz" 'BEGIN { printf "%.3f", n ? (b - a) / hz * 1000 / n : 0 }') \
$(awk -v a="${c0[2]}" -v b="${c1[2]}" -v n="$ok" -v hz="$hz" 'BEGIN { printf "%.3f", n ? (b - a) / hz * 1000 / n : 0 }') \
$((n - ok)) \
$(ike_lab_count west 'retransmitting') \
$(threads "$(pid_of west)") $(threads "$(pid_of east)")" \
		>"$IKE_LAB_DIR/result"
	ike_lab_stop
}

# rss_once CONFIG: the plutos' RSS (KiB) at start, then their growth per
# IKE SA (bytes) over a first burst of N IKE SAs and over a second burst
# of N more, the first still up: "start_w start_e first_w first_e next_w
# next_e". What the first burst adds once (threads, TLS connections,
# arenas) is in "first" only; what each SA keeps is in both.
rss_once() {
	local r0w r0e r1w r1e r2w r2e
	sets=2 setup "$1" "${props[0]}"
	r0w=$(rss_kib "$(pid_of west)") r0e=$(rss_kib "$(pid_of east)")
	ike_lab_whack west --initiate --name set1 --asynchronous >/dev/null 2>&1 || true
	wait_established "$n"
	sleep 0.5
	r1w=$(rss_kib "$(pid_of west)") r1e=$(rss_kib "$(pid_of east)")
	ike_lab_whack west --initiate --name set2 --asynchronous >/dev/null 2>&1 || true
	wait_established $((2 * n))
	sleep 0.5
	r2w=$(rss_kib "$(pid_of west)") r2e=$(rss_kib "$(pid_of east)")
	echo "$r0w $r0e $(((r1w - r0w) * 1024 / n)) $(((r1e - r0e) * 1024 / n)) \
$(((r2w - r1w) * 1024 / n)) $(((r2e - r1e) * 1024 / n)) $((2 * n - $(established)))" >"$IKE_LAB_DIR/result"
	ike_lab_stop
}

configs=(${BENCH_CONFIGS:-ppks static-uri qkd-uri qkd-daemon qkd-pool})
props=("aes256-sha2_256-dh19" "aes256-sha2_256-curve25519")
pname() { case $1 in *dh19) echo DH19 ;; *) echo X25519 ;; esac; }
echo "bench/ike: $n IKE SAs per run, $reps repeats interleaved, $(nproc) CPUs; medians"
declare -A R
reps_main=$reps
[ -z "${BENCH_ONLY_DELAY:-}" ] || reps_main=0
for rep in $(seq "$reps_main"); do
	for prop in "${props[@]}"; do
		for mode in one all; do
			for config in "${configs[@]}"; do
				run_once "$config" "$prop" "$mode"
				R[$config.$(pname "$prop").$mode]+="$(cat "$IKE_LAB_DIR/result")|"
				printf '.' >&2
			done
		done
	done
done
echo >&2
if [ "$reps_main" -gt 0 ]; then
# col KEY FIELD: the median of a field over the repeats
col() { tr "|" "\n" <<<"${R[$1]:-}" | sed '/^$/d' | awk -v f="$2" '{ print $f }' | sort -g |
	awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }
maxcol() { tr "|" "\n" <<<"${R[$1]:-}" | sed '/^$/d' | awk -v f="$2" '$f > m { m = $f } END { print m + 0 }'; }
sumcol() { tr "|" "\n" <<<"${R[$1]:-}" | sed '/^$/d' | awk -v f="$2" '{ s += $f } END { print s + 0 }'; }
printf '\n%-11s %-7s %-4s %9s %7s %10s %10s %9s %11s %7s %5s %8s\n' config group mode 'SAs/s' ratio 'SA ms p50' 'pluto ms' 'kme ms' 'kmstored ms' failed retx threads
for prop in "${props[@]}"; do
	p=$(pname "$prop")
	for mode in one all; do
		base=$(col "ppks.$p.$mode" 1)
		for config in "${configs[@]}"; do
			k=$config.$p.$mode
			printf '%-11s %-7s %-4s %9s %7.2f %10s %10s %9s %11s %7s %5s %8s\n' "$config" "$p" "$mode" \
				"$(col "$k" 1)" "$(awk -v a="$(col "$k" 1)" -v b="$base" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
				"$(col "$k" 2)" "$(col "$k" 3)" "$(col "$k" 4)" "$(col "$k" 5)" \
				"$(sumcol "$k" 6)" "$(sumcol "$k" 7)" "$(maxcol "$k" 8)/$(maxcol "$k" 9)"
		done
	done
done
echo "(ratio: SAs/s over ppks in the same cell; SA ms: one SA's time in west's pluto log; pluto ms: CPU of both plutos per IKE SA; kme ms: kme-sim's CPU per IKE SA, both KMEs; kmstored ms: both kmstoreds' CPU per IKE SA; retx: IKE requests west retransmitted, all repeats: a lost burst packet costs its run 0.5 s;"
echo " threads: west's/east's pluto after the SAs are up, the most of any repeat: main thread, crypto helpers, waiting helpers)"
# cpu_budget CONFIG RATIO: for each all-at-once cell, how busy ppks kept
# the CPUs and what CPU per IKE SA the ratio leaves for what CONFIG adds.
# Where a burst keeps every CPU busy (the KMEs and kmstoreds run on the
# same ones as both plutos), its rate follows the CPU an IKE SA costs in
# all, C: a ratio r to ppks leaves C (1/r - 1) for the PPK's source.
cpu_budget() {
	local prop p
	for prop in "${props[@]}"; do
		p=$(pname "$prop")
		awk -v cell="$p all" -v r="$2" -v cpus="$(nproc)" -v rate="$(col "ppks.$p.all" 1)" \
			-v c0="$(col "ppks.$p.all" 3)" -v pl="$(col "$1.$p.all" 3)" \
			-v km="$(col "$1.$p.all" 4)" -v kd="$(col "$1.$p.all" 5)" 'BEGIN {
			printf "  %s: ppks kept %.2f of %d CPUs busy; %s leaves %.3f ms of CPU per IKE SA; it added %.3f (plutos %.3f, kme-sim %.3f, kmstoreds %.3f)\n",
				cell, rate * c0 / 1000, cpus, r, c0 * (1 / r - 1), pl - c0 + km + kd, pl - c0, km, kd }'
	done
}
for t in "qkd-pool 0.97" "qkd-uri 0.9" "static-uri 0.97"; do
	read -r config want <<<"$t"
	[[ " ${configs[*]} " == *" $config "* ]] || continue
	worst=9
	for prop in "${props[@]}"; do
		for mode in one all; do
			p=$(pname "$prop")
			worst=$(awk -v w="$worst" -v a="$(col "$config.$p.$mode" 1)" -v b="$(col "ppks.$p.$mode" 1)" \
				'BEGIN { r = b > 0 ? a / b : 0; print (r < w ? r : w) }')
		done
	done
	awk -v c="$config" -v w="$worst" -v t="$want" 'BEGIN { printf "%s over ppks, worst of the four cells: %.2f (target >= %s: %s)\n", c, w, t, (w >= t ? "met" : "NOT met") }'
	cpu_budget "$config" "$want"
done

# Memory: what a configuration costs once, and what each IKE SA keeps
echo
echo "== the plutos' memory: a burst of $n IKE SAs, then $n more (DH19)"
for rep in $(seq "$reps_main"); do
	for config in "${configs[@]}"; do
		rss_once "$config"
		R[$config.rss]+="$(cat "$IKE_LAB_DIR/result")|"
		printf '.' >&2
	done
done
echo >&2
printf '%-11s %15s %15s %15s %15s %7s\n' config 'start KiB w/e' 'first B/SA w/e' 'next B/SA w/e' 'next - ppks' failed
for config in "${configs[@]}"; do
	k=$config.rss
	printf '%-11s %15s %15s %15s %15s %7s\n' "$config" "$(col "$k" 1)/$(col "$k" 2)" \
		"$(col "$k" 3)/$(col "$k" 4)" "$(col "$k" 5)/$(col "$k" 6)" \
		"$(if [ -n "${R[ppks.rss]:-}" ]; then
			echo "$(($(col "$k" 5) - $(col ppks.rss 5)))/$(($(col "$k" 6) - $(col ppks.rss 6)))"
		else echo -; fi)" "$(sumcol "$k" 7)"
done
echo "(RSS of west's and east's pluto at start; its growth per IKE SA over the first burst (with what the"
echo " configuration adds once: helper threads, TLS connections, malloc arenas) and over the second, the"
echo " first still up (what each IKE SA keeps); medians)"
fi

# A far KME: every answer delayed. All at once, DH19.
if [ -z "${BENCH_NO_DELAY:-}" ]; then
	echo
	echo "== a far KME: kme-sim delays every answer; all SAs at once, DH19"
	declare -A D
	far_configs=${BENCH_FAR_CONFIGS:-qkd-uri qkd-pool}
	for delay in 0 5 20; do
		ike_lab_kmes_stop
		if [ "$delay" = 0 ]; then ike_lab_kmes_start "${kme_opts[@]}"; else
			ike_lab_kmes_start "${kme_opts[@]}" --fault "latency=$delay"; fi
		for config in $far_configs; do
			for rep in $(seq "$reps"); do
				case $config in
				*+*) IKE_LAB_SETUP=nhelpers=${config##*+} run_once "${config%+*}" "${props[0]}" all ;;
				*) run_once "$config" "${props[0]}" all ;;
				esac
				D[$config.$delay]+="$(awk '{ print $1 }' "$IKE_LAB_DIR/result") "
				printf '.' >&2
			done
		done
	done
	echo >&2
	med() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] + 0 }'; }
	printf '%-12s %10s %10s %10s %14s\n' config '0 ms' '5 ms' '20 ms' '20 ms / 0 ms'
	for config in $far_configs; do
		a=$(med <<<"${D[$config.0]}") b=$(med <<<"${D[$config.5]}") c=$(med <<<"${D[$config.20]}")
		printf '%-12s %10s %10s %10s %14.2f\n' "$config" "$a" "$b" "$c" "$(awk -v x="$c" -v y="$a" 'BEGIN { print (y > 0 ? x / y : 0) }')"
	done
	echo "(IKE SAs/s; CONFIG+N: both plutos with nhelpers=N; target for all at once with 20 ms: at least 0.8x of loopback)"
fi
if [ "$IKE_LAB_CRASHES" -gt 0 ]; then
	IKE_LAB_KEEP=1
	echo "WARNING: $IKE_LAB_CRASHES pluto(s) died of a signal; kept in $IKE_LAB_DIR/crash-*"
fi
