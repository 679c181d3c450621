#!/usr/bin/env bash
# bench/ike.sh - IKE SAs per second between two patched plutos in network
# namespaces (tests/lib/ike-lab.sh), with the PPK from a PPKS entry of
# ipsec.secrets (libreswan's own path) and from a QKD ppk-uri= (the kmstore
# PKCS#11 module, kme-sim over mutual TLS), established one after another
# and P at a time; the ratio QKD / PPKS; pluto's RSS with and without the
# module. A benchmark, not a test: it prints figures (run it on a quiet
# machine, as root).
#
#   bash bench/ike.sh [BUILD_DIR] [N] [P]
#
# BUILD_DIR: a kmstore build tree whose libreswan/prefix holds the patched
# pluto (ctest's ike_build, or libreswan-patches/build.sh BUILD_DIR/libreswan)
# [build/release]. N: IKE SAs per run [200]. P: initiations in flight in the
# parallel runs [4].
#
# Each run starts fresh plutos with N connections c1..cN (own IDs, PSK
# authentication, ppk=insist) and has west initiate each once (an IKE SA
# without a Child SA: this kernel has no ESP); it counts from the first
# initiation to the last IKE SA established, whack's own cost included
# (the same in every configuration). Configurations:
#   ppks         PPKS "PPK_ID_1" in ipsec.secrets, no module in NSS
#   ppks+module  the same, the module loaded (its tokens unused)
#   qkd          ppk-uri=pkcs11:token=qkd: a new QKD key per IKE SA
#                (enc_keys at west's KME, dec_keys at east's)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${1:-build/release}
n=${2:-200}
par=${3:-4}
case $build in /*) ;; *) build=$top/$build ;; esac
prefix=$build/libreswan/prefix
module=$build/provider/pkcs11/kmstore-pkcs11.so
[ "$(id -u)" -eq 0 ] || { echo "bench/ike: needs root (network namespaces)" >&2; exit 1; }
[ -x "$prefix/libexec/ipsec/pluto" ] || { echo "bench/ike: no pluto in $prefix (libreswan-patches/build.sh $build/libreswan)" >&2; exit 1; }
[ -f "$module" ] || { echo "bench/ike: no $module (build kmstore first)" >&2; exit 1; }

# shellcheck source=../tests/lib/ike-lab.sh
. tests/lib/ike-lab.sh
ike_lab_init "$module" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki
trap ike_lab_down EXIT
ike_lab_up
ike_lab_kmes_start --pool-size $((4 * n + 100))
ppk_hex=$(kme_env_hex "$IKE_LAB_DIR/kme/static.key")

conns() { # SIDE PPK_OPTION: conns c1..cN
	local side=$1 opt=$2 i me=w peer=e ma=192.0.2.1 pa=192.0.2.2
	[ "$side" = west ] || { me=e peer=w ma=192.0.2.2 pa=192.0.2.1; }
	for i in $(seq "$n"); do
		printf 'conn c%d\n\tleft=%s\n\tleftid=@%s%d\n\tright=%s\n\trightid=@%s%d\n' \
			"$i" $ma $me "$i" $pa $peer "$i"
		printf '\tauthby=secret\n\tkeyexchange=ikev2\n\tppk=insist\n\t%s\n' "$opt"
	done
}
secrets() { # ppks|psk: lines for c1..cN
	local i
	for i in $(seq "$n"); do
		echo "@w$i @e$i : PSK \"bench pre-shared key $i\""
		[ "$1" = psk ] || echo "@w$i @e$i : PPKS \"PPK_ID_1\" 0x$ppk_hex"
	done
}

setup() { # CONFIG
	local side conf opt kind=ppks
	for side in west east; do
		case $1 in
		ppks) conf='' opt='# PPKS in ipsec.secrets' ;;
		ppks+module) conf=$IKE_LAB_DIR/kme/$side.conf opt='# PPKS in ipsec.secrets' ;;
		qkd) conf=$IKE_LAB_DIR/kme/$side.conf opt='ppk-uri=pkcs11:token=qkd' kind=psk ;;
		esac
		ike_lab_side $side "$prefix" "$conf" 'ppk=insist' "$(secrets $kind)" "$(conns $side "$opt")"
	done
	ike_lab_start west && ike_lab_start east
	ike_lab_whack west --impair omit_v2_ike_auth_child >/dev/null
	ike_lab_whack west --impair revival >/dev/null
}

rss_kib() { # SIDE
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$(cat "$IKE_LAB_DIR/$1/pid")/status"
}

now() { date +%s.%N; }

# initiate.sh I WHACK...: west initiates c<I> (whack returns once the IKE
# SA is established or has failed); xargs runs it
initiate=$IKE_LAB_DIR/initiate.sh
cat >"$initiate" <<'EOF'
#!/bin/sh
i=$1
shift
exec "$@" --initiate --name "c$i" >/dev/null 2>&1
EOF
chmod +x "$initiate"

# run_once CONFIG P: writes "rate failed no-ppk rss_idle_w rss_idle_e
# rss_after_w rss_after_e" to $IKE_LAB_DIR/result
run_once() {
	local config=$1 p=$2 t0 t1 ok ppk rw re
	setup "$config"
	rw=$(rss_kib west) re=$(rss_kib east)
	t0=$(now)
	seq "$n" | xargs -P "$p" -I{} "$initiate" {} \
		"$prefix/libexec/ipsec/whack" --rundir "$IKE_LAB_DIR/west/run" || true
	t1=$(now)
	sleep 0.3
	ok=$(grep -c 'initiator established IKE SA' "$IKE_LAB_DIR/west/pluto.log" || true)
	ppk=$(grep -c 'PPK AUTH calculated as responder' "$IKE_LAB_DIR/east/pluto.log" || true)
	awk -v a="$t0" -v b="$t1" -v ok="$ok" -v ppk="$ppk" -v n="$n" \
		-v rw="$rw" -v re="$re" -v aw="$(rss_kib west)" -v ae="$(rss_kib east)" \
		'BEGIN { printf "%.1f %d %d %d %d %d %d\n", ok / (b - a), n - ok, n - ppk, rw, re, aw, ae }' \
		>"$IKE_LAB_DIR/result"
	ike_lab_stop
}

# fetch_ms SIDE: median and 90th percentile, in ms, of the time from
# "initiating IKE_AUTH" (west) or "processing decrypted IKE_AUTH" (east) to
# the "ppk-uri=...: using" line of the same IKE SA: the PPK fetch through
# the module, including the helper-thread hop
fetch_ms() {
	awk -v side="$1" '
	function secs(t, f) { split(t, f, ":"); return f[1] * 3600 + f[2] * 60 + f[3] }
	{ sa = $5 }	# the IKE SA'"'"'s serial; the responder may switch connections
	side == "west" && /initiating IKE_AUTH/ { start[sa] = secs($3) }
	side == "east" && /processing decrypted IKE_AUTH request/ { start[sa] = secs($3) }
	/ppk-uri=[^ ]*: using/ && (sa in start) { printf "%.3f\n", (secs($3) - start[sa]) * 1000 }
	' "$IKE_LAB_DIR/$1/pluto.log" | sort -g |
		awk '{ v[NR] = $1 } END { i = int(NR * 0.9); if (i < 1) i = 1; if (NR == 0) print "- -"; else print v[int((NR + 1) / 2)], v[i] }'
}

rounds=${ROUNDS:-3}
configs=(ppks ppks+module qkd)
modes=(sequential parallel)
echo "bench/ike: $n IKE SAs per run, one at a time and $par in flight, $rounds rounds (configurations interleaved); $(nproc) CPUs"
declare -A rates fails rss_idle rss_after
for round in $(seq "$rounds"); do
	for config in "${configs[@]}"; do
		for mode in "${modes[@]}"; do
			p=1
			[ $mode = sequential ] || p=$par
			run_once $config $p
			read -r r f np rw re aw ae <"$IKE_LAB_DIR/result"
			rates[$config.$mode]+="$r "
			fails[$config.$mode]=$((${fails[$config.$mode]:-0} + f + np))
			rss_idle[$config]="$rw/$re" rss_after[$config]="$aw/$ae"
			if [ $config = qkd ] && [ $mode = sequential ] && [ "$round" = 1 ]; then
				read -r fw_med fw_p90 < <(fetch_ms west) || true
				read -r fe_med fe_p90 < <(fetch_ms east) || true
			fi
		done
	done
	printf '.' >&2
done
echo >&2
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
range() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
declare -A med
printf '%-12s %-10s %10s %13s %7s\n' config mode 'IKE SA/s' '(min-max)' failed
for config in "${configs[@]}"; do
	for mode in "${modes[@]}"; do
		med[$config.$mode]=$(median <<<"${rates[$config.$mode]}")
		printf '%-12s %-10s %10s %13s %7s\n' $config $mode "${med[$config.$mode]}" \
			"($(range <<<"${rates[$config.$mode]}"))" "${fails[$config.$mode]}"
	done
done
for mode in "${modes[@]}"; do
	awk -v q="${med[qkd.$mode]}" -v s="${med[ppks.$mode]}" -v m=$mode \
		'BEGIN { r = q / s; printf "ratio qkd / ppks, %s: %.2f (target >= 0.9: %s)\n", m, r, (r >= 0.9 ? "met" : "NOT met") }'
done
echo "QKD fetch per IKE SA (round 1, one at a time): west (enc_keys) median $fw_med ms, p90 $fw_p90 ms; east (dec_keys) median $fe_med ms, p90 $fe_p90 ms"
echo "pluto RSS, west/east KiB, idle after start / after $n IKE SAs:"
for config in "${configs[@]}"; do
	printf '  %-12s %s / %s\n' $config "${rss_idle[$config]}" "${rss_after[$config]}"
done
if [ "$IKE_LAB_CRASHES" -gt 0 ]; then
	IKE_LAB_KEEP=1
	echo "WARNING: $IKE_LAB_CRASHES pluto(s) died of a signal; kept in $IKE_LAB_DIR/crash-*"
fi
