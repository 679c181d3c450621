#!/usr/bin/env bash
# run-soak.sh - bench/soak against two kme-sim KMEs on 127.0.0.1 that fail
# now and then (5% 503, 2% dropped connections, 1% malformed JSON): first
# through libkmstore, then through the PKCS#11 module in NSS, then through
# the OpenSSL provider (OSSL_STORE in-process); then the same three through
# kmstored (faces daemon-lib, daemon-nss, daemon-ossl: one kmstored serves
# them all, and its RSS and descriptors are held to the same bounds); then
# a shorter run of each under valgrind memcheck (for the daemon faces,
# kmstored runs under it). Prints the figures.
#
# Usage: bash bench/run-soak.sh [BUILD_DIR] [ROUNDS]   (build/release, 5000)
# Environment: SOAK_TIME_CAP seconds per face [600]; SOAK_FAULTS kme-sim
# --fault options; SOAK_VALGRIND=0 skips valgrind, SOAK_VALGRIND_ROUNDS
# [150]; SOAK_FACES [lib, then nss and ossl where P11_MODULE and the
# provider exist, then daemon-FACE for each where KMSTORED exists]; SOAK_RSS_BOUND kB [1024] (ASan's quarantine grows RSS:
# the ASan build checks leaks at exit instead); SOAK_PRELOAD the ASan
# runtime in a sanitizer build. SOAK, KME_SIM, KME_SIM_PKI, P11_MODULE,
# KMSTORE_PROVIDER_DIR default to the build tree. The ctest soak_short
# runs this with SOAK_ROUNDS=300 and no valgrind: exit 0 only when every
# face's verdict is ok and the module logged nothing but injected causes.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$src/build/release}")
rounds=${2:-${SOAK_ROUNDS:-5000}}
SOAK=${SOAK:-$build/bench/soak}
KME_SIM=${KME_SIM:-$build/tests/kme-sim/kme-sim}
KME_SIM_PKI=${KME_SIM_PKI:-$src/tests/kme-sim/kme-sim-pki}
P11_MODULE=${P11_MODULE:-$build/provider/pkcs11/kmstore-pkcs11.so}
KMSTORE_PROVIDER_DIR=${KMSTORE_PROVIDER_DIR:-$build/provider/openssl}
KMSTORED=${KMSTORED:-$build/kmstore/daemon/kmstored}
cap=${SOAK_TIME_CAP:-600}
faults=${SOAK_FAULTS:---fault 503:5 --fault drop:2 --fault malformed:1}
# What those faults look like: libkmstore's message classes (soak.c), the
# NSS errors they become, and the provider's reasons with those classes.
expect_lib=503,drop,malformed
expect_nss=SEC_ERROR_PKCS11_FUNCTION_FAILED,SEC_ERROR_PKCS11_DEVICE_ERROR
expect_ossl='KME error (503),KME unreachable (drop),KME error (malformed)'
expect_log='HTTP 503|closed the connection without an answer|not valid JSON'
faces=lib
[[ -f $P11_MODULE ]] && faces+=" nss"
[[ -f $KMSTORE_PROVIDER_DIR/kmstore.so ]] && faces+=" ossl"
[[ -x $KMSTORED ]] && faces+=" $(printf 'daemon-%s ' $faces)"
faces=${SOAK_FACES:-$faces}
vg_rounds=${SOAK_VALGRIND_ROUNDS:-150}
rss_bound=${SOAK_RSS_BOUND:-1024}

work=$(mktemp -d /tmp/soak.XXXXXX)
. "$src/tests/lib/kme-env.sh"
. "$src/tests/lib/kmstored-env.sh"
sock=$work/kmstored.sock
trap 'kmstored_stop "$sock" KILL; kme_env_stop; rm -rf "$work"' EXIT
# shellcheck disable=SC2086 # $faults is a list of options
kme_env_start "$work/lab" "$KME_SIM" "$KME_SIM_PKI" --pool-size 2000 $faults >/dev/null

# One configuration with both sites: profiles (tokens) west and east.
conf=$work/soak.conf
kme_env_both_sites "$conf"
# The daemon faces' client configuration.
echo "daemon = $sock" >"$work/client.conf"
chmod 600 "$work/client.conf"

# modutil loads the module: in a sanitizer build it needs the ASan
# runtime preloaded (SOAK_PRELOAD), as it is not instrumented.
tool() {
	if [[ -n ${SOAK_PRELOAD:-} ]]; then
		LD_PRELOAD=$SOAK_PRELOAD ASAN_OPTIONS=detect_leaks=0 "$@"
	else
		"$@"
	fi
}
nss_db() { # DIR SOURCE (config=FILE or daemon=SOCKET)
	mkdir -p "$1"
	tool certutil -N -d "sql:$1" --empty-password
	echo | tool modutil -dbdir "sql:$1" -add kmstore -libfile "$(realpath "$P11_MODULE")" \
		-string "$2 log=stderr log-level=warning" -force >/dev/null 2>&1
}

# kmstored for the daemon faces, under WRAPPER... if given (valgrind).
daemon_up() {
	kmstored_stop "$sock"
	kmstored_start "$sock" "$conf" "$@"
}

status=0
# run_face FACE N [WRAPPER...]: one soak; its stderr (the module's log)
# classified; the figures on stdout.
run_face() {
	local face=$1 n=$2 target expect log=$work/$1.log rc=0 bound=$rss_bound
	local base=${1#daemon-} source="config=$conf" client=$conf watch=() dwrap=()
	shift 2
	# Under valgrind RSS is valgrind's: only descriptors and errors count.
	[[ $# -gt 0 ]] && bound=10000000
	if [[ $face == daemon-* ]]; then
		# the client runs as it is; kmstored under the wrapper, if any
		[[ $# -gt 0 ]] && dwrap=("$@" --log-file="$work/kmstored-vg.log")
		set --
		if ! daemon_up "${dwrap[@]}"; then
			status=1
			return
		fi
		source="daemon=$sock" client=$work/client.conf
		[[ ${#dwrap[@]} -gt 0 ]] || watch=(-P "$(kmstored_pid "$sock")")
	fi
	if [[ $base == lib ]]; then
		target=$client expect=$expect_lib
	elif [[ $base == ossl ]]; then
		target=$client expect=$expect_ossl
	else
		target=$work/nss-$face expect=$expect_nss
		if [[ ! -d $target ]] && ! nss_db "$target" "$source"; then
			echo "run-soak: cannot register the module in an NSS database"
			status=1
			return
		fi
	fi
	echo "== $face: $n rounds${1:+ under $1}${dwrap:+ (kmstored under ${dwrap[0]})}, faults: $faults"
	local seen
	seen=$(wc -l <"$KME_DIR/kme-sim.log")
	"$@" "$SOAK" --face "$base" -n "$n" -t "$cap" -r "$bound" -e "$expect" \
		-p "$KMSTORE_PROVIDER_DIR" "${watch[@]}" -q "$target" 2>"$log" || rc=$?
	# What kme-sim injected (one log line per request; retries included).
	tail -n "+$((seen + 1))" "$KME_DIR/kme-sim.log" >"$work/sim.log"
	echo "kme-sim: $(kme_env_requests "$work/sim.log")"
	if [[ $# -gt 0 ]]; then
		echo "valgrind (exit $rc): $(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$log" |
			sed 's/^==[0-9]*== *//' | tr '\n' ';' | sed 's/;$//')"
	fi
	if [[ $face == daemon-* ]]; then
		# kmstored logs each failure as the library gave it: its causes.
		kmstored_stop "$sock"
		local dtotal dmatched
		dtotal=$(grep -c 'error:' "$sock.log" || true)
		dmatched=$(grep 'error:' "$sock.log" | grep -cE "$expect_log" || true)
		echo "kmstored log: $dtotal error lines, $dmatched of the injected causes"
		if [[ $dtotal -ne $dmatched ]]; then
			echo "kmstored log: unexpected causes:"
			grep 'error:' "$sock.log" | grep -vE "$expect_log" | head -5
			rc=1
		fi
		if [[ ${#dwrap[@]} -gt 0 ]]; then
			echo "kmstored under valgrind: $(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$work/kmstored-vg.log" |
				sed 's/^==[0-9]*== *//' | tr '\n' ';' | sed 's/;$//')"
			grep -q 'ERROR SUMMARY: 0 errors' "$work/kmstored-vg.log" || rc=1
			rm -f "$work/kmstored-vg.log"
		fi
	fi
	# The module logs each failure with libkmstore's message: its causes.
	local total matched
	total=$(grep -c '^kmstore-pkcs11: \(error\|warning\):' "$log" || true)
	matched=$(grep '^kmstore-pkcs11: \(error\|warning\):' "$log" | grep -cE "$expect_log" || true)
	if [[ $base == nss ]]; then
		echo "module log: $total error lines, $matched of the injected causes" \
			"($(grep -c 'HTTP 503' "$log" || true) HTTP 503," \
			"$(grep -c 'closed the connection' "$log" || true) dropped," \
			"$(grep -c 'not valid JSON' "$log" || true) malformed)"
		if [[ $total -ne $matched ]]; then
			echo "module log: unexpected causes:"
			grep '^kmstore-pkcs11: \(error\|warning\):' "$log" | grep -vE "$expect_log" | head -5
			rc=1
		fi
	fi
	# Anything else on stderr (a sanitizer's report; valgrind's chatter
	# is summed up above).
	if [[ $# -gt 0 ]]; then
		grep -v '^kmstore-pkcs11: \|^==[0-9]*==' "$log" | tail -25 || true
	else
		grep -v '^kmstore-pkcs11: ' "$log" | tail -25 || true
	fi
	[[ $rc -eq 0 ]] || status=1
	echo
}

for face in $faces; do
	run_face "$face" "$rounds"
done

if [[ ${SOAK_VALGRIND:-1} != 0 ]] && command -v valgrind >/dev/null; then
	for face in $faces; do
		run_face "$face" "$vg_rounds" valgrind --error-exitcode=9 \
			--leak-check=full --errors-for-leak-kinds=definite \
			--show-leak-kinds=definite
	done
fi
exit $status
