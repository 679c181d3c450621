#!/usr/bin/env bash
# test_hygiene.sh - keys never leave the key store except when asked for.
#
# Runs every face (the kmstore command with every subcommand, --json and
# errors; the OpenSSL provider through openssl storeutl and pkey; the
# PKCS#11 module through NSS, logging at info level to stderr and, with
# log=syslog, to syslog; the module through kmstored, kmstored's log with
# the cell's output) with a known static key, an inline key, and QKD
# keys whose bytes are learnt at the other site with an explicit
# `kmstore key --reveal hex`; then KMEs with faults that put keys in bad
# answers. Every stdout, stderr, syslog line and kme-sim log is searched
# for every key (tests/hygiene/scan_secrets.py: hex either case, base64,
# raw, any 8-byte stretch; and for anything key-shaped), except the
# --reveal outputs, which the scanner must flag (it works). Then processes
# holding a key (hold_key, through libkmstore and through the module):
# VmLck shows the key memory locked, a core dump (gcore) holds no copy of
# the key (the arena is MADV_DONTDUMP, TLS and HTTP buffers are wiped); and
# without CAP_IPC_LOCK under `ulimit -l 0` each face warns that keys may be
# swapped. Wiping freed keys is tested by tests/unit/test_secmem.c; files
# readable by others are refused by tests/cli/test_cli.sh and
# provider/openssl/tests/errors.sh.
#
# Environment: as tests/faults/faces.sh, plus KME_SIM, KME_SIM_PKI,
# HOLD_KEY and SYSLOG_CAPTURE_LIB (tests/hygiene/CMakeLists.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
. "$here/../lib/kme-env.sh"
. "$here/../faults/faces.sh"
: "${KMSTORE:?}" "${KME_SIM:?}" "${KME_SIM_PKI:?}" "${HOLD_KEY:?}"
scan="python3 $here/scan_secrets.py"

work=$(mktemp -d /tmp/hygiene.XXXXXX)
holders=()
cleanup() {
	local p
	for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done
	kme_env_stop
	[[ -n ${HYGIENE_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
out=$work/out          # scanned: must hold no key
revealed=$work/revealed # what --reveal printed: must hold the key
sec=$work/secrets      # every key the test knows, in hex
cores=$work/cores
mkdir -p "$out" "$revealed" "$sec" "$cores"

faces_available
export KME_TIMEOUT=2
# shellcheck disable=SC2034 # read by faces.sh
FACE_P11_PARAMS="log-level=info"
"$KME_SIM_PKI" "$work/pki" >"$work/pki.log" 2>&1
pki_copy() { cp -a "$work/pki" "$1"; } # kme-env.sh calls "$pki" DIR
kme_env_start "$work/lab" "$KME_SIM" pki_copy -v >/dev/null
faces_init "$work/faces"
# The static key outside the lab, which is made afresh per fault below.
cp "$KME_DIR/static.key" "$work/static.key"

# Both sites get a third profile with an inline key (the configuration
# file holds the key itself).
head -c 48 /dev/urandom >"$work/inline.key"
inline_hex=$(kme_env_hex "$work/inline.key")
kme_env_hex "$work/static.key" >"$sec/static"
echo "$inline_hex" >"$sec/inline"
for side in west east; do
	sed "s|file:$KME_DIR/static.key|file:$work/static.key|" "$KME_DIR/$side.conf" \
		>"$work/faces/$side.conf"
	printf '\n[inline]\ntype   = static\nkey-id = INLINE_1\nkey    = hex:%s\n' \
		"$inline_hex" >>"$work/faces/$side.conf"
	chmod 600 "$work/faces/$side.conf"
done
W=$work/faces/west.conf E=$work/faces/east.conf

n_rec=0
# record NAME CMD...: stdout and stderr into $out (bounded in time).
record() {
	local name=$1
	shift
	n_rec=$((n_rec + 1))
	timeout -k 2 30 "$@" >"$out/$name.out" 2>"$out/$name.err" || true
}
# reveal NAME CMD...: stdout into $revealed (it holds the key), stderr
# into $out.
reveal() {
	local name=$1
	shift
	timeout -k 2 30 "$@" >"$revealed/$name.out" 2>"$out/$name.err" || true
}
field() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
# learn NAME ID: that QKD key's bytes, revealed at east (dec_keys).
learn() {
	reveal "learn-$1" "$KMSTORE" -c "$E" key qkd --key-id "$2" --reveal hex
	field key "$revealed/learn-$1.out" >"$sec/$1"
	[[ -s $sec/$1 ]] || tap_not_ok "learn the bytes of QKD key $2 ($1)" \
		"$(cat "$revealed/learn-$1.out" "$out/learn-$1.err")"
}
# The same at west, when east took the key first: a key from west,
# revealed, and its ID.
west_revealed() { # NAME: prints the key ID
	reveal "$1" "$KMSTORE" -c "$W" key qkd --reveal hex
	field key "$revealed/$1.out" >"$sec/$1"
	field key-id "$revealed/$1.out"
}

# --- the kmstore command ----------------------------------------------
for j in "" --json; do
	t=${j:+-json}
	record "cmd-profiles$t" "$KMSTORE" -c "$W" $j profiles
	record "cmd-check$t" "$KMSTORE" -c "$W" $j check
	record "cmd-status-qkd$t" "$KMSTORE" -c "$W" $j status qkd
	record "cmd-status-static$t" "$KMSTORE" -c "$W" $j status static
	record "cmd-key-static$t" "$KMSTORE" -c "$W" $j key static
	record "cmd-key-inline$t" "$KMSTORE" -c "$W" $j key inline
	record "cmd-key-uri$t" "$KMSTORE" -c "$W" $j key "kmstore:profile=static;key-id=STATIC_PPK_1"
	record "cmd-key-static-wrong-id$t" "$KMSTORE" -c "$W" $j key static --key-id NOPE --reveal hex
	record "cmd-key-nope$t" "$KMSTORE" -c "$W" $j key nope
	record "cmd-bad-uri$t" "$KMSTORE" -c "$W" $j key "kmstore:profile=static;kid=1"
	# QKD: west's key for use now, learnt at east.
	record "cmd-enc$t" "$KMSTORE" -c "$W" $j key qkd
	id=$(grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' "$out/cmd-enc$t.out" | head -1)
	learn "cmd-enc$t" "$id"
	# ... and east's key by ID, revealed at west first.
	id=$(west_revealed "cmd-west$t")
	record "cmd-dec$t" "$KMSTORE" -c "$E" $j key qkd --key-id "$id"
	record "cmd-dec-again$t" "$KMSTORE" -c "$E" $j key qkd --key-id "$id" --reveal base64
done
reveal cmd-reveal-static-hex "$KMSTORE" -c "$W" key static --reveal hex
reveal cmd-reveal-static-b64 "$KMSTORE" -c "$W" key static --reveal base64
reveal cmd-reveal-inline-json "$KMSTORE" -c "$W" --json key inline --reveal base64
# Configurations whose key is broken: the error must not quote it.
bad() { # NAME KEY-VALUE [LINE]: the inline key's line is "key    = KEY-VALUE", or LINE
	local line=${3:-"key    = $2"}
	sed "s|^key    = hex:.*|$line|" "$W" >"$work/bad.conf"
	chmod 600 "$work/bad.conf"
	record "cmd-conf-$1" "$KMSTORE" -c "$work/bad.conf" key inline
	record "cmd-conf-$1-check" "$KMSTORE" -c "$work/bad.conf" --json check
}
bad bad-digit "hex:${inline_hex:0:60}zz${inline_hex:62}"
bad odd-length "hex:${inline_hex}0"
bad too-long "hex:${inline_hex}${inline_hex}${inline_hex}${inline_hex}${inline_hex}${inline_hex}"
bad bad-base64 "base64:$(base64 -w0 <"$work/inline.key" | cut -c1-30)!!"
bad no-prefix "$inline_hex"
# the '=' of base64 padding taken for the separator: "key base64:...="
bad missing-equals "" "key base64:$(base64 -w0 <"$work/inline.key" | cut -c1-63)="
expect_match "hex|key" "$(cat "$out/cmd-conf-bad-digit.err")" "a broken inline key is an error naming the setting"

# --- the OpenSSL provider ---------------------------------------------
if [[ " ${FACES[*]} " == *" openssl "* ]]; then
	ossl_w=(env KMSTORE_CONF="$W" "${FACE_PRELOAD[@]}" "$OPENSSL")
	ossl_e=(env KMSTORE_CONF="$E" "${FACE_PRELOAD[@]}" "$OPENSSL")
	prov=(-provider-path "$KMSTORE_PROVIDER_DIR" -provider kmstore -provider default)
	record ossl-list "${ossl_w[@]}" storeutl "${prov[@]}" kmstore:
	record ossl-static "${ossl_w[@]}" storeutl "${prov[@]}" -text kmstore:profile=static
	record ossl-inline "${ossl_w[@]}" storeutl "${prov[@]}" -text kmstore:profile=inline
	record ossl-pkey "${ossl_w[@]}" pkey "${prov[@]}" -in kmstore:profile=static -text -noout
	record ossl-pkey-pem "${ossl_w[@]}" pkey "${prov[@]}" -in kmstore:profile=inline
	record ossl-nope "${ossl_w[@]}" storeutl "${prov[@]}" -text kmstore:profile=nope
	record ossl-wrong-id "${ossl_w[@]}" storeutl "${prov[@]}" -text "kmstore:profile=static;key-id=NOPE"
	record ossl-enc "${ossl_w[@]}" storeutl "${prov[@]}" -text kmstore:profile=qkd
	learn ossl-enc "$(awk '$1 == "key-id:" { print $2; exit }' "$out/ossl-enc.out")"
	id=$(west_revealed ossl-west)
	record ossl-dec "${ossl_e[@]}" storeutl "${prov[@]}" -text "kmstore:profile=qkd;key-id=$(face_pct "$id")"
	record ossl-dec-again "${ossl_e[@]}" storeutl "${prov[@]}" -text "kmstore:profile=qkd;key-id=$(face_pct "$id")"
fi

# --- the PKCS#11 module through NSS -----------------------------------
# nss_client prints key=HEX (a test program showing what NSS got): that
# line is the explicit output; everything else is scanned.
nss() { # NAME SIDE ARGS...
	local name=$1 side=$2
	shift 2
	timeout -k 2 30 "$NSS_CLIENT" "$work/faces/nss-$side" "$@" \
		>"$work/nss.out" 2>"$out/$name.err" || true
	grep -v '^key=\|^hmac=' "$work/nss.out" >"$out/$name.out" || true
	if grep -q '^key=' "$work/nss.out"; then
		grep '^key=' "$work/nss.out" >"$revealed/$name.out"
	fi
}
if [[ " ${FACES[*]} " == *" pkcs11 "* ]]; then
	nss p11-tokens west tokens kmstore
	nss p11-static west key pkcs11:token=static
	nss p11-inline west key "pkcs11:token=inline;id=INLINE_1"
	nss p11-static-nope west key "pkcs11:token=static;id=NOPE"
	nss p11-hmac west hmac pkcs11:token=static 494b455f41555448
	nss p11-enc west key pkcs11:token=qkd
	learn p11-enc "$(sed -n 's/^id=//p' "$out/p11-enc.out")"
	id=$(west_revealed p11-west)
	nss p11-dec east key "pkcs11:token=qkd;id=$(face_pct "$id")"
	nss p11-dec-again east key "pkcs11:token=qkd;id=$(face_pct "$id")"
	expect_match "kmstore-pkcs11: info: token qkd: key .* for use now" \
		"$(cat "$out/p11-enc.err")" "the module logs at info level to stderr"
	# log=syslog, as under pluto: syslog(3) captured by a preloaded shim.
	if [[ -f ${SYSLOG_CAPTURE_LIB:-} ]]; then
		mkdir -p "$work/nss-syslog"
		face_tool certutil -N -d "sql:$work/nss-syslog" --empty-password
		echo | face_tool modutil -dbdir "sql:$work/nss-syslog" -add kmstore \
			-libfile "$(realpath "$P11_MODULE")" -force \
			-string "config=$W log=syslog log-level=info" >/dev/null 2>&1
		pre=$SYSLOG_CAPTURE_LIB
		[[ -n ${KMSTORE_TEST_PRELOAD:-} ]] && pre=$KMSTORE_TEST_PRELOAD:$pre
		for uri in pkcs11:token=static pkcs11:token=qkd "pkcs11:token=qkd;id=NOPE"; do
			SYSLOG_CAPTURE=$out/syslog.log LD_PRELOAD=$pre timeout 30 \
				"$NSS_CLIENT" "$work/nss-syslog" key "$uri" >"$work/nss.out" \
				2>>"$out/syslog-nss.err" || true
			sed -n 's/^id=//p' "$work/nss.out" >>"$work/syslog-ids"
		done
		learn p11-syslog "$(sed -n 2p "$work/syslog-ids")"
		expect_match "kmstore-pkcs11: info: token qkd: key" "$(cat "$out/syslog.log" 2>/dev/null)" \
			"with log=syslog the module's lines reach syslog (captured)"
	fi
fi

# --- TLS secrets: SSLKEYLOGFILE ------------------------------------------
# libcurl writes the TLS traffic secrets of every connection to the file
# that SSLKEYLOGFILE names; with a capture of the SAE-KME link they decrypt
# the keys. No face may honour it.
for face in "${FACES[@]}"; do
	[[ $face == pluto ]] && continue
	rm -f "$work/keylog-$face"
	SSLKEYLOGFILE=$work/keylog-$face "face_$face" enc west
	[[ $face == pkcs11 || $face == daemon ]] && CELL_OUT=$(grep -v '^key=' <<<"$CELL_OUT" || true)
	printf '%s\n' "$CELL_OUT" >"$out/keylog-$face.txt"
	if [[ $CELL_KEY != 1 ]]; then
		tap_not_ok "SSLKEYLOGFILE set: $face still gets a key" "$CELL_OUT"
	elif [[ -s $work/keylog-$face ]]; then
		tap_not_ok "SSLKEYLOGFILE set: $face writes no TLS secrets" \
			"$(wc -l <"$work/keylog-$face") lines in $work/keylog-$face"
	else
		tap_ok "SSLKEYLOGFILE set: $face writes no TLS secrets"
	fi
done

# --- KMEs with faults whose answers hold keys --------------------------
cp "$KME_DIR/kme-sim.log" "$out/kme-sim-main.log"
cp "$KME_DIR/kme-sim.out" "$out/kme-sim-main.out"
for fault in malformed wrong-length extra-key oversized=4096 truncated \
	html-error=503 wrong-id,path=dec_keys; do
	kme_env_stop
	rm -rf "$work/lab"
	kme_env_start "$work/lab" "$KME_SIM" pki_copy -v --fault "$fault" >/dev/null
	for side in west east; do
		sed "s|^url .*|url          = $(awk '$1 == "url" { print $3 }' "$KME_DIR/$side.conf")|" \
			"$work/faces/$side.conf" >"$work/tmp.conf"
		cat "$work/tmp.conf" >"$work/faces/$side.conf"
	done
	f=${fault%%[=,]*}
	for face in "${FACES[@]}"; do
		if [[ $fault == wrong-id* ]]; then
			id=$("$KMSTORE" -c "$W" key qkd | awk '$1 == "key-id" { print $2 }')
			"face_$face" dec east "$id"
		else
			"face_$face" enc west
		fi
		[[ $face == pkcs11 || $face == daemon ]] && CELL_OUT=$(grep -v '^key=' <<<"$CELL_OUT" || true)
		printf '%s\n' "$CELL_OUT" >"$out/fault-$f-$face.txt"
	done
	cp "$KME_DIR/kme-sim.log" "$out/kme-sim-$f.log"
done
expect_match "sent 2 keys" "$(cat "$out/fault-extra-key-kmstore.txt")" "the faults were met (extra key)"

# --- locked memory and core dumps --------------------------------------
# hold ROUTE ARGS... : starts hold_key (after HOLD_PREFIX, which must
# exec it), waits for "held"; HOLD_PID.
HOLD_PREFIX=()
hold() {
	local fifo=$work/fifo.$RANDOM
	mkfifo "$fifo"
	"${HOLD_PREFIX[@]}" "$HOLD_KEY" "$@" <"$fifo" >"$work/hold.out" 2>"$work/hold.err" &
	HOLD_PID=$!
	holders+=("$HOLD_PID")
	exec {HOLD_FD}>"$fifo"
	rm -f "$fifo"
	for _ in $(seq 100); do
		grep -Eq '^(held|freed) ' "$work/hold.out" 2>/dev/null && return 0
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
release() {
	local p kept=()
	exec {HOLD_FD}>&-
	wait "$HOLD_PID" || true
	# reaped: the PID may soon be another process's; cleanup must not
	# kill it
	for p in "${holders[@]}"; do [ "$p" = "$HOLD_PID" ] || kept+=("$p"); done
	holders=("${kept[@]}")
}
vmlck() { awk '$1 == "VmLck:" { print $2 }' "/proc/$1/status"; }
can_core=0
command -v gcore >/dev/null && can_core=1
# Under ASan mlock is a no-op (its interceptor) and gcore cannot dump the
# shadow memory: only the outputs are scanned there.
sanitized=0
[[ ${KMSTORE_SANITIZED:-0} == 1 ]] && sanitized=1 can_core=0 &&
	echo "# sanitizer build: no locked-memory or core-dump checks"
for route in "lib $W qkd" "lib $W static" "p11 ${P11_MODULE:-} $W qkd" "p11 ${P11_MODULE:-} $W inline"; do
	read -ra r <<<"$route"
	[[ ${r[0]} == p11 && " ${FACES[*]} " != *" pkcs11 "* ]] && continue
	name=hold-${r[0]}-${r[-1]}
	if ! hold "${r[@]}" "$sec/$name"; then
		tap_not_ok "$name holds a key" "$(cat "$work/hold.err")"
		continue
	fi
	lck=$(vmlck "$HOLD_PID")
	if ((sanitized)); then
		:
	elif [[ $lck -ge 64 ]]; then
		tap_ok "$name: the key is in locked memory (VmLck $lck kB)"
	else
		tap_not_ok "$name: the key is in locked memory" "VmLck $lck kB"
	fi
	if ((can_core)) && timeout 60 gcore -o "$cores/$name" "$HOLD_PID" >/dev/null 2>&1; then
		:
	else
		can_core=0
		echo "# gcore cannot dump here: no core-dump check"
	fi
	release
	cp "$work/hold.err" "$out/$name.err"
done

# A KME that offers HTTP/2 (kme-sim --http2): libcurl would take it, and
# curl's and nghttp2's buffers, which kmstore cannot wipe, would keep the
# key. kmstore speaks HTTP/1.1 only: its requests say so in kme-sim's log,
# and once the key (and the store, or the module) is freed the process's
# writable memory holds no piece of it (scan_secrets.py --pid: any 16-byte
# window, raw, hex or base64). Not under a sanitizer (its shadow memory and
# quarantine are another matter).
kme_env_stop
rm -rf "$work/lab"
kme_env_start "$work/lab" "$KME_SIM" pki_copy -v --http2 >/dev/null
for side in west east; do
	sed "s|^url .*|url          = $(awk '$1 == "url" { print $3 }' "$KME_DIR/$side.conf")|" \
		"$work/faces/$side.conf" >"$work/tmp.conf"
	cat "$work/tmp.conf" >"$work/faces/$side.conf"
done
for route in "lib-freed $W qkd" "p11-freed ${P11_MODULE:-} $W qkd"; do
	read -ra r <<<"$route"
	[[ ${r[0]} == p11-freed && " ${FACES[*]} " != *" pkcs11 "* ]] && continue
	name=h2-${r[0]}
	before=$(grep -c '/enc_keys ' "$KME_DIR/kme-sim.log" || true)
	if ! hold "${r[@]}" "$sec/$name"; then
		tap_not_ok "$name: a key from a KME that offers HTTP/2" "$(cat "$work/hold.err")"
		continue
	fi
	req=$({ grep '/enc_keys ' "$KME_DIR/kme-sim.log" || true; } | tail -n +$((before + 1)))
	if [[ -n $req && $req != *'enc_keys HTTP/2"'* && $req == *'enc_keys HTTP/1.1" 200'* ]]; then
		tap_ok "$name: the KME offers h2; the request was HTTP/1.1"
	else
		tap_not_ok "$name: the KME offers h2; the request was HTTP/1.1" "$req"
	fi
	if ((!sanitized)); then
		if leak=$($scan "$sec" --pid "$HOLD_PID" 2>&1); then
			tap_ok "$name: once freed, no piece of the key in the process's memory"
		else
			tap_not_ok "$name: once freed, no piece of the key in the process's memory" \
				"$(grep LEAK <<<"$leak" | head -n 5)"
		fi
	fi
	release
	cp "$work/hold.err" "$out/$name.err"
done

# Without CAP_IPC_LOCK and with `ulimit -l 0`, locking fails: a warning,
# and keys still work.
nolock() {
	setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock -- \
		bash -c 'ulimit -l 0 && exec "$@"' _ "$@"
}
if ((sanitized)); then
	:
elif command -v setpriv >/dev/null && nolock true 2>/dev/null; then
	run nolock "$KMSTORE" -c "$W" key static
	expect_rc 0 "ulimit -l 0: kmstore still serves the key"
	expect_match "warning: cannot lock key memory \(mlock: .*\); keys may be swapped" \
		"$RUN_ERR" "... and warns that it cannot lock key memory"
	printf '%s\n' "$RUN_ERR" >"$out/nolock-cmd.err"
	HOLD_PREFIX=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --
		bash -c 'ulimit -l 0 && exec "$@"' _)
	if hold lib "$W" qkd "$sec/nolock-hold"; then
		expect_eq 0 "$(vmlck "$HOLD_PID")" "ulimit -l 0: a process holding a key has nothing locked"
		release
		expect_match "warning: cannot lock key memory" "$(cat "$work/hold.err")" \
			"... and libkmstore warned"
		cp "$work/hold.err" "$out/nolock-hold.err"
	else
		tap_not_ok "ulimit -l 0: hold_key still gets a key" "$(cat "$work/hold.err")"
	fi
	HOLD_PREFIX=()
	if [[ " ${FACES[*]} " == *" pkcs11 "* ]]; then
		nolock "$NSS_CLIENT" "$work/faces/nss-west" key pkcs11:token=static \
			>"$work/nss.out" 2>"$out/nolock-nss.err" || true
		expect_match "kmstore-pkcs11: warning: cannot lock key memory" \
			"$(cat "$out/nolock-nss.err")" "ulimit -l 0: the module warns (through NSS)"
		grep -q '^key=' "$work/nss.out" && tap_ok "... and NSS still gets the key" ||
			tap_not_ok "... and NSS still gets the key" "$(cat "$out/nolock-nss.err")"
	fi
else
	echo "# setpriv cannot drop CAP_IPC_LOCK here: no ulimit -l 0 check"
fi
# The command itself locks its key memory (and keeps it out of core dumps).
if ((!sanitized)) && command -v strace >/dev/null &&
	timeout 10 strace -o /dev/null true 2>/dev/null; then
	strace -f -e trace=mlock,madvise -o "$work/strace.txt" "$KMSTORE" -c "$W" key static \
		>"$out/strace-cmd.out" 2>"$out/strace-cmd.err" || true
	expect_match "mlock\(0x[0-9a-f]+, 65536\) += 0" "$(cat "$work/strace.txt")" \
		"the kmstore command mlocks its key memory"
	expect_match "madvise\(0x[0-9a-f]+, 65536, MADV_DONTDUMP\) += 0" "$(cat "$work/strace.txt")" \
		"... and keeps it out of core dumps"
fi

# --- the scan --------------------------------------------------------------
cp "$KME_DIR/kme-sim.out" "$out/kme-sim-last.out"
kme_env_stop
echo "# $(ls "$sec" | wc -l) keys known, $(ls "$out" | wc -l) outputs"
scan_result() { # LINE
	case $1 in
	clean\ *) tap_ok "no key in ${1#clean "$work"/}" ;;
	LEAK\ *) tap_not_ok "no key in $(sed "s|^LEAK $work/||; s|:.*||" <<<"$1")" "${1#LEAK }" ;;
	esac
}
# scan_dir WHAT ARGS... DIR: the scanner's lines in SCAN_OUT. It must have run
# (exit 0: clean, 1: a leak) and given one line per file: a scanner that
# crashed, or saw no keys or no files, would otherwise pass every check by
# reporting nothing.
scan_dir() {
	local what=$1 dir=${*: -1} rc=0 files lines
	shift
	SCAN_OUT=$($scan "$@") || rc=$?
	files=$(find "$dir" -type f | wc -l)
	lines=$(grep -c '^\(clean\|LEAK\) ' <<<"$SCAN_OUT" || true)
	if [[ $rc -gt 1 || $files -eq 0 || $lines -ne $files || $(ls "$sec" | wc -l) -eq 0 ]]; then
		tap_not_ok "the scanner ran over $what" "exit $rc, $files files, $lines results, $(ls "$sec" | wc -l) keys"
		SCAN_OUT=
	fi
}
scan_dir "the outputs" "$sec" --shapes "$out"
while IFS= read -r line; do scan_result "$line"; done <<<"$SCAN_OUT"
if ((can_core)); then
	scan_dir "the core dumps" "$sec" "$cores"
	while IFS= read -r line; do scan_result "$line"; done <<<"$SCAN_OUT"
fi
# The scanner itself: each explicit reveal must be found.
scan_dir "the revealed keys" "$sec" "$revealed"
while IFS= read -r line; do
	case $line in
	LEAK\ *) tap_ok "the scanner finds the revealed key in ${line#LEAK "$work"/}" ;;
	clean\ *) tap_not_ok "the scanner finds the revealed key in ${line#clean "$work"/}" ;;
	esac
done <<<"$SCAN_OUT"

tap_done
