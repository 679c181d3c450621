#!/usr/bin/env bash
# ike_e2e.sh - two patched plutos (ppk-uri=) in two network namespaces,
# PPKs from the kmstore PKCS#11 module, QKD keys from kme-sim. IKE SAs only
# (this kernel has no ESP): the initiator omits the Child SA
# (--impair omit_v2_ike_auth_child). Every case asserts on pluto's logs.
#
#   ike_e2e.sh PATCHED_PREFIX STOCK_PREFIX MODULE KME_SIM KME_SIM_PKI [CASE...]
#
# IKE_LAB_DAEMON=1 (with KMSTORED and KMSTORE naming the programs) runs
# every case in daemon mode: each side's module asks its own kmstored
# (tests/lib/ike-lab.sh); the cases privsep (both modes), daemon_faults
# and late_token (daemon mode) are about that.
#
# PATCHED_PREFIX, STOCK_PREFIX: install prefixes of libreswan-patches/build.sh
# (patched, and --stock: any release, the stock peer of the interop cases).
# MODULE: kmstore-pkcs11.so. CASEs: the case names below (default: all;
# the cross_* cases only with IKE_OTHER=PREFIX, a patched pluto of another
# libreswan release). Exit 77 (skip) when not root or when network
# namespaces cannot be made. KEEP=1 keeps the lab's files (also kept when a
# check fails).
#
# The lab (tests/lib/ike-lab.sh): west 192.0.2.1 and east 192.0.2.2 in
# their own namespaces, joined by a bridge in a third one that also runs
# kme-sim with KME_A (west's, 192.0.2.254:8443) and KME_B (east's, :8444),
# which share one simulated QKD link.
set -uo pipefail

if [ $# -lt 5 ]; then
	sed -n '2,20p' "$0" >&2
	exit 2
fi
PATCHED=$1 STOCK=$2 MODULE=$3 KME_SIM=$4 KME_SIM_PKI=$5
KMSTORE=${KMSTORE:-$(dirname "$MODULE")/../../kmstore/kmstore}
shift 5
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/tap.sh
. "$here/../lib/tap.sh"
# shellcheck source=../lib/ike-lab.sh
. "$here/../lib/ike-lab.sh"
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
expect_not_match() { # REGEX HAYSTACK WHAT
	if ! [[ "$2" =~ $1 ]]; then tap_ok "$3"; else
		tap_not_ok "$3" "did not expect to match: $1" "in: $(printf '%s\n' "$2" | grep -E -- "$1" | head -n 5)"
	fi
}

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "no ip command (iproute2)"
for t in modutil certutil; do
	command -v $t >/dev/null || skip "no $t (Debian: libnss3-tools)"
done
OTHER=${IKE_OTHER:-}
for p in "$PATCHED" "$STOCK" $OTHER; do
	[ -x "$p/libexec/ipsec/pluto" ] || { echo "no pluto in $p (run libreswan-patches/build.sh)" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "no $MODULE" >&2; exit 1; }
# The releases: what they log and which notify numbers they use differ.
V_PATCHED=$(ike_lab_version "$PATCHED") V_STOCK=$(ike_lab_version "$STOCK")
V_OTHER=$([ -z "$OTHER" ] || ike_lab_version "$OTHER")
echo "# patched libreswan $V_PATCHED, stock $V_STOCK${OTHER:+, other patched $V_OTHER}"

ike_lab_init "$MODULE" "$KME_SIM" "$KME_SIM_PKI"
cleanup() {
	set +e	# whatever fails here, the rest must still be cleaned up
	if [ "${KEEP:-0}" = 1 ] || [ "$TAP_FAIL" -gt 0 ]; then
		IKE_LAB_KEEP=1
		echo "# logs kept in $IKE_LAB_DIR"
	fi
	ike_lab_down
}
trap cleanup EXIT
trap 'echo "# interrupted" >&2; exit 1' INT TERM

ike_lab_up 2>"$IKE_LAB_DIR/up.err" || skip "cannot make network namespaces: $(head -n 1 "$IKE_LAB_DIR/up.err")"
ike_lab_kmes_start || { echo "kme-sim did not start" >&2; exit 1; }

# initiate: west starts an IKE SA of conn west-east without a Child SA; no
# revival, so a failure stays a failure. Sets INIT_RC and INIT_SECS.
initiate() {
	ike_lab_initiate west west-east
	INIT_RC=$?
	INIT_SECS=$IKE_LAB_SECS
	sleep 0.3	# let the responder log its side
}

# the PPK_IDs a side used, one a line
ppk_ids_used() { ike_lab_log "$1" | sed -n 's/.*ppk-uri=[^ ]*: using\( received\)\{0,1\} PPK_ID \([^ ]*\).*/\2/p'; }

CASES=("$@")
case_wanted() {
	[ ${#CASES[@]} -eq 0 ] && return 0
	local c
	for c in "${CASES[@]}"; do [ "$c" = "$1" ] && return 0; done
	return 1
}

established() { # SIDE WHAT
	expect_in "established IKE SA" "$(ike_lab_log "$1")" "$2"
}

W_CONF=$IKE_LAB_DIR/kme/west.conf E_CONF=$IKE_LAB_DIR/kme/east.conf
STATIC_PSK='@west-static @east-static : PSK "kmstore lab pre-shared key 2, not the PPK"'

# --- cases -----------------------------------------------------------------

case_static() {
	echo "# static profile, ppk=insist on both sides"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_start west && ike_lab_start east || return
	run ike_lab_whack west --connectionstatus
	expect_in "ppk-uri: pkcs11:token=static;" "$RUN_OUT" "static: connectionstatus shows ppk-uri"
	# the debug log says where each side asked the token
	ike_lab_whack west --debug base >/dev/null
	ike_lab_whack east --debug base >/dev/null
	initiate
	expect_rc_init 0 "static: west initiates"
	established west "static: IKE SA established (west)"
	local side
	for side in west east; do
		if [ "${IKE_LAB_DAEMON:-0}" = 1 ]; then
			# the key is kmstored's answer, over a socket
			expect_in "ppk-uri=pkcs11:token=static: fetching the PPK on a" "$(ike_lab_log $side)" \
				"static: $side asks kmstored's static token on a helper"
			continue
		fi
		expect_in "ppk-uri=pkcs11:token=static: the token holds its keys, asking it now" \
			"$(ike_lab_log $side)" "static: $side asks the token on its main thread (CKM_KMSTORE_LOCAL_KEYS)"
		expect_not_in "fetching the PPK on a" "$(ike_lab_log $side)" "static: ... not on a helper"
	done
	established east "static: IKE SA established (east)"
	expect_in "PPK AUTH calculated as initiator" "$(ike_lab_log west)" "static: west used the PPK"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "static: east used the PPK"
	expect_in "ppk-uri=pkcs11:token=static: using PPK_ID STATIC_PPK_1 (256-bit PPK)" "$(ike_lab_log west)" "static: west logs the key ID"
	expect_in "ppk-uri=pkcs11:token=static: using received PPK_ID STATIC_PPK_1" "$(ike_lab_log east)" "static: east logs the key ID"
	# The PPK went into SK_d and SK_p*: an established IKE SA keeps no
	# copy (the module reads the static key from its file for each
	# fetch, so pluto's memory held it only through the IKE SA)
	local sec=$IKE_LAB_DIR/static-keys out
	mkdir -p "$sec"
	kme_env_hex "$IKE_LAB_DIR/kme/static.key" >"$sec/static"
	for side in west east; do
		out=$(python3 "$here/../hygiene/scan_secrets.py" "$sec" --pid "$(cat "$IKE_LAB_DIR/$side/pid")" 2>&1) || true
		expect_eq "" "$(grep LEAK <<<"$out" || true)" "static: $side's pluto holds no copy of the PPK once the IKE SA is up"
	done
	echo "# a second IKE SA (SPEC 9, new IKE SA, static): the same key ID and key"
	ike_lab_whack west --deletestate 1 >/dev/null 2>&1
	sleep 0.5
	initiate
	expect_rc_init 0 "static: second IKE SA"
	local ids kcvs
	ids=$(ppk_ids_used west | sort -u | tr '\n' ' ')
	kcvs=$(ike_lab_log west | sed -n 's/.*token static: key STATIC_PPK_1 for use now (check value \([0-9a-f]*\)).*/\1/p')
	if [ "$(ppk_ids_used west | wc -l)" -eq 2 ] && [ "$ids" = "STATIC_PPK_1 " ] &&
		[ "$(wc -l <<<"$kcvs")" -eq 2 ] && [ "$(sort -u <<<"$kcvs" | wc -l)" -eq 1 ]; then
		tap_ok "static: two IKE SAs, one key ID and one key (check value $(head -n 1 <<<"$kcvs"))"
	else
		tap_not_ok "static: two IKE SAs, one key ID and one key" "west's PPK_IDs: $(ppk_ids_used west | tr '\n' ' ')" "check values: $(tr '\n' ' ' <<<"$kcvs")"
	fi
	ike_lab_stop
}

expect_rc_init() { # CODE WHAT
	if [ "$INIT_RC" -eq "$1" ]; then tap_ok "$2"; else
		tap_not_ok "$2" "whack --initiate exited $INIT_RC, expected $1" "$(cat "$IKE_LAB_DIR/west/initiate.out")"
	fi
}

# same_qkd_key WHAT: west and east used one QKD key ID (not the static
# one), and the same key: the module logs each key it serves with its
# check value, so the same ID must show the same value on both sides.
same_qkd_key() {
	local wid eid wkcv ekcv
	wid=$(ppk_ids_used west) eid=$(ppk_ids_used east)
	if [ -n "$wid" ] && [ "$wid" = "$eid" ] && [ "$wid" != STATIC_PPK_1 ]; then
		tap_ok "$1: both sides used the KME's key ID $wid"
	else
		tap_not_ok "$1: both sides used the KME's key ID" "west: $wid" "east: $eid"
	fi
	wkcv=$(ike_lab_log west | sed -n "s/.*token qkd: key $wid for use now (check value \([0-9a-f]*\)).*/\1/p" | head -n 1)
	ekcv=$(ike_lab_log east | sed -n "s/.*token qkd: key $wid found (check value \([0-9a-f]*\)).*/\1/p" | head -n 1)
	if [ -n "$wkcv" ] && [ "$wkcv" = "$ekcv" ]; then
		tap_ok "$1: both plutos got the same key (check value $wkcv)"
	else
		tap_not_ok "$1: both plutos got the same key" "west: $wkcv" "east: $ekcv"
	fi
}

case_qkd() {
	echo "# QKD profile: enc_keys at west's KME, dec_keys at east's"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "qkd: west initiates"
	established east "qkd: IKE SA established"
	expect_in "PPK AUTH calculated as initiator" "$(ike_lab_log west)" "qkd: west used the PPK"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "qkd: east used the PPK"
	same_qkd_key qkd
	echo "# two successive IKE SAs take two QKD keys"
	ike_lab_whack west --deletestate 1 >/dev/null 2>&1 || ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
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
	ike_lab_stop
}

# SPEC 9, IKE SA rekey by CREATE_CHILD_SA: the new IKE SA's keys derive
# from the old one's SK_d (RFC 7296 section 2.18), into which the PPK was
# mixed once (RFC 8784 section 3); no PPK is fetched or sent again, with
# either profile. West rekeys three times in a row; with the QKD profile
# both KMEs are stopped first, so a rekey that asked the token would log a
# failure. Then an exchange on the newest IKE SA (west deletes it): east
# can only act on it with the same keys as west.
rekey_three() { # PROFILE
	local p=$1 i new old ew ee
	for i in 1 2 3; do
		run ike_lab_whack west --rekey-ike --name west-east
		new=$(sed -n 's/.*"west-east" #\([0-9]*\): initiator rekeyed IKE SA #\([0-9]*\).*/\1 \2/p' <<<"$RUN_OUT")
		if [ "$RUN_RC" -eq 0 ] && [ -n "$new" ]; then
			tap_ok "rekey $p: rekey $i: IKE SA #${new#* } replaced by #${new% *}"
		else
			tap_not_ok "rekey $p: rekey $i: whack --rekey-ike" "exit $RUN_RC" "$RUN_OUT"
		fi
	done
	sleep 0.3	# east logs its side
	ew=$(ike_lab_count west 'initiator rekeyed IKE SA #')
	ee=$(ike_lab_count east 'responder rekeyed IKE SA #')
	expect_eq "3 3" "$ew $ee" "rekey $p: three rekeys on both sides"
	expect_eq 1 "$(ppk_ids_used west | wc -l)" "rekey $p: west used one PPK for the four IKE SAs"
	expect_eq 1 "$(ppk_ids_used east | wc -l)" "rekey $p: east used one PPK for the four IKE SAs"
	expect_not_in "no PPK for" "$(ike_lab_log west)$(ike_lab_log east)" "rekey $p: no fetch was tried"
	expect_eq "1 1" "$(ike_lab_count west 'PPK AUTH calculated as initiator') $(ike_lab_count east 'PPK AUTH calculated as responder')" \
		"rekey $p: the PPK went into the first IKE SA's AUTH only"
	# the newest IKE SA on each side
	new=${new% *}
	old=$(ike_lab_log east | sed -n 's/.*"west-east" #\([0-9]*\): responder rekeyed IKE SA #.*/\1/p' | tail -n 1)
	ike_lab_whack west --deletestate "$new" >/dev/null 2>&1
	if wait_log east "\"west-east\" #$old: deleting IKE SA (established IKE SA)" 5; then
		tap_ok "rekey $p: east acted on west's delete of the newest IKE SA (west #$new, east #$old)"
	else
		tap_not_ok "rekey $p: an exchange on the newest IKE SA" "east never logged deleting #$old" \
			"$(ike_lab_log east | grep -v '^|' | tail -n 5)"
	fi
}

case_rekey() {
	local p
	for p in static qkd; do
		echo "# SPEC 9, IKE SA rekey by CREATE_CHILD_SA, $p profile: no new PPK"
		ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token='$p ''
		ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token='$p ''
		ike_lab_start west && ike_lab_start east || return
		initiate
		expect_rc_init 0 "rekey $p: west initiates"
		[ $p = static ] || ike_lab_kmes_stop
		rekey_three $p
		ike_lab_stop
		[ $p = static ] || ike_lab_kmes_start || tap_not_ok "kme-sim restarts"
	done
}

case_mismatch() {
	echo "# key mismatch: same key ID, different keys"
	local other=$IKE_LAB_DIR/other.conf
	head -c 32 /dev/urandom >"$IKE_LAB_DIR/other.key"
	chmod 600 "$IKE_LAB_DIR/other.key"
	sed "s|file:.*static.key|file:$IKE_LAB_DIR/other.key|" "$E_CONF" >"$other"
	chmod 600 "$other"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_side east "$PATCHED" "$other" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)$(ike_lab_log east)" "mismatch: no IKE SA"
	expect_in "AUTHENTICATION_FAILED" "$(ike_lab_log west)" "mismatch: west gets AUTHENTICATION_FAILED"
	ike_lab_stop
}

case_unknown_id() {
	echo "# unknown key ID: west sends a static ID, east's QKD KME has no such key"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)$(ike_lab_log east)" "unknown id: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID STATIC_PPK_1" "$(ike_lab_log east)" "unknown id: east logs URI, key ID and reason"
	expect_in "AUTHENTICATION_FAILED" "$(ike_lab_log west)" "unknown id: west gets AUTHENTICATION_FAILED"
	ike_lab_stop
}

case_no_token() {
	echo "# ppk-uri= naming no token of pluto's NSS database: said, and no IKE SA with insist"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=nosuch' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)$(ike_lab_log east)" "no token: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=nosuch: no PPK for this IKE SA: no token in the NSS database matches the URI" \
		"$(ike_lab_log west)" "no token: west logs the URI and why"
	ike_lab_stop
}

case_kme_down() {
	echo "# KME down: insist fails at once, propose goes on without PPK"
	ike_lab_kmes_stop
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)" "kme down, insist: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA" "$(ike_lab_log west)" "kme down, insist: west logs the URI and reason"
	expect_in "connection requires PPK" "$(ike_lab_log west)" "kme down, insist: west fails (ppk=insist)"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 5) }' && tap_ok "kme down, insist: failed in ${INIT_SECS}s" ||
		tap_not_ok "kme down, insist: fails fast" "took ${INIT_SECS}s"
	ike_lab_stop
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=propose\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=propose\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "kme down, propose: west initiates"
	established east "kme down, propose: IKE SA established without PPK"
	expect_in "continuing without PPK" "$(ike_lab_log west)" "kme down, propose: west goes on without PPK"
	expect_not_in "PPK AUTH calculated" "$(ike_lab_log west)$(ike_lab_log east)" "kme down, propose: no PPK used"
	ike_lab_stop
	ike_lab_kmes_start || tap_not_ok "kme-sim restarts"
}

case_kme_silent() {
	echo "# KME silent (accepts, never answers): the fetch ends at the profile's timeout (3 s)"
	ike_lab_kmes_stop
	ike_lab_kmes_start --fault blackhole,kme=KME_A || { tap_not_ok "kme-sim with a fault starts"; return; }
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)" "kme silent, insist: no IKE SA"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA" "$(ike_lab_log west)" "kme silent: west logs the URI and reason"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 8) }' && tap_ok "kme silent: failed in ${INIT_SECS}s (timeout 3 s)" ||
		tap_not_ok "kme silent: bounded by the timeout" "took ${INIT_SECS}s"
	ike_lab_stop
	ike_lab_kmes_stop
	ike_lab_kmes_start || tap_not_ok "kme-sim restarts"
}

# What a release logs when it mixes the PPK in IKE_INTERMEDIATE: 5.2
# "PPK used in IKE_INTERMEDIATE as initiator", from 5.3 on "PPK 'ID' used
# in IKE_INTERMEDIATE by initiator".
ppk_in_intermediate() { # ROLE
	printf "PPK( '[^']*')? used in IKE_INTERMEDIATE (as|by) %s" "$1"
}

# The notify numbers of RFC 9867 as a release sends them ("NAME NUMBER"
# lines): USE_PPK_INT and PPK_IDENTITY_KEY were the draft's private-use
# 50209 and 50208 in 5.2, the RFC's 16445 and 16446 from 5.3 on. Pluto's
# debug log names each notify it parses with its number in hex (5.2) or
# in decimal and hex (5.4).
rfc9867_numbers() { # VERSION
	case $1 in
	5.2) printf '%s\n' "v2N_USE_PPK_INT 50209" "v2N_PPK_IDENTITY_KEY 50208" ;;
	*) printf '%s\n' "v2N_USE_PPK_INT 16445" "v2N_PPK_IDENTITY_KEY 16446" ;;
	esac
}

case_intermediate() {
	echo "# intermediate=yes with QKD: the PPK in IKE_INTERMEDIATE (RFC 9867)"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	# the responder's debug log shows the notify numbers it parsed
	ike_lab_whack east --debug base >/dev/null
	initiate
	expect_rc_init 0 "intermediate: west initiates"
	established east "intermediate: IKE SA established"
	expect_match "$(ppk_in_intermediate initiator)" "$(ike_lab_log west)" "intermediate: west used the PPK in IKE_INTERMEDIATE"
	expect_match "$(ppk_in_intermediate responder)" "$(ike_lab_log east)" "intermediate: east used the PPK in IKE_INTERMEDIATE"
	expect_in "ppk-uri=pkcs11:token=qkd: fetching the PPK on a" "$(ike_lab_log east)" \
		"intermediate: east asks the QKD token on a helper (it may wait on the KME)"
	expect_not_in "PPK AUTH calculated" "$(ike_lab_log west)$(ike_lab_log east)" "intermediate: not again in IKE_AUTH"
	same_qkd_key intermediate
	local name number
	while read -r name number; do
		expect_match "Notify Message Type: $name \\(($number, )?0x$(printf %x "$number")\\)" \
			"$(grep -F 'Notify Message Type' "$IKE_LAB_DIR/east/pluto.log")" \
			"intermediate: libreswan $V_PATCHED sent $name as number $number"
	done < <(rfc9867_numbers "$V_PATCHED")
	ike_lab_stop
}

# RFC 9370 additional key exchanges (5.4): two IKE_INTERMEDIATE exchanges,
# the PPK in the last one. Classic groups stand in for ML-KEM-768 (which
# needs NSS >= 3.118.1): the exchanges, the fetch and the PPK take the same
# path, only the KEM differs.
case_intermediate_addke() {
	if [ "$V_PATCHED" = 5.2 ]; then
		echo "# intermediate_addke: libreswan $V_PATCHED has no additional key exchanges"
		return
	fi
	echo "# intermediate=yes, addke1=dh20, addke2=dh21: the QKD PPK in the second IKE_INTERMEDIATE"
	local opts=$'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd\nike=aes;dh19;addke1=dh20;addke2=dh21'
	ike_lab_side west "$PATCHED" "$W_CONF" "$opts" ''
	ike_lab_side east "$PATCHED" "$E_CONF" "$opts" ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "addke: west initiates"
	established east "addke: IKE SA established"
	expect_in "sent IKE_INTERMEDIATE request to 192.0.2.2:UDP/500 {addke1=DH20}" "$(ike_lab_log west)" "addke: the first IKE_INTERMEDIATE has no PPK"
	expect_in "sent IKE_INTERMEDIATE request to 192.0.2.2:UDP/500 {addke2=DH21, PPK}" "$(ike_lab_log west)" "addke: the second carries the PPK"
	expect_match "$(ppk_in_intermediate initiator)" "$(ike_lab_log west)" "addke: west used the PPK in IKE_INTERMEDIATE"
	expect_match "$(ppk_in_intermediate responder)" "$(ike_lab_log east)" "addke: east used the PPK in IKE_INTERMEDIATE"
	same_qkd_key addke
	ike_lab_stop
}

# Two patched releases: PATCHED_PREFIX and IKE_OTHER, each as initiator.
cross_pairs() {
	printf '%s %s\n' "$PATCHED" "$OTHER" "$OTHER" "$PATCHED"
}

case_cross_qkd() {
	local w e vw ve
	while read -r w e; do
		vw=$(ike_lab_version "$w") ve=$(ike_lab_version "$e")
		echo "# QKD ppk-uri= in IKE_AUTH (RFC 8784): libreswan $vw initiator, $ve responder"
		ike_lab_side west "$w" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
		ike_lab_side east "$e" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
		ike_lab_start west && ike_lab_start east || return
		initiate
		expect_rc_init 0 "cross $vw->$ve: west initiates"
		established west "cross $vw->$ve: IKE SA established (west)"
		established east "cross $vw->$ve: IKE SA established (east)"
		expect_in "PPK AUTH calculated as initiator" "$(ike_lab_log west)" "cross $vw->$ve: west used the PPK"
		expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "cross $vw->$ve: east used the PPK"
		same_qkd_key "cross $vw->$ve"
		ike_lab_stop
	done < <(cross_pairs)
}

# intermediate=yes between releases that disagree on IKE_INTERMEDIATE: 5.2
# sends the draft's notify numbers and does an IKE_INTERMEDIATE exchange
# whenever both support it, and puts its (empty) IntAuth into AUTH even
# without one; 5.4 sends RFC 9867's numbers, skips IKE_INTERMEDIATE when
# there is neither an additional key exchange nor a PPK for it, and cannot
# process one it did not plan. So no IKE SA comes up, with or without a
# PPK: what each side does is asserted here (docs/libreswan.md's table).
case_cross_intermediate() {
	local w e vw ve opts what
	local -x IKE_LAB_RETRANSMIT_TIMEOUT=3s
	for opts in $'intermediate=yes' $'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd'; do
		what=$([[ $opts == *ppk* ]] && echo "insist, QKD" || echo "no PPK")
		while read -r w e; do
			vw=$(ike_lab_version "$w") ve=$(ike_lab_version "$e")
			echo "# intermediate=yes ($what): libreswan $vw initiator, $ve responder"
			ike_lab_side west "$w" "$W_CONF" "$opts" ''
			ike_lab_side east "$e" "$E_CONF" "$opts" ''
			ike_lab_start west && ike_lab_start east || return
			initiate
			local both
			both="$(ike_lab_log west)$(ike_lab_log east)"
			expect_not_in "established IKE SA" "$both" "cross-intermediate $vw->$ve ($what): no IKE SA"
			expect_not_match "$(ppk_in_intermediate initiator)" "$both" "cross-intermediate $vw->$ve ($what): no PPK in IKE_INTERMEDIATE"
			if [ "$vw" = 5.2 ]; then
				# the 5.4 responder cannot take the IKE_INTERMEDIATE
				# request: an internal error, no answer; the 5.2
				# initiator gives up at its retransmit-timeout
				expect_in "processing IKE_INTERMEDIATE request" "$(ike_lab_log east)" "cross-intermediate $vw->$ve ($what): east gets an IKE_INTERMEDIATE request"
				expect_in "next_is_ikev2_ike_intermediate_exchange" "$(ike_lab_log east)" "cross-intermediate $vw->$ve ($what): east cannot process it (EXPECTATION FAILED)"
				expect_in "IKE_INTERMEDIATE_I: 3 second timeout exceeded" "$(ike_lab_log west)" "cross-intermediate $vw->$ve ($what): west times out, unanswered"
			else
				# the 5.4 initiator goes straight to IKE_AUTH; the
				# 5.2 responder's AUTH differs: a clean refusal
				expect_in "authentication failed: computed hash does not match" "$(ike_lab_log east)" "cross-intermediate $vw->$ve ($what): east refuses west's AUTH"
				expect_in "AUTHENTICATION_FAILED" "$(ike_lab_log west)" "cross-intermediate $vw->$ve ($what): west gets AUTHENTICATION_FAILED"
				awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 2) }' && tap_ok "cross-intermediate $vw->$ve ($what): failed in ${INIT_SECS}s" ||
					tap_not_ok "cross-intermediate $vw->$ve ($what): fails at once" "took ${INIT_SECS}s"
			fi
			ike_lab_stop
		done < <(cross_pairs)
	done
}

static_ppks() { # the PPKS line for ipsec.secrets of a stock pluto
	echo "@west @east : PPKS \"STATIC_PPK_1\" 0x$(kme_env_hex "$IKE_LAB_DIR/kme/static.key")"
}

case_interop() {
	echo "# patched $V_PATCHED initiator (ppk-uri, static) vs stock $V_STOCK responder (PPKS)"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_side east "$STOCK" '' 'ppk=insist' "$(static_ppks)"
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "interop: patched west initiates"
	established east "interop: stock east establishes the IKE SA"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "interop: stock east used the PPK"
	expect_in "PPK AUTH calculated as initiator" "$(ike_lab_log west)" "interop: patched west used the PPK"
	ike_lab_stop
	echo "# stock $V_STOCK initiator (PPKS) vs patched $V_PATCHED responder (ppk-uri, static)"
	ike_lab_side west "$STOCK" '' 'ppk=insist' "$(static_ppks)"
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "interop: stock west initiates"
	established east "interop: patched east establishes the IKE SA"
	expect_in "PPK AUTH calculated as initiator" "$(ike_lab_log west)" "interop: stock west used the PPK"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "interop: patched east used the PPK"
	expect_in "using received PPK_ID STATIC_PPK_1" "$(ike_lab_log east)" "interop: patched east took the key from its token"
	ike_lab_stop
}

case_checkconfig() {
	echo "# addconn --checkconfig checks ppk-uri="
	local d=$IKE_LAB_DIR/check
	mkdir -p "$d"
	printf 'conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:token=static\n' >"$d/good.conf"
	printf 'conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:id=%%zz\n' >"$d/bad.conf"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/good.conf"
	expect_rc 0 "checkconfig: a good ppk-uri passes"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/bad.conf"
	expect_rc 3 "checkconfig: a bad ppk-uri is refused"
	expect_in "ppk-uri=pkcs11:id=%zz invalid" "$RUN_OUT$RUN_ERR" "checkconfig: the error names the URI"
	# a PIN in the URI: pluto never logs in to the token, and would log
	# the URI, PIN and all, on every IKE SA and in "ipsec status"
	printf 'conn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:token=static?pin-value=s3cret-PIN\n' >"$d/pin.conf"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/pin.conf"
	expect_rc 3 "checkconfig: a ppk-uri with a pin-value= is refused"
	expect_not_in "s3cret-PIN" "$RUN_OUT$RUN_ERR" "checkconfig: ... without echoing the PIN"
	# the PIN is looked for in the raw value, before any message shows
	# the URI: in one NSS cannot parse (whose refusal echoes it whole),
	# in the path (";pin-value=", which NSS parses as an attribute like
	# any other); nor does addconn go on to the seccomp= check, which
	# shows the URI too, for one it has refused
	local what uri seccomp
	while IFS='|' read -r what seccomp uri <&3; do
		printf 'config setup\n\tseccomp=%s\nconn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=%s\n' \
			"$seccomp" "$uri" >"$d/pin2.conf"
		run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/pin2.conf"
		expect_rc 3 "checkconfig: a pin-value= $what is refused"
		expect_in "ppk-uri= invalid: a PIN (pin-value=)" "$RUN_OUT$RUN_ERR" "checkconfig: ... as a PIN ($what)"
		expect_not_in "s3cret" "$RUN_OUT$RUN_ERR" "checkconfig: ... without echoing the PIN ($what)"
	done 3<<-'EOF'
	in a URI NSS cannot parse|disabled|pkcs11:token=static;;%zz?pin-value=s3cret
	in the path|disabled|pkcs11:token=static;pin-value=s3cret
	with seccomp=enabled|enabled|pkcs11:token=static?pin-value=s3cret
	EOF
	# and pluto, which addconn sends the connection as it is
	while IFS='|' read -r what uri <&3; do
		ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri='"$uri" ''
		if ike_lab_start west 2>/dev/null; then
			tap_not_ok "checkconfig: pluto refuses a pin-value= $what" "$(cat "$IKE_LAB_DIR/west/addconn.out")"
		else
			expect_in "ppk-uri= invalid: a PIN (pin-value=)" "$(cat "$IKE_LAB_DIR/west/addconn.out")" \
				"checkconfig: pluto refuses a pin-value= $what"
		fi
		ike_lab_stop west
		expect_not_in "s3cret" "$(cat "$IKE_LAB_DIR/west/addconn.out" "$IKE_LAB_DIR/west/pluto.log")" \
			"checkconfig: ... and neither addconn nor pluto's log shows the PIN ($what)"
	done 3<<-'EOF'
	in a URI NSS cannot parse|pkcs11:token=static;;%zz?pin-value=s3cret
	in the path|pkcs11:token=static;pin-value=s3cret
	EOF
	# pluto checks ppk-uri= amid the other conn keywords: it must not
	# hide their errors (5.4's extract_connection() had its diag_t
	# overwritten by the ppk-uri= check: the connection was added, with
	# fake-strongswan=yes and send-vendorid=yes, and the diag leaked);
	# 5.2's addconn checks such values itself, ignoring them with a warning
	local opt
	for opt in initial-contact=bogus send-vendorid=bogus; do
		ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static\n'"$opt" ''
		if [ "$V_PATCHED" = 5.2 ]; then
			ike_lab_start west
			expect_in "invalid boolean, keyword ignored: $opt" "$(cat "$IKE_LAB_DIR/west/addconn.out")" \
				"checkconfig: addconn ignores $opt beside a ppk-uri=, with a warning"
		elif ike_lab_start west; then
			tap_not_ok "checkconfig: pluto refuses $opt beside a ppk-uri=" \
				"$(cat "$IKE_LAB_DIR/west/addconn.out")"
		else
			expect_in "\"$opt\" is invalid" "$(cat "$IKE_LAB_DIR/west/addconn.out")" \
				"checkconfig: pluto refuses $opt beside a ppk-uri="
		fi
		ike_lab_stop west
	done
}

# With intermediate=yes the IKE_INTERMEDIATE responder asks the ppk-uri=
# token of the connection it picked at IKE_SA_INIT, before the peer's ID
# is known: pluto warns when a connection is added that IKE_SA_INIT may
# pick for the same peer as one already loaded naming another token (the
# same local address, the same remote address or %any on either).
tokens_conn() { # NAME TOKEN [RIGHT [LEFT]]
	printf 'conn %s\n\tleft=%s\n\tleftid=@east-%s\n\tright=%s\n\trightid=@west-%s\n' \
		"$1" "${4:-192.0.2.2}" "$1" "${3:-%any}" "$1"
	printf '\tauthby=secret\n\tkeyexchange=ikev2\n\tppk=insist\n\tintermediate=yes\n\tppk-uri=pkcs11:token=%s\n' "$2"
}
case_intermediate_tokens() {
	echo "# intermediate=yes: a warning for connections IKE_SA_INIT cannot tell apart naming different tokens"
	local opts=$'ppk=insist\nintermediate=yes\nppk-uri=pkcs11:token=qkd' warn='may be picked at IKE_SA_INIT'
	local what conns log
	for what in one same-token other-peer two; do
		case $what in
		one) conns='' ;;
		same-token) conns=$(tokens_conn other qkd) ;;
		other-peer) conns=$(tokens_conn other static 192.0.2.9) ;;
		two) conns=$(tokens_conn other static) ;;
		esac
		ike_lab_side east "$PATCHED" "$E_CONF" "$opts" '' "$conns"
		ike_lab_start east || { tap_not_ok "intermediate_tokens ($what): east starts"; continue; }
		# (5.4 may orient a connection, and so warn, after addconn is
		# done: wait for the warning, up to 10 s where one is due, and
		# 2 s where none is, so that a wrong one is seen)
		wait_log east "$warn" "$([ $what = two ] && echo 10 || echo 2)" || true
		log=$(ike_lab_log east)$(cat "$IKE_LAB_DIR/east/addconn.out")
		if [ $what = two ]; then
			# 5.4 orients each connection once its addresses are
			# resolved, on a helper: the one oriented last warns
			local a='"other": warning: ppk-uri=pkcs11:token=static with intermediate=yes: connection "west-east" (ppk-uri=pkcs11:token=qkd)'
			local b='"west-east": warning: ppk-uri=pkcs11:token=qkd with intermediate=yes: connection "other" (ppk-uri=pkcs11:token=static)'
			if [[ "$log" == *"$a $warn"* || "$log" == *"$b $warn"* ]]; then
				tap_ok "intermediate_tokens: a right=%any connection beside west-east with another token: a warning naming both"
			else
				tap_not_ok "intermediate_tokens: a right=%any connection beside west-east with another token: a warning naming both" \
					"expected: $a $warn" "or: $b $warn" "in: $(grep -F -e '": added' -e warning <<<"$log")"
			fi
			expect_eq 1 "$(ike_lab_log east | grep -c -F "$warn")" "intermediate_tokens: ... one warning"
			expect_in "asks the token of the connection picked at IKE_SA_INIT" "$log" \
				"intermediate_tokens: ... saying which token the responder asks"
			expect_in '"other": added' "$log" "intermediate_tokens: ... and the connection is still added"
		else
			expect_not_in "$warn" "$log" "intermediate_tokens ($what): no warning"
			[ $what = one ] || expect_in '"other": added' "$log" "intermediate_tokens ($what): the second connection is added"
		fi
		ike_lab_stop east
	done
	# connections added before pluto has their local address (added
	# unoriented): the warning comes when they are oriented
	ike_lab_side east "$PATCHED" "$E_CONF" '' '' \
		"$(tokens_conn late1 qkd 192.0.2.1 192.0.2.3; tokens_conn late2 static %any 192.0.2.3)"
	ike_lab_start east || { tap_not_ok "intermediate_tokens (late): east starts"; return; }
	expect_not_in "$warn" "$(ike_lab_log east)" "intermediate_tokens (late): no warning while unoriented"
	ike_lab_exec east ip addr add 192.0.2.3/24 dev eth1
	ike_lab_whack east --listen >/dev/null 2>&1
	wait_log east "$warn" 10 || true
	expect_in "$warn" "$(ike_lab_log east)" "intermediate_tokens (late): a warning once pluto finds the address"
	ike_lab_exec east ip addr del 192.0.2.3/24 dev eth1
	ike_lab_stop east
}

# intermediate=yes and an initiator that proposes two PPK_IDs (ppk-ids=,
# PPKS), the first one with a wrong key: east asks its ppk-uri= token for
# the first one only (its confirmation does not match) and says it
# ignores the second, without a key size (5.2's line showed the first
# key's, as if the second had one).
case_intermediate_ppk_ids() {
	echo "# intermediate=yes, two PPK_IDs proposed: the responder looks up the first only"
	ike_lab_side west "$PATCHED" '' $'ppk=propose\nintermediate=yes\nppk-ids=STATIC_PPK_1,OTHER_PPK' \
		$': PPKS "STATIC_PPK_1" "a wrong key for STATIC_PPK_1, not the lab key"\n: PPKS "OTHER_PPK" "a key that east has not got"'
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=propose\nintermediate=yes\nppk-uri=pkcs11:token=static' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	local log
	log=$(ike_lab_log east)
	expect_in "ppk-uri=pkcs11:token=static: using received PPK_ID STATIC_PPK_1 (256-bit PPK)" "$log" \
		"intermediate_ppk_ids: east asks its token for the first PPK_ID"
	expect_in "only the first PPK_ID is looked up, ignoring PPK_ID OTHER_PPK" "$log" \
		"intermediate_ppk_ids: ... and ignores the second"
	expect_not_in "ignoring PPK_ID OTHER_PPK (" "$log" \
		"intermediate_ppk_ids: ... without the first key's size on that line"
	ike_lab_stop
}

# N connections far1..farN between the same plutos, QKD, IDs of their own;
# west's carry connalias=far.
far_conns() { # SIDE N
	local i
	for i in $(seq "$2"); do
		ike_lab_conn "$1" "far$i" retransmit-timeout=20s ppk=insist ppk-uri=pkcs11:token=qkd \
			$([ "$1" = east ] || echo connalias=far)
	done
}

far_up='"far[0-9]*" #[0-9]*: initiator established IKE SA'
# the log line of each waiting helper pluto starts (5.2: "helper(N, for
# waiting tasks): started")
waiting_started='for waiting \(jobs\|tasks\)): started'

# far_burst MS [N]: N IKE SAs (8) started at once with both KMEs answering
# MS late; "all up" and "east used N different PPK_IDs" checked. The KMEs
# are back to normal afterwards; the plutos' logs stay for the caller.
# 1 when the plutos did not start.
far_burst() {
	local ms=$1 n=${2:-8} i secrets='' started=0
	ike_lab_kmes_stop
	ike_lab_kmes_start --fault "latency=$ms" || { tap_not_ok "kme-sim with latency=$ms starts"; return 1; }
	for i in $(seq "$n"); do
		secrets+="@west-far$i @east-far$i : PSK \"kmstore lab far PSK $i\""$'\n'
	done
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' "$secrets" "$(far_conns west "$n")"
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' "$secrets" "$(far_conns east "$n")"
	if ike_lab_start west && ike_lab_start east; then
		started=1
		ike_lab_whack west --impair omit_v2_ike_auth_child >/dev/null
		ike_lab_whack west --impair revival >/dev/null
		ike_lab_whack west --initiate --name far --asynchronous >/dev/null 2>&1
		ike_lab_wait_count west "$far_up" "$n" 20 || true
	fi
	expect_eq "$n" "$(ike_lab_count west "$far_up")" "KME ${ms} ms away: all $n IKE SAs up with their QKD PPKs"
	expect_eq "$n" "$(ppk_ids_used east | sort -u | wc -l)" "KME ${ms} ms away: east used $n different PPK_IDs"
	ike_lab_kmes_stop
	ike_lab_kmes_start
	[ $started = 1 ]
}

# A far KME (every answer 400 ms late) and 8 IKE SAs started at once: the
# fetches run side by side, each end's on pluto's waiting helpers (not its
# two crypto helpers) and the responder's each in a token session of its
# own (NSS runs searches on a token one at a time). One after another
# they would take 8 x 400 ms at the responder alone. No fetch ends within
# 400 ms: pluto sees the first one stuck (50 ms) and starts more.
case_far_kme() {
	local n=8 ms=400 took
	far_burst $ms $n || return
	took=$(printf '%.2f' "$(ike_lab_burst_secs)")
	expect_eq 1 "$(ike_lab_count east 'starting more waiting helpers: a \(job\|task\) has run for [0-9]* ms' | awk '{ print ($1 > 0) }')" \
		"far KME: east logs why it starts more waiting helpers (a fetch stuck)"
	# one after another: n x ms at the responder, more at the initiator
	if awk -v t="$took" -v l=$((n * ms * 3 / 4)) 'BEGIN { exit !(t != "" && t * 1000 < l) }'; then
		tap_ok "far KME: $n IKE SAs in ${took}s, fetches side by side (one after another: over $((n * ms / 1000)).$((n * ms % 1000 / 100))s)"
	else
		tap_not_ok "far KME: $n IKE SAs' fetches side by side" "took ${took}s from the first initiation to the last SA" \
			"one after another would be $n x ${ms} ms at the responder"
	fi
}

# A KME 20 ms away: each fetch ends before it counts as stuck, but every
# one takes the round trip, so after two in a row (not counting the first,
# which opens the connections; the second counting once it has run 5 ms)
# pluto starts waiting helpers for the fetches queued behind them (on
# loopback one serves). At the latest the third fetch's end starts them,
# and a fourth cannot end before that on the one helper: so each pluto
# logs its second helper's start before its fourth PPK.
case_near_kme() {
	local n=8 w e side fourth second
	far_burst 20 $n || return
	w=$(ike_lab_count west "$waiting_started") e=$(ike_lab_count east "$waiting_started")
	if [ "$w" -gt 1 ] && [ "$e" -gt 1 ]; then
		tap_ok "KME 20 ms away: both plutos started more waiting helpers (west $w, east $e)"
	else
		tap_not_ok "KME 20 ms away: both plutos started more waiting helpers" \
			"west started $w, east $e (the first one starts with pluto)"
	fi
	for side in west east; do
		# (slow fetches; or, on a loaded machine, a first fetch stuck)
		expect_eq 1 "$(ike_lab_count "$side" 'starting more waiting helpers: \(each of the last [0-9]* \(jobs\|tasks\) ran for [0-9]* ms or more\|a \(job\|task\) has run for [0-9]* ms\)$' | awk '{ print ($1 > 0) }')" \
			"KME 20 ms away: $side logs why it starts more waiting helpers"
		second=$(log_line "$side" "$waiting_started" 2)
		fourth=$(log_line "$side" 'ppk-uri=pkcs11:token=qkd: using \(received \)\?PPK_ID' 4)
		if [ -n "$second" ] && [ -n "$fourth" ] && [ "$second" -lt "$fourth" ]; then
			tap_ok "KME 20 ms away: $side started more waiting helpers before its fourth PPK"
		else
			tap_not_ok "KME 20 ms away: $side started more waiting helpers before its fourth PPK" \
				"log lines: second helper started at ${second:-none}, fourth PPK at ${fourth:-none}"
		fi
	done
}

# log_line SIDE PATTERN N: the line number of the Nth line of SIDE's pluto
# log matching PATTERN (a basic regular expression), or nothing.
log_line() {
	grep -n -e "$2" "$IKE_LAB_DIR/$1/pluto.log" 2>/dev/null | sed -n "$3{s/:.*//;p;q}"
}

# A second connection between the same plutos, with the static profile and
# its own IDs (so that the responder switches to it in IKE_AUTH).
static_conn() { # SIDE
	ike_lab_conn "$1" static retransmit-timeout=10s ppk=insist ppk-uri=pkcs11:token=static
}

# log_secs SIDE TEXT [TEXT2]: the time of the first log line with TEXT
# (and TEXT2).
log_secs() {
	grep -F -- "$2" "$IKE_LAB_DIR/$1/pluto.log" | grep -F -- "${3:-$2}" | head -n 1 | ike_lab_log_time
}

# wait_log SIDE TEXT SECONDS: until TEXT is in SIDE's log.
wait_log() {
	local i
	for i in $(seq $(($3 * 10))); do
		grep -qF -- "$2" "$IKE_LAB_DIR/$1/pluto.log" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# While one connection's PPK fetch waits for a silent KME (on a helper
# thread), pluto serves the other connection at once: first with the
# initiator's KME silent (enc_keys), then with the responder's (dec_keys).
case_kme_silent_others() {
	local t=6 side blocked what fail_side fail_text up fail
	for side in west east; do
		if [ $side = west ]; then
			blocked=KME_A what="initiator (west) waits for enc_keys"
			fail_side=west fail_text='ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA'
		else
			blocked=KME_B what="responder (east) waits for dec_keys"
			fail_side=east fail_text='ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID'
		fi
		echo "# $blocked silent (timeout $t s): the $what; meanwhile conn static comes up"
		ike_lab_kmes_stop
		ike_lab_kmes_start --fault "blackhole,kme=$blocked" || { tap_not_ok "kme-sim with a fault starts"; return; }
		sed "s/^timeout .*/timeout      = $t/" "$W_CONF" >"$IKE_LAB_DIR/west-slow.conf"
		sed "s/^timeout .*/timeout      = $t/" "$E_CONF" >"$IKE_LAB_DIR/east-slow.conf"
		chmod 600 "$IKE_LAB_DIR/west-slow.conf" "$IKE_LAB_DIR/east-slow.conf"
		ike_lab_side west "$PATCHED" "$IKE_LAB_DIR/west-slow.conf" $'ppk=insist\nppk-uri=pkcs11:token=qkd' "$STATIC_PSK" "$(static_conn west)"
		ike_lab_side east "$PATCHED" "$IKE_LAB_DIR/east-slow.conf" $'ppk=insist\nppk-uri=pkcs11:token=qkd' "$STATIC_PSK" "$(static_conn east)"
		ike_lab_start west && ike_lab_start east || return
		ike_lab_whack west --impair omit_v2_ike_auth_child >/dev/null
		ike_lab_whack west --impair revival >/dev/null
		ike_lab_whack west --initiate --name west-east --asynchronous >/dev/null 2>&1
		sleep 1	# IKE_SA_INIT done, the fetch has begun
		run ike_lab_whack west --initiate --name static
		expect_rc 0 "silent $blocked: conn static initiates while conn west-east waits"
		if awk -v s="$RUN_SECS" -v t=$t 'BEGIN { exit !(s < t / 4) }'; then
			tap_ok "silent $blocked: conn static up in ${RUN_SECS}s (west-east's timeout: $t s)"
		else
			tap_not_ok "silent $blocked: conn static not held up by the silent KME" "took ${RUN_SECS}s, timeout $t s"
		fi
		expect_in "PPK AUTH calculated as responder" "$(grep -F '"static"' "$IKE_LAB_DIR/east/pluto.log")" \
			"silent $blocked: east used the static PPK for conn static"
		if wait_log $fail_side "$fail_text" $((t + 4)); then
			up=$(log_secs west '"static" #' 'established IKE SA')
			fail=$(log_secs $fail_side "$fail_text")
			if [ -n "$up" ] && [ -n "$fail" ] &&
				awk -v d="$(ike_lab_elapsed "$up" "$fail")" 'BEGIN { exit !(d > 1) }'; then
				tap_ok "silent $blocked: static up at $up s, west-east's fetch gave up at $fail s (pluto's clock)"
			else
				tap_not_ok "silent $blocked: static up before west-east's fetch gave up" "static up: $up" "gave up: $fail"
			fi
		else
			tap_not_ok "silent $blocked: west-east's fetch gives up at the timeout" "no '$fail_text' in $fail_side's log"
		fi
		expect_not_in "EXPECTATION FAILED" "$(ike_lab_log west)$(ike_lab_log east)" "silent $blocked: no EXPECTATION FAILED"
		ike_lab_stop
	done
	ike_lab_kmes_stop
	ike_lab_kmes_start || tap_not_ok "kme-sim restarts"
}

# The stock initiator's conn static (ipsec.secrets PPKS, no ppk-uri).
static_conn_stock() {
	ike_lab_conn west static retransmit-timeout=10s ppk=insist
}

# log_from SIDE LINE: SIDE's log from line LINE on (what one attempt logged).
log_from() { tail -n "+$2" "$IKE_LAB_DIR/$1/pluto.log" 2>/dev/null; }
log_lines() { wc -l <"$IKE_LAB_DIR/$1/pluto.log"; }
kme_dec_lines() { grep -c ' dec_keys for ' "$IKE_LAB_DIR/kme/kme-sim.log" || true; }

# A hostile initiator: a stock pluto sends, as its PPK_ID, whatever its
# ipsec.secrets PPKS line names. East (patched, ppk=insist, the QKD token)
# must refuse each without a PPK, forward the printable ones to its KME
# exactly (escaped in the URL or the JSON body: the KME decodes the same
# bytes), never ask for the others, log them sanitized, and keep serving.
case_hostile_peer() {
	echo "# hostile peer: PPK_IDs chosen by the initiator"
	local key ids=() id name fwd q before wbefore kbefore got want new spec
	key=$(kme_env_hex "$IKE_LAB_DIR/kme/static.key")
	# NAME|ID|forwarded (1: printable, the KME must see exactly ID)
	ids=(
		"percent signs|%2e%2e%2f%00%25|1"
		"path separators|../../etc/passwd\\..\\x|1"
		"JSON metacharacters|x\"}],\"key_IDs\":[{\"key_ID\":\"y|1"
		"URL metacharacters|a?key_ID=b&c#d|1"
		"unknown UUID|0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0|1"
		"control characters|key$(printf '\001')id$(printf '\033')[31m|0"
		"a space|STATIC PPK|0"
		"non-ASCII|cl$(printf '\303\251')|0"
		"64 bytes and a tab|$(printf 'A%.0s' $(seq 63))$(printf '\t')|0"
		"overlong (65 bytes)|$(printf 'B%.0s' $(seq 65))|0"
		"overlong (300 bytes)|$(printf 'C%.0s' $(seq 300))|0"
	)
	ike_lab_side west "$STOCK" '' 'ppk=insist' \
		"$STATIC_PSK"$'\n'"@west-static @east-static : PPKS \"STATIC_PPK_1\" 0x$key" "$(static_conn_stock)"
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' "$STATIC_PSK" "$(static_conn east)"
	ike_lab_start west && ike_lab_start east || return
	local secrets=$IKE_LAB_DIR/west/ipsec.secrets base
	base=$(cat "$secrets")
	for spec in "${ids[@]}"; do
		name=${spec%%|*} id=${spec#*|} fwd=${id##*|} id=${id%|*}
		q='"'
		[[ $id == *'"'* ]] && q="'"
		printf '%s\n@west @east : PPKS %s%s%s 0x%s\n' "$base" "$q" "$id" "$q" "$key" >"$secrets"
		ike_lab_whack west --rereadsecrets >/dev/null 2>&1
		before=$(log_lines east) wbefore=$(log_lines west) kbefore=$(kme_dec_lines)
		initiate
		new=$(log_from east $((before + 1)))
		expect_not_in "established IKE SA" "$new" "hostile ($name): no IKE SA"
		expect_in "AUTHENTICATION_FAILED" "$(log_from west $((wbefore + 1)))" "hostile ($name): west gets AUTHENTICATION_FAILED"
		if [ "$fwd" = 1 ]; then
			expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID" "$new" "hostile ($name): east asked its token, which had no such key"
			# the key_IDs the KME decoded, in its log as JSON: exactly one, ID
			got=$(grep ' dec_keys for ' "$IKE_LAB_DIR/kme/kme-sim.log" | tail -n +$((kbefore + 1)) |
				sed -n 's/.* dec_keys for SAE_A: key_IDs //p')
			want=$(python3 -c 'import json,sys; print(json.dumps([sys.argv[1]]))' "$id")
			if python3 -c 'import json,sys; sys.exit(0 if [json.loads(l) for l in sys.argv[1].splitlines()] == [json.loads(sys.argv[2])] else 1)' "$got" "$want" 2>/dev/null; then
				tap_ok "hostile ($name): the KME got exactly that key_ID, once ($want)"
			else
				tap_not_ok "hostile ($name): the KME got exactly that key_ID" "want: $want" "got: $got"
			fi
		else
			expect_eq "$kbefore" "$(kme_dec_lines)" "hostile ($name): the KME was not asked"
			if [ ${#id} -le 64 ]; then
				expect_in "ppk-uri=pkcs11:token=qkd: rejecting received PPK_ID" "$new" "hostile ($name): east rejects it, naming the byte"
			else
				expect_in "PPK ID ${#id} byte length exceeds 64" "$new" "hostile ($name): east rejects its length"
			fi
			# answered at once, not dropped (the initiator would retransmit)
			if awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 2) }'; then
				tap_ok "hostile ($name): refused in ${INIT_SECS}s"
			else
				tap_not_ok "hostile ($name): refused at once" "took ${INIT_SECS}s"
			fi
		fi
	done
	# nothing a peer sent reaches pluto's log raw (jam_sanitized_hunk)
	if LC_ALL=C grep -q $'[\001-\010\013-\037\177-\377]' "$IKE_LAB_DIR/east/pluto.log"; then
		tap_not_ok "hostile: east's log has no raw control or non-ASCII byte" \
			"$(LC_ALL=C grep -n $'[\001-\010\013-\037\177-\377]' "$IKE_LAB_DIR/east/pluto.log" | cat -v | head -n 3)"
	else
		tap_ok "hostile: east's log has no raw control or non-ASCII byte"
	fi
	echo "# east keeps serving: conn static"
	run ike_lab_whack west --initiate --name static
	expect_rc 0 "hostile: east still serves conn static"
	expect_in "PPK AUTH calculated as responder" "$(grep -F '"static"' "$IKE_LAB_DIR/east/pluto.log")" "hostile: east used the static PPK for conn static"
	ike_lab_stop
	echo "# ppk=propose on both sides: a malformed (overlong) PPK_ID, then NO_PPK_AUTH"
	ike_lab_side west "$STOCK" '' 'ppk=propose' "@west @east : PPKS \"$(printf 'D%.0s' $(seq 80))\" 0x$key"
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=propose\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "hostile, propose: west initiates"
	established east "hostile, propose: IKE SA established without PPK"
	expect_in "PPK ID 80 byte length exceeds 64" "$(ike_lab_log east)" "hostile, propose: east refused the PPK_ID"
	expect_not_in "PPK AUTH calculated" "$(ike_lab_log east)" "hostile, propose: no PPK used"
	ike_lab_stop
}

# The secrets a pluto must not hold in daemon mode, into DIR (one file
# each, hex, for scan_secrets.py): a side's SAE TLS key, its EC scalar,
# big-endian as in the file and little-endian as OpenSSL's BIGNUMs keep it
# in memory. (Not the DER: its first bytes are the P-256 OIDs, which NSS
# holds anyway.)
sae_secrets() { # DIR KEY_FILE NAME
	local hex
	# openssl prints the scalar as a number: a sign byte 00 before a top
	# bit, none for leading zero bytes (one key in 256); 32 bytes it is
	hex=$(openssl pkey -in "$2" -text -noout | sed -n '/^priv:/,/^pub:/p' |
		grep -v -e '^priv:' -e '^pub:' | tr -d ' :\n')
	python3 -c 'import sys
b = int(sys.argv[1], 16).to_bytes(32, "big")
open(sys.argv[2], "w").write(b.hex() + "\n")
open(sys.argv[3], "w").write(b[::-1].hex() + "\n")' "$hex" "$1/$3-scalar" "$1/$3-scalar-le" ||
		tap_not_ok "the EC scalar of $2" "$hex"
}

# The TCP sockets among a process's descriptors (inodes in its network
# namespace's /proc/net/tcp*), one "local remote" pair a line.
tcp_sockets() { # PID
	local pid=$1 inodes
	inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n')
	[ -n "$inodes" ] || return 0
	awk -v list="$inodes" 'BEGIN { n = split(list, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		FNR > 1 && ($10 in want) { print $2, $3 }' "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6"
}

# Privilege separation. In daemon mode pluto's process must never open the
# SAE's key (nor the configuration, certificate or CA), never connect to a
# KME, and its memory must hold neither the SAE's key nor QKD keys that
# kmstored served to another client; in-process, the same checks find the
# key and the KME connection in pluto (the reason for kmstored), which
# shows that they can find them.
case_privsep() {
	local mode=in-process d sec=$IKE_LAB_DIR/privsep side pid out other id
	[ "${IKE_LAB_DAEMON:-0}" = 1 ] && mode=daemon
	echo "# privilege separation: what pluto's process touches and holds ($mode)"
	rm -rf "$sec"
	mkdir -p "$sec/keys" "$sec/cores"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "privsep ($mode): a QKD IKE SA"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "privsep ($mode): with its PPK"
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	initiate
	expect_rc_init 0 "privsep ($mode): a second one"
	# Keys pluto never asked for: another client of the same store
	# (kmstored in daemon mode) takes two.
	for other in 1 2; do
		if [ "$mode" = daemon ]; then
			out=$("$KMSTORE" --daemon "$(ike_lab_kmstored west)" key qkd --reveal hex 2>&1) || true
		else
			out=$(ike_lab_exec west "$KMSTORE" -c "$W_CONF" key qkd --reveal hex 2>&1) || true
		fi
		awk '$1 == "key" { print $2 }' <<<"$out" >"$sec/keys/other-$other"
		[ -s "$sec/keys/other-$other" ] || tap_not_ok "privsep ($mode): another client gets a key" "$out"
	done
	sae_secrets "$sec/keys" "$IKE_LAB_DIR/kme/pki/sae-a.key" sae-a
	sae_secrets "$sec/keys" "$IKE_LAB_DIR/kme/pki/sae-b.key" sae-b
	for side in west east; do
		pid=$(cat "$IKE_LAB_DIR/$side/pid")
		out=$(tcp_sockets "$pid")
		if [ "$mode" = daemon ]; then
			expect_eq "" "$out" "privsep (daemon): $side's pluto has no TCP socket (no KME connection)"
			expect_match "socket:" "$(ls -l "/proc/$pid/fd")" "privsep (daemon): ... but sockets (IKE, kmstored)"
		else
			expect_match ":20F[BC] " "$(awk '{ print $2 }' <<<"$out" | tr '\n' ' ') " \
				"privsep (in-process): $side's pluto holds a TCP connection to its KME (port 8443/8444)"
		fi
		timeout 120 gcore -o "$sec/cores/$side" "$pid" >"$sec/gcore-$side.out" 2>&1 ||
			tap_not_ok "privsep ($mode): gcore $side's pluto" "$(tail -n 3 "$sec/gcore-$side.out")"
	done
	out=$(python3 "$here/../hygiene/scan_secrets.py" "$sec/keys" "$sec/cores" 2>&1) || true
	echo "$out" | grep -E '^(LEAK|clean)' | sed "s|$sec/||; s/^/#   /"
	if [ "$mode" = daemon ]; then
		expect_eq "" "$(grep LEAK <<<"$out" || true)" \
			"privsep (daemon): neither pluto's memory holds an SAE key, nor the keys kmstored gave another client"
		expect_eq 2 "$(grep -c '^clean' <<<"$out" || true)" "privsep (daemon): both cores scanned"
	else
		expect_match "LEAK .*west.*key sae-a-" "$out" \
			"privsep (in-process): west's pluto memory holds its SAE's key (the scan finds it)"
		expect_not_in "other-" "$(grep LEAK <<<"$out" || true)" \
			"privsep (in-process): ... but not keys another process took"
	fi
	ike_lab_stop
	# What pluto opens and connects to, under strace, for one QKD IKE SA.
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	IKE_LAB_WRAPPER="strace -f -qq -e trace=open,openat,connect -o $sec/strace-west" ike_lab_start west &&
		ike_lab_start east || return
	initiate
	expect_rc_init 0 "privsep ($mode): a QKD IKE SA with west's pluto under strace"
	ike_lab_stop
	out=$(cat "$sec"/strace-west* 2>/dev/null)
	if [ "$mode" = daemon ]; then
		expect_not_in "sae-a.key" "$out" "privsep (daemon): west's pluto never opens the SAE's private key"
		expect_not_in "$W_CONF" "$out" "privsep (daemon): ... nor kmstore.conf"
		expect_not_in "inet_addr(\"192.0.2.254\")" "$out" "privsep (daemon): ... nor connects to a KME"
		expect_in "sun_path=\"$(ike_lab_kmstored west)\"" "$out" "privsep (daemon): it connects to kmstored"
	else
		expect_in "sae-a.key" "$out" "privsep (in-process): west's pluto opens the SAE's private key (the trace sees it)"
		expect_in "inet_addr(\"192.0.2.254\")" "$out" "privsep (in-process): ... and connects to its KME"
	fi
}

# kmstored down, killed during a fetch, restarted: pluto's IKE SAs fail
# cleanly in bounded time, and the next one works once kmstored is back,
# with the same plutos.
case_daemon_faults() {
	[ "${IKE_LAB_DAEMON:-0}" = 1 ] || return 0
	echo "# kmstored down, killed mid-fetch and restarted under running plutos"
	local wpid epid
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	wpid=$(cat "$IKE_LAB_DIR/west/pid") epid=$(cat "$IKE_LAB_DIR/east/pid")
	initiate
	expect_rc_init 0 "daemon faults: an IKE SA with both kmstoreds"
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	ike_lab_kmstored_stop west KILL
	initiate
	expect_not_in "established IKE SA" "$(log_from west "$(log_lines west)")" "west's kmstored killed: no IKE SA (ppk=insist)"
	expect_match "kmstored at [^ ]*west/kmstored.sock: cannot connect" "$(ike_lab_log west)" "... west's log says kmstored is not there"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 3) }' && tap_ok "... within ${INIT_SECS}s" ||
		tap_not_ok "... in bounded time" "took ${INIT_SECS}s"
	ike_lab_kmstored_start west
	local before
	before=$(log_lines east)
	initiate
	expect_rc_init 0 "west's kmstored back: the next IKE SA, same pluto"
	expect_in "PPK AUTH calculated as responder" "$(log_from east $((before + 1)))" "... with its PPK"
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	ike_lab_kmstored_stop east KILL
	before=$(log_lines east)
	initiate
	expect_in "no PPK for received PPK_ID" "$(log_from east $((before + 1)))" "east's kmstored killed: the responder has no PPK for the ID"
	expect_in "cannot connect" "$(log_from east $((before + 1)))" "... and says why"
	ike_lab_kmstored_start east
	before=$(log_lines east)
	initiate
	expect_rc_init 0 "east's kmstored back: the next IKE SA"
	expect_in "PPK AUTH calculated as responder" "$(log_from east $((before + 1)))" "... with its PPK"
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	echo "# west's kmstored killed while it waits for a silent KME"
	ike_lab_kmes_stop
	ike_lab_kmes_start --fault blackhole,kme=KME_A || { tap_not_ok "kme-sim with a fault starts"; return; }
	ike_lab_whack west --initiate --name west-east --asynchronous >/dev/null 2>&1
	sleep 1
	local t0 t1
	t0=$(date +%s.%N)
	ike_lab_kmstored_stop west KILL
	if wait_log west "closed the connection before it answered" 5; then
		t1=$(date +%s.%N)
		tap_ok "killed mid-fetch: pluto is told, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s later"
	else
		tap_not_ok "killed mid-fetch: pluto is told" "$(ike_lab_log west | tail -n 5)"
	fi
	ike_lab_kmes_stop
	ike_lab_kmes_start || tap_not_ok "kme-sim restarts"
	ike_lab_kmstored_start west
	ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	before=$(log_lines east)
	initiate
	expect_rc_init 0 "kmstored restarted: the next IKE SA"
	expect_in "PPK AUTH calculated as responder" "$(log_from east $((before + 1)))" "... with its PPK"
	expect_eq "$wpid $epid" "$(cat "$IKE_LAB_DIR/west/pid") $(cat "$IKE_LAB_DIR/east/pid")" "the same two plutos throughout"
	ike_lab_stop
}

# pluto started while its kmstored is down (it failed to start, or is
# restarting): the module has no token at first; once kmstored serves, the
# token comes to the same pluto, and an IKE SA has its PPK without
# ipsec restart. The module looks at most every 5 s: initiate until then
# (30 s at most).
case_late_token() {
	[ "${IKE_LAB_DAEMON:-0}" = 1 ] || return 0
	echo "# pluto started before its kmstored"
	local wpid tries=0 deadline=$((SECONDS + 30))
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west --kmstored-later && ike_lab_start east || return
	wpid=$(cat "$IKE_LAB_DIR/west/pid")
	initiate
	expect_not_in "established IKE SA" "$(ike_lab_log west)" "west's kmstored not started: no IKE SA (ppk=insist)"
	expect_match "kmstored at [^ ]*west/kmstored.sock: cannot connect.*the module has no tokens yet" \
		"$(ike_lab_log west)" "... the module said why it has no token"
	ike_lab_kmstored_start west
	while :; do
		tries=$((tries + 1))
		ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
		initiate
		{ [ "$INIT_RC" -eq 0 ] || [ "$SECONDS" -ge "$deadline" ]; } && break
		sleep 1
	done
	expect_rc_init 0 "kmstored started: an IKE SA with the same pluto (try $tries)"
	expect_match "profile 'qkd' is new in kmstored at [^ ]*west/kmstored.sock: its token is in slot" \
		"$(ike_lab_log west)" "... the token came to the running pluto"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "... with its PPK"
	expect_eq "$wpid" "$(cat "$IKE_LAB_DIR/west/pid")" "... and no restart"
	ike_lab_stop
}

# A QKD key serves one IKE SA: an initiator that offers a PPK_ID the
# responder has already used gets no PPK. West is a stock pluto whose
# ipsec.secrets holds a QKD key taken by hand at west's KME (ID and bytes),
# so it offers that PPK_ID for every IKE SA; east (patched, ppk=insist, the
# QKD token) finds the key by ID (dec_keys) for the first one only.
case_reused_ppk_id() {
	echo "# a used QKD PPK_ID offered again for a new IKE SA"
	local out id hex before kbefore
	if [ -z "${KMSTORE:-}" ]; then
		tap_not_ok "reused PPK_ID: the kmstore command (KMSTORE) is given"
		return
	fi
	out=$(ike_lab_exec west "$KMSTORE" -c "$W_CONF" key qkd --reveal hex) ||
		{ tap_not_ok "reused PPK_ID: west takes a QKD key by hand" "$out"; return; }
	id=$(awk '$1 == "key-id" { print $2 }' <<<"$out") hex=$(awk '$1 == "key" { print $2 }' <<<"$out")
	python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$hex" >"$IKE_LAB_DIR/reused.key"	# for the secret scan
	ike_lab_side west "$STOCK" '' 'ppk=insist' "@west @east : PPKS \"$id\" 0x$hex"
	ike_lab_side east "$PATCHED" "$E_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	initiate
	expect_rc_init 0 "reused PPK_ID: the first IKE SA with QKD key $id"
	expect_in "PPK AUTH calculated as responder" "$(ike_lab_log east)" "reused PPK_ID: east used the PPK once"
	ike_lab_whack west --deletestate 1 >/dev/null 2>&1 || ike_lab_whack west --terminate --name west-east >/dev/null 2>&1
	sleep 0.5
	before=$(log_lines east) kbefore=$(kme_dec_lines)
	initiate
	expect_not_in "established IKE SA" "$(log_from east $((before + 1)))" "reused PPK_ID: no second IKE SA with it"
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID $id" "$(log_from east $((before + 1)))" \
		"reused PPK_ID: east has no PPK for it any more"
	expect_not_in "PPK AUTH calculated" "$(log_from east $((before + 1)))" "reused PPK_ID: the PPK was not used again"
	expect_eq $((kbefore + 1)) "$(kme_dec_lines)" "reused PPK_ID: east asked its KME again (which delivers a key once)"
	ike_lab_stop
}

# seccomp=enabled: the helper threads that fetch a ppk-uri= PPK may not
# open sockets (the kernel would kill a helper at the first QKD fetch, and
# its IKE SA would wait forever), so such a connection is refused when it
# is loaded, by addconn --checkconfig and by pluto; pluto itself runs and
# serves its other connections. seccomp=tolerant loads it with a warning.
plain_conn() { # SIDE: conn plain, PSK only, no PPK
	ike_lab_conn "$1" plain retransmit-timeout=10s
}
PLAIN_PSK='@west-plain @east-plain : PSK "kmstore lab pre-shared key 3"'
case_seccomp() {
	echo "# seccomp=enabled refuses ppk-uri="
	local d=$IKE_LAB_DIR/check
	mkdir -p "$d"
	printf 'config setup\n\tseccomp=enabled\n\nconn a\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tppk=insist\n\tppk-uri=pkcs11:token=static\n' >"$d/seccomp.conf"
	run "$PATCHED/libexec/ipsec/addconn" --checkconfig --config "$d/seccomp.conf"
	expect_rc 3 "seccomp: addconn --checkconfig refuses ppk-uri= with seccomp=enabled"
	expect_in "ppk-uri=pkcs11:token=static cannot be used with seccomp=enabled" "$RUN_OUT$RUN_ERR" \
		"seccomp: ... and says why"
	ike_lab_side west "$PATCHED" '' '' "$PLAIN_PSK" "$(plain_conn west)"
	IKE_LAB_SETUP=seccomp=enabled ike_lab_side east "$PATCHED" "$E_CONF" \
		$'ppk=insist\nppk-uri=pkcs11:token=static' "$PLAIN_PSK" "$(plain_conn east)"
	ike_lab_start west || return
	ike_lab_start east 2>/dev/null
	expect_in "seccomp security enabled in strict mode" "$(ike_lab_log east)" "seccomp: east's pluto runs with seccomp=enabled"
	expect_in "ppk-uri=pkcs11:token=static cannot be used with seccomp=enabled" \
		"$(cat "$IKE_LAB_DIR/east/addconn.out")" "seccomp: east refuses to load conn west-east (ppk-uri=)"
	run ike_lab_whack east --connectionstatus
	expect_not_in '"west-east":' "$RUN_OUT" "seccomp: conn west-east is not loaded"
	ike_lab_initiate west plain
	expect_in '"plain" #1: responder established IKE SA' "$(ike_lab_log east)" "seccomp: east still serves conn plain"
	ike_lab_stop
	echo "# seccomp=tolerant: loaded, with a warning; a QKD fetch fails within its timeout"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	IKE_LAB_SETUP=seccomp=tolerant ike_lab_side east "$PATCHED" "$E_CONF" \
		$'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west && ike_lab_start east || return
	expect_in "ppk-uri=pkcs11:token=qkd with seccomp=tolerant" "$(ike_lab_log east)" \
		"seccomp: tolerant loads conn west-east with a warning"
	initiate
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID" "$(ike_lab_log east)" \
		"seccomp: tolerant: east's fetch from its KME fails (the network calls are trapped)"
	expect_in "AUTHENTICATION_FAILED" "$(ike_lab_log west)" "seccomp: tolerant: ppk=insist fails the IKE SA"
	awk -v s="$INIT_SECS" 'BEGIN { exit !(s < 7) }' && tap_ok "seccomp: tolerant: no stall (${INIT_SECS}s, timeout 3 s)" ||
		tap_not_ok "seccomp: tolerant: no stall" "took ${INIT_SECS}s"
	ike_lab_stop
}

# pluto with logfile=: it writes its own log to the file and points its
# stderr at /dev/null, so a module that logs to stderr is lost. With the
# module's default (log=auto), its lines go to syslog (here captured by
# an LD_PRELOAD shim), with pluto's own lines in the file.
case_logfile() {
	echo "# pluto with logfile=: the module's reasons reach syslog"
	if [ -z "${SYSLOG_CAPTURE_LIB:-}" ]; then
		tap_not_ok "logfile: the syslog capture shim (SYSLOG_CAPTURE_LIB) is given"
		return
	fi
	local cap=$IKE_LAB_DIR/east-syslog.txt file=$IKE_LAB_DIR/east-pluto-file.log
	rm -f "$cap" "$file"
	ike_lab_side west "$PATCHED" "$W_CONF" $'ppk=insist\nppk-uri=pkcs11:token=static' ''
	IKE_LAB_SETUP="logfile=$file" IKE_LAB_MODULE_PARAMS="" ike_lab_side east "$PATCHED" "$E_CONF" \
		$'ppk=insist\nppk-uri=pkcs11:token=qkd' ''
	ike_lab_start west || return
	IKE_LAB_WRAPPER="env LD_PRELOAD=$SYSLOG_CAPTURE_LIB SYSLOG_CAPTURE=$cap" ike_lab_start east || return
	initiate
	expect_in "ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID STATIC_PPK_1" "$(cat "$file" 2>/dev/null)" \
		"logfile: pluto's own lines are in its log file"
	expect_in "kmstore-pkcs11: warning: token qkd: no key STATIC_PPK_1: " "$(cat "$cap" 2>/dev/null)" \
		"logfile: the module's reason (the KME's answer) is in syslog"
	expect_in "HTTP 400" "$(cat "$cap" 2>/dev/null)" "logfile: ... with the KME's HTTP status"
	ike_lab_stop
}

# Secret hygiene: after each case, every pluto log (with the module's
# lines), whack output and kme-sim's log is searched for the keys the lab
# knows (the static key, the mismatch case's other key) in hex, base64 and
# raw form.
LEAKS=()
scan_case() { # CASE
	local out
	out=$(ike_lab_scan_secrets "$IKE_LAB_DIR/other.key" "$IKE_LAB_DIR/reused.key") || LEAKS+=("$1: $(head -n 3 <<<"$out")")
}

ALL=(checkconfig seccomp logfile static qkd rekey mismatch unknown_id no_token intermediate intermediate_addke intermediate_tokens intermediate_ppk_ids interop hostile_peer reused_ppk_id kme_down kme_silent kme_silent_others far_kme near_kme privsep daemon_faults late_token)
[ -z "$OTHER" ] || ALL+=(cross_qkd cross_intermediate)
started=$SECONDS
for c in "${ALL[@]}"; do
	case_wanted "$c" || continue
	t0=$SECONDS
	"case_$c"
	ike_lab_stop
	scan_case "$c"
	echo "# case $c: $((SECONDS - t0)) s"
done
echo "# all cases: $((SECONDS - started)) s"
if [ ${#LEAKS[@]} -eq 0 ]; then
	tap_ok "no log or output of any case holds a key the lab knows"
else
	tap_not_ok "no log or output of any case holds a key the lab knows" "${LEAKS[@]}"
fi
expect_eq 0 "$IKE_LAB_CRASHES" "no pluto died of a signal (SIGSEGV, SIGABRT, ...)"
expect_eq 0 "$IKE_LAB_LEAKS" "no pluto's leak detective found a leak at shutdown"
tap_done
