#!/usr/bin/env bash
# fault_matrix.sh - every fault a KME (kme-sim) or its TLS can show, against
# every face of kmstore: the kmstore command, the OpenSSL provider (openssl
# storeutl), the PKCS#11 module through NSS, and the module through
# kmstored (tests/faults/faces.sh).
# Each cell asserts: the outcome (no key; a key for "slow, within the
# timeout"), an error naming the cause (the row's regex, in kmstore's own
# words, not the KME's), the face's code for it (kmstore's exit status,
# the provider's reason, NSS's error), the time (the profile's timeout plus
# FAULT_MARGIN) and no crash (signal, hang, sanitizer report). kme-sim is
# restarted per row only; all faces of a row share it. The matrix is
# printed at the end: rows are faults, columns faces.
#
# Environment: as faces.sh, plus KME_SIM and KME_SIM_PKI; FAULT_ROWS and
# FAULT_FACES (extended regexes) run a part of the matrix. A face whose
# programs are missing is a column of "skip".
#
# The pluto column (faces.sh; PLUTO_PREFIX, as root) replays each row on a
# kme-sim of its own in the netns lab: its cell is the tunnel whose fetch
# meets the fault (enc: the initiator's, dec: the responder's), and it also
# asserts that tunnel's ppk= policy and that another tunnel is served.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
. "$here/../lib/kme-env.sh"
. "$here/faces.sh"
: "${KME_SIM:?}" "${KME_SIM_PKI:?}" "${KMSTORE:?}"

work=$(mktemp -d /tmp/fault-matrix.XXXXXX)
trap 'kme_env_stop; faces_fini; rm -rf "$work"' EXIT

export KME_TIMEOUT=2 # the profiles' timeout, seconds (kme-env.sh)
MARGIN=${FAULT_MARGIN:-1}
LIMIT=$((KME_TIMEOUT + MARGIN))

faces_available
FACES_RUN=()
for f in "${FACES[@]}"; do
	[[ $f =~ ${FAULT_FACES:-.} ]] && FACES_RUN+=("$f")
done
faces_init "$work/faces"

# One PKI for every row: kme-env.sh calls "$pki" DIR, here a copy. The KME
# certificates also name $FACE_DNS_NAME, for the rows with a DNS server.
"$KME_SIM_PKI" "$work/pki" --dns "$FACE_DNS_NAME" >"$work/pki.log" 2>&1
pki_copy() { cp -a "$work/pki" "$1"; }

# The rows: NAME | kme-sim options | configuration change | OP | class | regex
#   options: @down starts the lab and stops kme-sim (connection refused);
#            @wrong-name serves KME_A with a certificate for another name;
#            @two serves KME_A on two listeners (one key store), and what
#            follows are kme-sim options (KME_A/1: the first listener);
#            @dns=MS (or never): the KME URLs name a host that a DNS server
#            answers after MS (tests/faults/slow_dns.py, on a loopback
#            address; the faces see it through with-resolver.sh)
#   change:  SETTING=PKI-FILE[,...] in the QKD profile of the site asked;
#            url=both: KME_A's two listeners, url=down: a dead one first
#   OP:      enc (west asks for a key for use now), dec (east asks for a
#            key west was given), ok (as enc, and a key must come)
#   class:   the kmstore exit status: 7 the KME answered badly, 8 the KME
#            is unreachable (connection, TLS, timeout)
rows=(
	"down|@down||enc|8|cannot connect: .*(refused|Failed to connect)"
	"black hole|--fault blackhole||enc|8|no answer within the timeout of 2\\.0 s"
	"slow 1.4 s < timeout|--fault latency=1400||ok|0|"
	"slow 2.5 s > timeout|--fault latency=2500||enc|8|no answer within the timeout of 2\\.0 s"
	"drop|--fault drop||enc|8|closed the connection without an answer"
	"400 JSON|--fault status=400||enc|7|enc_keys for SAE 'SAE_B': HTTP 400: fault injection"
	"401 JSON|--fault status=401||enc|7|enc_keys for SAE 'SAE_B': HTTP 401: fault injection.* \\(likely: the KME does not accept"
	"403 JSON|--fault status=403||enc|7|enc_keys for SAE 'SAE_B': HTTP 403: fault injection"
	"404 JSON|--fault status=404||enc|7|enc_keys for SAE 'SAE_B': HTTP 404: fault injection"
	"503 JSON|--fault 503||enc|7|enc_keys for SAE 'SAE_B': HTTP 503: fault injection"
	"400 HTML|--fault html-error=400||enc|7|enc_keys for SAE 'SAE_B': HTTP 400 \\(the body is not an ETSI error message: [0-9]+ bytes of HTML or XML"
	"401 HTML|--fault html-error=401||enc|7|enc_keys for SAE 'SAE_B': HTTP 401 \\(the body is not an ETSI error message: [0-9]+ bytes of HTML or XML.* \\(likely: the KME does not accept"
	"401 (dec)|--fault status=401,path=dec_keys||dec|7|dec_keys for SAE 'SAE_A': HTTP 401: fault injection.* \\(likely: the KME holds no such key for this SAE"
	"403 HTML|--fault html-error=403||enc|7|enc_keys for SAE 'SAE_B': HTTP 403 \\(the body is not an ETSI error message: [0-9]+ bytes of HTML or XML"
	"404 HTML|--fault html-error=404||enc|7|enc_keys for SAE 'SAE_B': HTTP 404 \\(the body is not an ETSI error message: [0-9]+ bytes of HTML or XML"
	"503 HTML|--fault html-error=503||enc|7|enc_keys for SAE 'SAE_B': HTTP 503 \\(the body is not an ETSI error message: [0-9]+ bytes of HTML or XML"
	"malformed JSON|--fault malformed||enc|7|answer is not valid JSON"
	"truncated body|--fault truncated||enc|8|transfer closed with [0-9]+ bytes remaining"
	"oversized body|--fault oversized||enc|7|the answer is larger than [0-9]+ bytes"
	"wrong key length|--fault wrong-length||enc|7|key '[^']+' is not 32 bytes"
	"wrong key ID (dec)|--fault wrong-id,path=dec_keys||dec|7|answered with key_ID '[^']+', not the '[^']+'"
	"extra key|--fault extra-key||enc|7|the KME sent 2 keys; 1 was asked for"
	"503 (dec)|--fault 503,path=dec_keys||dec|7|dec_keys for SAE 'SAE_A': HTTP 503"
	"black hole (dec)|--fault blackhole,path=dec_keys||dec|8|dec_keys for SAE 'SAE_A': no answer within the timeout"
	"untrusted KME CA|-|ca=rogue-ca.crt|enc|8|TLS failure: .*(certificate|verify)"
	"KME cert other name|@wrong-name||enc|8|TLS failure: .*(kme\\.invalid|name|match)"
	"client cert refused|-|certificate=rogue-sae-a.crt,private-key=rogue-sae-a.key|enc|8|TLS failure(: .*alert|\\? the KME closed)"
	"failover: 1st KME down|@two|url=down|ok|0|"
	"failover: 1st black hole|@two --fault blackhole,kme=KME_A/1|url=both|ok|0|"
	"failover: 1st 503|@two --fault 503,kme=KME_A/1|url=both|ok|0|"
	"failover: 1st 500|@two --fault status=500,kme=KME_A/1|url=both|ok|0|"
	"failover: every KME 503|@two --fault 503,kme=KME_A|url=both|enc|7|every KME of profile 'qkd' failed enc_keys for SAE 'SAE_B' \\([0-9]+ tries\\): https://[^ ]+: HTTP 503[^;]*; https://[^ ]+: HTTP 503"
	"slow DNS 0.5 s|@dns=500||ok|0|"
	"slow DNS, silent KME|@dns=1500 --fault blackhole||enc|8|no answer within the timeout of 2\\.0 s"
	"silent DNS|@dns=never||enc|8|cannot resolve '$FACE_DNS_NAME' within the timeout of 2\\.0 s"
)

# What each face says for a class beyond the message: the provider's
# reason string, the NSS error (C_GenerateKey's CKR) for enc. A search by
# ID (dec) that fails finds nothing: NSS has no error code for it.
declare -A face_code=(
	[openssl,7]="kmstore:[a-z_]+:KME error:" [openssl,8]="kmstore:[a-z_]+:KME unreachable:"
	[pkcs11,7]="SEC_ERROR_PKCS11_FUNCTION_FAILED" [pkcs11,8]="SEC_ERROR_PKCS11_DEVICE_ERROR"
	[daemon,7]="SEC_ERROR_PKCS11_FUNCTION_FAILED" [daemon,8]="SEC_ERROR_PKCS11_DEVICE_ERROR"
	[pluto,enc]="ppk-uri=pkcs11:token=qkd: no PPK for this IKE SA: the token did not give a key: SEC_ERROR_PKCS11_"
	[pluto,dec]="ppk-uri=pkcs11:token=qkd: no PPK for received PPK_ID [^ ]+: the token could not get the key: SEC_ERROR_PKCS11_"
)
face_code[pluto,7]=${face_code[pluto,enc]}FUNCTION_FAILED face_code[pluto,8]=${face_code[pluto,enc]}DEVICE_ERROR

declare -A cell
row_names=()

# own_addr 127.N: a loopback address of this run's own (for a DNS server
# on port 53).
own_addr() { echo "$1.$(($$ / 256 % 256)).$(($$ % 256 | 1))"; }

# lab OPTIONS...: kme-sim afresh, and both sites' configurations.
lab() {
	kme_env_stop
	rm -rf "$work/lab"
	kme_env_start "$work/lab" "$KME_SIM" pki_copy "$@" >/dev/null
	cp "$work/lab/west.conf" "$work/faces/west.conf"
	cp "$work/lab/east.conf" "$work/faces/east.conf"
}

# A key ID that west was given (enc_keys at KME_A), for east to ask for.
west_key_id() {
	"$KMSTORE" -c "$work/lab/west.conf" --json key qkd |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])'
}

# check_cell ROW FACE OP CLASS REGEX: one TAP line per cell.
check_cell() {
	local row=$1 face=$2 op=$3 class=$4 re=$5 why=() code
	if face_crashed; then
		why+=("crashed or hung (exit $CELL_RC)")
	fi
	if [[ $op == ok ]]; then
		[[ $CELL_KEY == 1 ]] || why+=("no key delivered")
	else
		[[ $CELL_KEY == 0 ]] || why+=("a key was delivered")
		[[ $CELL_OUT =~ $re ]] || why+=("no /$re/")
		case $face in
		kmstore) [[ $CELL_RC -eq $class ]] || why+=("exit $CELL_RC, not $class") ;;
		*)
			code=${face_code[$face,$class]}
			[[ ($face == pkcs11 || $face == daemon) && $op == dec ]] && code="no key with that ID"
			[[ $face == pluto && $op == dec ]] && code=${face_code[pluto,dec]}
			[[ $CELL_OUT =~ $code ]] || why+=("no /$code/")
			;;
		esac
	fi
	why+=("${CELL_WHY[@]}")
	# pluto's "ok" cell waits for two slow fetches, the initiator's and
	# the responder's, one after the other
	local limit=$LIMIT
	[[ $face == pluto && $op == ok ]] && limit=$((2 * KME_TIMEOUT + MARGIN))
	awk -v t="$CELL_SECS" -v l="$limit" 'BEGIN { exit !(t < l) }' ||
		why+=("took ${CELL_SECS}s, limit ${limit}s")
	if [[ ${#why[@]} -eq 0 ]]; then
		cell[$row,$face]="ok $CELL_SECS"
		tap_ok "$row × $face (${CELL_SECS}s)"
		[[ $op == ok ]] || printf '#   %s\n' "$(grep -m1 -E -- "$re" <<<"$CELL_OUT" | cut -c1-240)"
	else
		cell[$row,$face]="FAIL $CELL_SECS"
		# the whole output (for pluto both logs), kept for whoever
		# looks into it: a cell that fails once in many runs may not
		# fail again
		local kept
		kept=$(mktemp /tmp/fault-matrix-cell.XXXXXX)
		printf '%s\n' "$CELL_OUT" >"$kept"
		tap_not_ok "$row × $face (${CELL_SECS}s)" "${why[@]}" \
			"output: $(head -c 1500 <<<"$CELL_OUT")" "whole output: $kept"
	fi
}

for spec in "${rows[@]}"; do
	IFS='|' read -r name opts chg op class re <<<"$spec"
	[[ $name =~ ${FAULT_ROWS:-.} ]] || continue
	row_names+=("$name")
	kopts=() kcert='' down=0 listeners=1 FACE_DNS_DELAY=''
	case $opts in
	@down) down=1 ;;
	@wrong-name) kcert=wrong-name ;;
	@two*) listeners=2; read -ra kopts <<<"${opts#@two}" ;;
	-) ;;
	@dns=*)
		read -ra kopts <<<"$opts"
		FACE_DNS_DELAY=${kopts[0]#@dns=} kopts=("${kopts[@]:1}")
		;;
	*) read -ra kopts <<<"$opts" ;;
	esac
	KME_A_LISTENERS=$listeners KME_A_CERT=$kcert lab "${kopts[@]}"
	faces_dns_stop
	FACE_WRAP=()
	if [[ -n $FACE_DNS_DELAY ]]; then
		faces_dns_start "$work/dns" "$(own_addr 127.53)" 127.0.0.1 "$FACE_DNS_DELAY"
		for s in west east; do faces_conf_url "$work/faces/$s.conf"; done
		FACE_WRAP=(sh "$here/with-resolver.sh" "$work/dns")
	fi
	side=west
	[[ $op == dec ]] && side=east
	[[ -z $chg ]] || faces_conf_set "$work/faces/$side.conf" "$work/lab/pki" "$chg"
	declare -A ids=()
	for face in "${FACES_RUN[@]}"; do
		[[ $op == dec ]] && ! declare -F "face_${face}_row" >/dev/null &&
			ids[$face]=$(west_key_id)
	done
	[[ $down == 1 ]] && kme_env_stop
	for face in "${FACES_ALL[@]}"; do
		if [[ " ${FACES_RUN[*]} " != *" $face "* ]]; then
			cell[$name,$face]="skip"
			continue
		fi
		if declare -F "face_${face}_row" >/dev/null &&
			! KME_A_LISTENERS=$listeners KME_A_CERT=$kcert "face_${face}_row" "$side" "$chg" "$down" "${kopts[@]}" >"$work/row.err" 2>&1; then
			cell[$name,$face]="FAIL"
			tap_not_ok "$name × $face" "the row's KME did not start: $(cat "$work/row.err")"
			continue
		fi
		"face_$face" "${op/ok/enc}" "$side" "${ids[$face]:-}"
		check_cell "$name" "$face" "$op" "$class" "$re"
	done
	unset ids
done

# A long-lived process asks DNS for a KME's name once per TTL, not once
# per key (each key took the DNS server's round trip before): kmstored
# through a DNS server 0.3 s away whose answers hold 5 s, four keys, then
# one more after the TTL. Counted in the server's log, not timed.
dns_ttl() {
	local sock=$work/faces/west.sock dir=$work/dns-ttl n1 n4 n5 t
	lab
	faces_dns_start "$dir" "$(own_addr 127.54)" 127.0.0.1 300 '' 5 || return 1
	faces_conf_url "$work/faces/west.conf"
	kmstored_start "$sock" "$work/faces/west.conf" sh "$here/with-resolver.sh" "$dir" || return 1
	key() { "$KMSTORE" --daemon "$sock" key qkd >/dev/null; }
	key || return 1
	# the answer was kept before the first key came back
	t=$(date +%s.%N)
	n1=$(grep -c '^query ' "$dir/dns.log")
	key && key && key || return 1
	n4=$(grep -c '^query ' "$dir/dns.log")
	# past the TTL: 5 s from the first key's return, and a margin
	sleep "$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { d = 5.3 - (b - a); print (d > 0 ? d : 0) }')"
	key || return 1
	n5=$(grep -c '^query ' "$dir/dns.log")
	expect_eq 1 "$((n1 > 0))" "DNS: kmstored asked the DNS server for the KME's name ($n1 queries, A and AAAA)"
	expect_eq "$n1" "$n4" "DNS: ... once for four keys"
	expect_eq "$((2 * n1))" "$n5" "DNS: ... and again once the answer's TTL (5 s) had passed"
}
if [[ " ${FACES_RUN[*]} " == *" daemon "* && "DNS TTL" =~ ${FAULT_ROWS:-.} ]]; then
	dns_ttl || tap_not_ok "DNS: kmstored asks for the KME's name once per TTL" \
		"a key was not served: $(tail -n 5 "$work/faces/west.sock.log" 2>/dev/null)"
	kmstored_stop "$work/faces/west.sock"
	faces_dns_stop
fi
kme_env_stop

# The matrix.
{
	printf '\n%-22s' "fault \\ face"
	for face in "${FACES_ALL[@]}"; do printf ' | %-10s' "$face"; done
	printf '\n%s' "----------------------"
	for face in "${FACES_ALL[@]}"; do printf -- '-+-----------'; done
	printf '\n'
	for name in "${row_names[@]}"; do
		printf '%-22s' "$name"
		for face in "${FACES_ALL[@]}"; do printf ' | %-10s' "${cell[$name,$face]}"; done
		printf '\n'
	done
	printf '(seconds per cell; profile timeout %s s, limit %s s; pluto: the initiation of the failing tunnel;\n' "$KME_TIMEOUT" "$LIMIT"
	printf ' failover rows: KME_A on two listeners of one key store, the profile naming both)\n\n'
} | sed 's/^/# /'

tap_done
