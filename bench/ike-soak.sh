#!/usr/bin/env bash
# bench/ike-soak.sh - the soak of the pluto face: many IKE SAs, one after
# another, between two patched plutos in network namespaces
# (tests/lib/ike-lab.sh), each taking a new QKD key through ppk-uri= and
# the kmstore PKCS#11 module from KMEs that misbehave now and then (as
# bench/run-soak.sh: 5% 503, 2% dropped connections, 1% malformed JSON).
# Does anything grow in pluto (memory, descriptors), does every IKE SA
# without a PPK have one of the injected causes, does pluto survive?
#
#   bash bench/ike-soak.sh [BUILD_DIR] [ROUNDS]     (as root)
#
# BUILD_DIR: a kmstore build tree whose libreswan/prefix holds the patched
# pluto [build/release]. ROUNDS: IKE SAs [1000]. Environment: SOAK_FAULTS
# kme-sim --fault options; SOAK_TIME_CAP seconds [600]; SOAK_WARMUP rounds
# before the baseline [100]; SOAK_RSS_BOUND kB of growth allowed per pluto
# after the warm-up [2048]; SOAK_PPK=ppks: the baseline, a PPKS entry of
# ipsec.secrets and no module (libreswan's own path, no KME); SOAK_VALGRIND=1:
# both plutos under valgrind memcheck (fewer rounds: RSS is valgrind's, so
# the verdict counts memcheck's errors instead); IKE_LAB_DAEMON=1: each
# pluto's module asks its side's kmstored (KMSTORED [BUILD_DIR's]), whose
# RSS and descriptors are held to the same bounds.
#
# One round: west initiates conn west-east (ppk=propose, ppk-uri=
# pkcs11:token=qkd; an IKE SA without a Child SA: this kernel has no ESP),
# then terminates it. With a key, both plutos use the PPK; when a fetch
# fails, ppk=propose goes on without one, and the module's log line says
# why. Prints rounds, IKE SAs with and without a PPK, the causes, what
# kme-sim injected, and each pluto's RSS and open descriptors at start,
# after the warm-up and at the end; exit 0 when: every round established
# an IKE SA, every failed fetch has an injected cause, no descriptor
# growth, RSS growth within the bound, no pluto died.
# shellcheck disable=SC2034 # IKE_LAB_KEEP is read by ike-lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
rounds=${2:-1000}
case $build in /*) ;; *) build=$PWD/$build ;; esac
prefix=$build/libreswan/prefix
module=$build/provider/pkcs11/kmstore-pkcs11.so
faults=${SOAK_FAULTS:---fault 503:5 --fault drop:2 --fault malformed:1}
cap=${SOAK_TIME_CAP:-600}
warmup=${SOAK_WARMUP:-100}
bound=${SOAK_RSS_BOUND:-2048}
# the module's messages for the injected faults (bench/run-soak.sh)
expect_log='HTTP 503|closed the connection without an answer|not valid JSON'
[ "$(id -u)" -eq 0 ] || { echo "bench/ike-soak: needs root (network namespaces)" >&2; exit 77; }
[ -x "$prefix/libexec/ipsec/pluto" ] || { echo "bench/ike-soak: no pluto in $prefix" >&2; exit 1; }
[ -f "$module" ] || { echo "bench/ike-soak: no $module" >&2; exit 1; }
[ "$warmup" -lt "$rounds" ] || warmup=$((rounds / 2))
export KMSTORED=${KMSTORED:-$build/kmstore/daemon/kmstored}
daemon=${IKE_LAB_DAEMON:-0}

# shellcheck source=../tests/lib/ike-lab.sh
. tests/lib/ike-lab.sh
ike_lab_init "$module" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki
trap ike_lab_down EXIT
ike_lab_up 2>"$IKE_LAB_DIR/up.err" || { echo "bench/ike-soak: no network namespaces: $(cat "$IKE_LAB_DIR/up.err")" >&2; exit 77; }
# shellcheck disable=SC2086 # $faults is a list of options
ike_lab_kmes_start --pool-size $((2 * rounds + 100)) $faults
ppk=${SOAK_PPK:-qkd}
if [ "${SOAK_VALGRIND:-0}" = 1 ]; then
	bound=100000000
	IKE_LAB_WRAPPER="valgrind --child-silent-after-fork=yes --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=20 --log-file=$IKE_LAB_DIR/valgrind.%p.log"
fi
for side in west east; do
	if [ "$ppk" = ppks ]; then
		ike_lab_side $side "$prefix" '' 'ppk=propose' \
			"@west @east : PPKS \"PPK_ID_1\" 0x$(kme_env_hex "$IKE_LAB_DIR/kme/static.key")"
	else
		ike_lab_side $side "$prefix" "$IKE_LAB_DIR/kme/$side.conf" $'ppk=propose\nppk-uri=pkcs11:token=qkd'
	fi
	ike_lab_start $side
done
ike_lab_whack west --impair omit_v2_ike_auth_child >/dev/null
ike_lab_whack west --impair revival >/dev/null

# SIDE: its pluto; SIDE-kmstored: its kmstored
pid_of() {
	case $1 in
	*-kmstored) kmstored_pid "$(ike_lab_kmstored "${1%-kmstored}")" ;;
	*) cat "$IKE_LAB_DIR/$1/pid" ;;
	esac
}
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$(pid_of "$1")/status"; }
# a connection just closed may take a moment to close in kmstored: the
# least of a few counts
fds() {
	local i n min=
	for i in 1 2 3 4 5; do
		n=$(find "/proc/$(pid_of "$1")/fd" -mindepth 1 | wc -l)
		[ -n "$min" ] && [ "$min" -le "$n" ] || min=$n
		[ "$daemon" = 1 ] || break
		sleep 0.02
	done
	echo "$min"
}
snap() {
	echo "$(rss_kb west) $(fds west) $(rss_kb east) $(fds east)"
	if [ "$daemon" = 1 ]; then
		echo "$(rss_kb west-kmstored) $(fds west-kmstored) $(rss_kb east-kmstored) $(fds east-kmstored)"
	else
		echo "0 0 0 0"
	fi
}

{ read -r rw0 fw0 re0 fe0; read -r kw0 gw0 ke0 ge0; } < <(snap)
t0=$SECONDS done=0 failed=0
while [ $done -lt "$rounds" ] && [ $((SECONDS - t0)) -lt "$cap" ]; do
	ike_lab_whack west --initiate --name west-east >/dev/null 2>&1 || failed=$((failed + 1))
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1 || true
	done=$((done + 1))
	[ $done -ne "$warmup" ] || { read -r rw1 fw1 re1 fe1; read -r kw1 gw1 ke1 ge1; } < <(snap)
	# halfway from the warm-up: does growth level off?
	[ $done -ne $(((warmup + rounds) / 2)) ] || { read -r rwm fwm rem fem; read -r kwm gwm kem gem; } < <(snap)
done
secs=$((SECONDS - t0))
sleep 0.5 # the last deletes
{ read -r rw2 fw2 re2 fe2; read -r kw2 gw2 ke2 ge2; } < <(snap)
: "${rw1:=$rw0}" "${fw1:=$fw0}" "${re1:=$re0}" "${fe1:=$fe0}"
: "${rwm:=$rw2}" "${fwm:=$fw2}" "${rem:=$re2}" "${fem:=$fe2}"
: "${kw1:=$kw0}" "${gw1:=$gw0}" "${ke1:=$ke0}" "${ge1:=$ge0}"
: "${kwm:=$kw2}" "${gwm:=$gw2}" "${kem:=$ke2}" "${gem:=$ge2}"

log() { cat "$IKE_LAB_DIR/$1/pluto.log"; }
established=$(log west | grep -c 'initiator established IKE SA' || true)
with_ppk=$(log east | grep -c 'PPK AUTH calculated as responder' || true)
no_ppk_w=$(log west | grep -c 'ppk-uri=[^ ]*: no PPK for this IKE SA' || true)
no_ppk_e=$(log east | grep -c 'ppk-uri=[^ ]*: no PPK for received' || true)
module_errors() { log "$1" | grep '^kmstore-pkcs11: \(error\|warning\):' || true; }
unexpected=$( { module_errors west; module_errors east; } | grep -vcE "$expect_log" || true)
cause() { { module_errors west; module_errors east; } | grep -c "$1" || true; }

echo "ike-soak: PPK from $ppk$([ "$daemon" = 1 ] && echo " through kmstored")${IKE_LAB_WRAPPER:+, plutos under valgrind}: $done rounds in $secs s ($(awk -v n=$done -v s=$secs 'BEGIN { printf "%.1f", n / (s ? s : 1) }') IKE SAs/s), faults: $faults"
echo "IKE SAs established: $established of $done (whack failed $failed); with a PPK: $with_ppk; without (ppk=propose): initiator's fetch failed $no_ppk_w, responder's $no_ppk_e"
echo "module, causes of failed fetches: $(cause 'HTTP 503') HTTP 503, $(cause 'closed the connection') dropped, $(cause 'not valid JSON') malformed, $unexpected other"
echo "kme-sim: $(kme_env_requests "$IKE_LAB_DIR/kme/kme-sim.log")"
printf '%-22s %8s %8s %8s %8s   %s\n' process start warm-up halfway end 'growth: first half, second half'
row() { printf '%-22s %8s %8s %8s %8s   %+d, %+d\n' "$1" "$2" "$3" "$4" "$5" $(($4 - $3)) $(($5 - $4)); }
row 'west RSS kB' "$rw0" "$rw1" "$rwm" "$rw2"
row 'west fds' "$fw0" "$fw1" "$fwm" "$fw2"
row 'east RSS kB' "$re0" "$re1" "$rem" "$re2"
row 'east fds' "$fe0" "$fe1" "$fem" "$fe2"
if [ "$daemon" = 1 ]; then
	row 'west kmstored RSS kB' "$kw0" "$kw1" "$kwm" "$kw2"
	row 'west kmstored fds' "$gw0" "$gw1" "$gwm" "$gw2"
	row 'east kmstored RSS kB' "$ke0" "$ke1" "$kem" "$ke2"
	row 'east kmstored fds' "$ge0" "$ge1" "$gem" "$ge2"
fi

ike_lab_stop
why=()
if [ -n "${IKE_LAB_WRAPPER:-}" ]; then
	# memcheck's own errors (invalid reads and writes, uninitialised
	# values) and definite leaks, per pluto
	for f in "$IKE_LAB_DIR"/valgrind.*.log; do
		n=$(grep -c '^==[0-9]*== \(Invalid\|Conditional\|Use of uninit\|Syscall param\)' "$f" || true)
		[ -s "$f" ] || continue
		lost=$(grep -c 'definitely lost in' "$f" || true)
		echo "valgrind $(basename "$f"): $n memory errors, $lost definite leak records;" \
			"$(grep -o 'definitely lost: .*' "$f" || echo 'no leak summary')"
		[ "$n" -eq 0 ] || why+=("valgrind: $n memory errors in $f")
		grep -q 'ERROR SUMMARY' "$f" || why+=("valgrind: $f has no summary (pluto killed?)")
		[ "$lost" -eq 0 ] || grep -A12 'definitely lost in' "$f" | head -n 40
	done
fi
[ "$established" -eq "$done" ] || why+=("$((done - established)) rounds without an IKE SA")
[ "$unexpected" -eq 0 ] || why+=("$unexpected failed fetches of a cause not injected")
[ "$((with_ppk + no_ppk_w + no_ppk_e))" -ge "$done" ] || why+=("rounds neither with a PPK nor with a logged failure")
[ "$fw2" -le "$fw1" ] && [ "$fe2" -le "$fe1" ] || why+=("descriptors grew")
[ $((rw2 - rw1)) -le "$bound" ] && [ $((re2 - re1)) -le "$bound" ] || why+=("RSS grew by more than $bound kB")
[ "$gw2" -le "$gw1" ] && [ "$ge2" -le "$ge1" ] || why+=("kmstored's descriptors grew")
[ $((kw2 - kw1)) -le "$bound" ] && [ $((ke2 - ke1)) -le "$bound" ] || why+=("kmstored's RSS grew by more than $bound kB")
[ "$IKE_LAB_CRASHES" -eq 0 ] || why+=("$IKE_LAB_CRASHES pluto(s) died of a signal")
if [ ${#why[@]} -eq 0 ]; then
	echo "verdict: ok"
else
	IKE_LAB_KEEP=1 # read by ike_lab_down (the EXIT trap)
	echo "verdict: FAIL: ${why[*]} (logs kept in $IKE_LAB_DIR)"
	{ module_errors west; module_errors east; } | grep -vE "$expect_log" | head -n 5
	exit 1
fi
