# shellcheck shell=bash disable=SC2034 # CELL_* and FACES_ALL are for the caller
# faces.sh - one way to ask each face of kmstore for a QKD key, for the
# fault matrix and the secret-hygiene test. Source it after tests/lib/
# kme-env.sh. The programs come from the environment (tests/faults/
# CMakeLists.txt sets them):
#
#   KMSTORE                 the kmstore command
#   OPENSSL, KMSTORE_PROVIDER_DIR   openssl and the provider's directory
#   P11_MODULE, NSS_CLIENT  kmstore-pkcs11.so and provider/pkcs11/tests'
#                           nss_client (NSS as pluto uses it)
#   KMSTORE_TEST_PRELOAD    the ASan runtime in a sanitizer build: openssl,
#                           modutil and certutil are not instrumented
#
# Every face reads the configuration of a site from $FACE_DIR/SIDE.conf
# (SIDE is west or east), which the caller rewrites at will: the NSS
# databases name those paths, and the module reads them afresh in each
# process. A face is a function
#
#   face_NAME OP SIDE [KEY_ID]    OP: enc (a key for use now) or dec (the
#                                 key with KEY_ID)
#
# that sets CELL_RC (exit status), CELL_OUT (stdout and stderr), CELL_SECS
# and CELL_KEY (1 when a key was delivered), and CELL_WHY (what else went
# wrong, for a face that checks more than one answer). Each run is bounded
# by FACE_HANG seconds (timeout(1); exit 124 means it hung). A face with a
# KME of its own has a face_NAME_row hook that sets it up for each row.
#
# daemon (KMSTORED, and the pkcs11 face's programs): NSS and the module as
# pluto uses them in daemon mode (daemon=SOCKET): each cell starts the
# side's kmstored on $FACE_DIR/SIDE.conf, asks, and stops it.
#
# pluto (PLUTO_PREFIX: a patched libreswan, libreswan-patches/build.sh; as
# root): two plutos in the netns lab of tests/lib/ike-lab.sh, with their own
# kme-sim that face_pluto_row starts with the row's faults. A cell starts
# both plutos with three connections, west initiating each:
#   west-east  ppk=insist, ppk-uri=pkcs11:token=qkd: the cell (enc: west's
#              fetch fails; dec: east's);
#   propose    ppk=propose, the same token: must come up without a PPK;
#   static     ppk=insist, the static token: must come up with its PPK
#              (the pluto is still serving).

FACE_HANG=${FACE_HANG:-20}
FACES_ALL=(kmstore openssl pkcs11 daemon pluto)
# FACE_WRAP: a command the faces' programs run under (with-resolver.sh).
FACE_WRAP=()
FACE_DNS_PIDS=()
FACE_DNS_NAME=kme.test # RFC 6761: never a real name

# faces_available: the faces whose programs are there (into FACES).
faces_available() {
	FACES=()
	[[ -x ${KMSTORE:-} ]] && FACES+=(kmstore)
	[[ -x ${OPENSSL:-} && -d ${KMSTORE_PROVIDER_DIR:-} ]] && FACES+=(openssl)
	[[ -x ${NSS_CLIENT:-} && -f ${P11_MODULE:-} ]] &&
		command -v modutil >/dev/null && command -v certutil >/dev/null &&
		FACES+=(pkcs11)
	[[ " ${FACES[*]} " == *" pkcs11 "* && -x ${KMSTORED:-} ]] && FACES+=(daemon)
	[[ -x ${PLUTO_PREFIX:-}/libexec/ipsec/pluto && -f ${P11_MODULE:-} && $(id -u) == 0 &&
		-z ${KMSTORE_TEST_PRELOAD:-} ]] && command -v ip >/dev/null &&
		command -v modutil >/dev/null && FACES+=(pluto)
	return 0
}

# The environment of programs that are not instrumented, in a sanitizer
# build (for env(1)).
FACE_PRELOAD=()
[[ -n ${KMSTORE_TEST_PRELOAD:-} ]] &&
	FACE_PRELOAD=("LD_PRELOAD=$KMSTORE_TEST_PRELOAD" ASAN_OPTIONS=detect_leaks=0)

face_tool() {
	if [[ -n ${KMSTORE_TEST_PRELOAD:-} ]]; then
		LD_PRELOAD=$KMSTORE_TEST_PRELOAD ASAN_OPTIONS=detect_leaks=0 "$@"
	else
		"$@"
	fi
}

# faces_init DIR: FACE_DIR, and an NSS database per site with the module
# (log=stderr, so its messages are in CELL_OUT; FACE_P11_PARAMS adds
# module parameters, e.g. log-level=info).
faces_init() {
	FACE_DIR=$1
	mkdir -p "$FACE_DIR"
	local side
	if [[ " ${FACES[*]} " == *" pkcs11 "* ]]; then
		for side in west east; do
			mkdir -p "$FACE_DIR/nss-$side"
			face_tool certutil -N -d "sql:$FACE_DIR/nss-$side" --empty-password ||
				return 1
			echo | face_tool modutil -dbdir "sql:$FACE_DIR/nss-$side" \
				-add kmstore -libfile "$(realpath "$P11_MODULE")" \
				-string "config=$FACE_DIR/$side.conf log=stderr ${FACE_P11_PARAMS:-}" -force \
				>"$FACE_DIR/nss-$side/modutil.out" 2>&1 || return 1
		done
	fi
	if [[ " ${FACES[*]} " == *" daemon "* ]]; then
		# shellcheck source=../lib/kmstored-env.sh
		. "$(dirname "${BASH_SOURCE[0]}")/../lib/kmstored-env.sh"
		for side in west east; do
			mkdir -p "$FACE_DIR/nss-daemon-$side"
			face_tool certutil -N -d "sql:$FACE_DIR/nss-daemon-$side" --empty-password ||
				return 1
			echo | face_tool modutil -dbdir "sql:$FACE_DIR/nss-daemon-$side" \
				-add kmstore -libfile "$(realpath "$P11_MODULE")" \
				-string "daemon=$FACE_DIR/$side.sock log=stderr ${FACE_P11_PARAMS:-}" -force \
				>"$FACE_DIR/nss-daemon-$side/modutil.out" 2>&1 || return 1
		done
	fi
	if [[ " ${FACES[*]} " == *" pluto "* ]]; then
		# shellcheck source=../lib/ike-lab.sh
		. "$(dirname "${BASH_SOURCE[0]}")/../lib/ike-lab.sh"
		ike_lab_init "$P11_MODULE" "$KME_SIM" "$KME_SIM_PKI" "$FACE_DIR/ike"
		if ! ike_lab_up 2>"$FACE_DIR/ike-up.err"; then
			echo "# pluto: no network namespaces: $(head -n 1 "$FACE_DIR/ike-up.err")"
			FACES=("${FACES[@]/pluto/}")
		fi
	fi
}

# faces_fini: what faces_init started (an EXIT trap).
faces_fini() {
	if [[ -n ${FACE_DIR:-} ]] && declare -F kmstored_stop >/dev/null; then
		kmstored_stop "$FACE_DIR/west.sock" KILL
		kmstored_stop "$FACE_DIR/east.sock" KILL
	fi
	faces_dns_stop
	if [[ -n ${IKE_LAB_DIR:-} ]]; then
		ike_lab_down
	fi
	return 0
}

# A slow DNS server (slow_dns.py) that answers $FACE_DNS_NAME, and the
# files with-resolver.sh puts in place of /etc's to use it. No packet
# leaves loopback or the lab's namespaces.
#   faces_dns_start DIR ADDR ANSWER DELAY_MS|never [NETNS] [TTL]
# starts it on ADDR:53 (in NETNS), answering ANSWER (an IPv4 address, TTL
# seconds: 60), logging each query to DIR/dns.log, and writes
# DIR/resolv.conf (nameserver ADDR) and DIR/nsswitch.conf.
faces_dns_start() {
	local dir=$1 addr=$2 answer=$3 delay=$4 netns=${5:-} ttl=${6:-60} i
	mkdir -p "$dir"
	rm -f "$dir/ready"
	printf 'nameserver %s\noptions timeout:5 attempts:2\n' "$addr" >"$dir/resolv.conf"
	printf 'hosts: files dns\n' >"$dir/nsswitch.conf"
	${netns:+ip netns exec "$netns"} /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/slow_dns.py" \
		"$addr" "$FACE_DNS_NAME=$answer" "$delay" "$dir/ready" "$ttl" 2>"$dir/dns.log" &
	FACE_DNS_PIDS+=($!)
	for i in $(seq 50); do
		[[ -s $dir/ready ]] && return 0
		sleep 0.1
	done
	echo "slow DNS server did not start: $(cat "$dir/dns.log")" >&2
	return 1
}

faces_dns_stop() {
	local p
	for p in "${FACE_DNS_PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	FACE_DNS_PIDS=()
	return 0
}

# faces_conf_url CONF: the profile's url with $FACE_DNS_NAME for its host.
faces_conf_url() {
	sed -i -E "s|^(url +=) https://[^:/]+:|\1 https://$FACE_DNS_NAME:|" "$1"
}

# faces_conf_set CONF DIR SETTING=FILE[,...]: a profile's settings, to
# files in DIR (a certificate, a CA of the PKI); url=both names KME_A's two
# listeners ($KME_A_URL $KME_A2_URL), url=down a port where nothing listens
# first, then KME_A.
faces_conf_set() {
	local conf=$1 dir=$2 kv kvs v
	IFS=, read -ra kvs <<<"$3"
	for kv in "${kvs[@]}"; do
		case $kv in
		url=both) v="$KME_A_URL $KME_A2_URL" ;;
		url=down) v="${KME_A_URL%:*}:1 $KME_A_URL" ;;
		*) v=$dir/${kv#*=} ;;
		esac
		sed -i "s|^${kv%%=*} .*|${kv%%=*} = $v|" "$conf"
	done
}

# face_run CMD...: CELL_RC, CELL_OUT, CELL_SECS of one bounded run.
face_run() {
	local t0 t1 errexit=${-//[^e]/}
	t0=$(date +%s.%N)
	set +e
	CELL_WHY=()
	CELL_OUT=$(timeout -k 2 "$FACE_HANG" "${FACE_WRAP[@]}" "$@" 2>&1)
	CELL_RC=$?
	[[ -n $errexit ]] && set -e
	t1=$(date +%s.%N)
	CELL_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# Percent-encodes a key ID for a URI (RFC 3986 unreserved characters stay).
face_pct() {
	local s=$1 i c out=
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

face_kmstore() { # OP SIDE [ID]
	if [[ $1 == enc ]]; then
		face_run "$KMSTORE" -c "$FACE_DIR/$2.conf" key qkd
	else
		face_run "$KMSTORE" -c "$FACE_DIR/$2.conf" key qkd --key-id "$3"
	fi
	CELL_KEY=0
	[[ $CELL_RC -eq 0 && $CELL_OUT == *check-value* ]] && CELL_KEY=1
	return 0
}

face_openssl() { # OP SIDE [ID]
	local uri=kmstore:profile=qkd
	[[ $1 == dec ]] && uri+=";key-id=$(face_pct "$3")"
	face_run env KMSTORE_CONF="$FACE_DIR/$2.conf" "${FACE_PRELOAD[@]}" "$OPENSSL" storeutl \
		-provider-path "$KMSTORE_PROVIDER_DIR" -provider kmstore \
		-provider default -text "$uri"
	# storeutl exits 0 when a load fails: what was found is the answer.
	CELL_KEY=0
	[[ $CELL_OUT == *"Total found: 1"* && $CELL_OUT == *check-value:* ]] && CELL_KEY=1
	return 0
}

face_pkcs11() { # OP SIDE [ID]
	local uri=pkcs11:token=qkd
	[[ $1 == dec ]] && uri+=";id=$(face_pct "$3")"
	face_run "$NSS_CLIENT" "$FACE_DIR/nss-$2" key "$uri"
	CELL_KEY=0
	[[ $CELL_RC -eq 0 && $CELL_OUT == *$'\nkey='* ]] && CELL_KEY=1
	return 0
}

face_daemon() { # OP SIDE [ID]: the module in daemon mode, through kmstored
	local uri=pkcs11:token=qkd sock=$FACE_DIR/$2.sock
	[[ $1 == dec ]] && uri+=";id=$(face_pct "$3")"
	# kmstored is the one that resolves the KME's name (FACE_WRAP)
	if ! kmstored_start "$sock" "$FACE_DIR/$2.conf" "${FACE_WRAP[@]}" 2>"$FACE_DIR/kmstored.err"; then
		CELL_RC=125 CELL_SECS=0 CELL_KEY=0 CELL_WHY=("kmstored did not start: $(cat "$FACE_DIR/kmstored.err")")
		CELL_OUT=
		return 0
	fi
	face_run "$NSS_CLIENT" "$FACE_DIR/nss-daemon-$2" key "$uri"
	kmstored_stop "$sock"
	CELL_KEY=0
	[[ $CELL_RC -eq 0 && $CELL_OUT == *$'\nkey='* ]] && CELL_KEY=1
	# what kmstored logged of it, after the module's lines
	CELL_OUT+=$'\n'$(grep -v ' serving \| stopping' "$sock.log")
	if grep -Eq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:' "$sock.log"; then
		CELL_WHY+=("kmstored: $(grep -Em1 'Sanitizer|runtime error:' "$sock.log")")
	fi
	return 0
}

# face_pluto_row SIDE CHANGE DOWN [KME_SIM_OPTIONS...]: the lab's kme-sim for
# a row (KME_A_CERT from the environment), CHANGE to SIDE's configuration
# (faces_conf_set), and DOWN=1: no KME listening at all. FACE_DNS_DELAY
# (ms or never): the KMEs' URLs name $FACE_DNS_NAME, which a slow DNS server
# in the lab's namespace answers, and the plutos use it.
face_pluto_row() {
	local side=$1 change=$2 down=$3 s
	shift 3
	ike_lab_kmes_stop
	IKE_LAB_WRAPPER=
	ike_lab_kmes_start "$@" || return 1
	[[ $down == 1 ]] && ike_lab_kmes_stop
	[[ -z $change ]] || faces_conf_set "$IKE_LAB_DIR/kme/$side.conf" "$IKE_LAB_DIR/kme/pki" "$change"
	if [[ -n ${FACE_DNS_DELAY:-} ]]; then
		faces_dns_start "$IKE_LAB_DIR/dns" 192.0.2.254 192.0.2.254 "$FACE_DNS_DELAY" \
			"$IKE_LAB_NS_L" || return 1
		for s in west east; do faces_conf_url "$IKE_LAB_DIR/kme/$s.conf"; done
		IKE_LAB_WRAPPER="sh $(dirname "${BASH_SOURCE[0]}")/with-resolver.sh $IKE_LAB_DIR/dns"
	fi
	return 0
}

# The three connections of face_pluto (CONN_OPTIONS and CONF_EXTRA of
# ike_lab_side), and their PSKs.
face_pluto_conns() { # SIDE
	local name ppk token
	while read -r name ppk token; do
		ike_lab_conn "$1" "$name" retransmit-timeout=10s "ppk=$ppk" "ppk-uri=pkcs11:token=$token"
	done <<<$'propose propose qkd\nstatic insist static'
}
FACE_PLUTO_PSKS='@west-propose @east-propose : PSK "kmstore lab PSK, propose"
@west-static @east-static : PSK "kmstore lab PSK, static"'

# face_pluto_conn_log SIDE CONN: SIDE's log lines of CONN.
face_pluto_conn_log() { grep -F "\"$2\"" "$IKE_LAB_DIR/$1/pluto.log" 2>/dev/null; }

face_pluto() { # OP SIDE [ID]: OP and ID are the other faces'; west initiates
	local side
	CELL_WHY=() CELL_KEY=0
	for side in west east; do
		ike_lab_side $side "$PLUTO_PREFIX" "$IKE_LAB_DIR/kme/$side.conf" \
			$'ppk=insist\nppk-uri=pkcs11:token=qkd' "$FACE_PLUTO_PSKS" "$(face_pluto_conns $side)"
		ike_lab_start $side >"$IKE_LAB_DIR/start.err" 2>&1 || {
			CELL_RC=125 CELL_SECS=0 CELL_OUT="pluto ($side) did not start: $(cat "$IKE_LAB_DIR/start.err")"
			ike_lab_stop
			return 0
		}
	done
	CELL_RC=0
	ike_lab_initiate west west-east || CELL_RC=$?
	CELL_SECS=$IKE_LAB_SECS
	cp "$IKE_LAB_DIR/west/initiate.out" "$IKE_LAB_DIR/west/cell.out"
	sleep 0.2 # the responder's last lines
	face_pluto_conn_log east west-east | grep -q "PPK AUTH calculated as responder" && CELL_KEY=1
	# The policy of the tunnel, and another one served.
	ike_lab_initiate west propose ||
		CELL_WHY+=("conn propose (ppk=propose): whack --initiate exited $?")
	face_pluto_conn_log east propose | grep -q "established IKE SA" ||
		CELL_WHY+=("conn propose (ppk=propose): no IKE SA")
	if [[ $CELL_KEY == 0 ]] && face_pluto_conn_log east propose | grep -q "PPK AUTH calculated"; then
		CELL_WHY+=("conn propose: a PPK was used though the KME failed")
	fi
	ike_lab_initiate west static ||
		CELL_WHY+=("conn static: whack --initiate exited $?")
	face_pluto_conn_log east static | grep -q "PPK AUTH calculated as responder" ||
		CELL_WHY+=("conn static: not served with its PPK")
	grep -Eq 'EXPECTATION FAILED|ASSERTION FAILED|PASSERT' "$IKE_LAB_DIR"/{west,east}/pluto.log &&
		CELL_WHY+=("pluto: $(grep -Eh 'EXPECTATION FAILED|ASSERTION FAILED|PASSERT' "$IKE_LAB_DIR"/{west,east}/pluto.log | head -n 1)")
	for side in west east; do
		kill -0 "$(cat "$IKE_LAB_DIR/$side/pid")" 2>/dev/null || CELL_WHY+=("pluto ($side) is gone")
	done
	local crashes=$IKE_LAB_CRASHES
	ike_lab_stop
	[[ $IKE_LAB_CRASHES == "$crashes" ]] || CELL_WHY+=("a pluto died of a signal")
	# Secret hygiene: conn static's key in what the plutos, the module,
	# whack or kme-sim printed.
	local leak
	leak=$(ike_lab_scan_secrets) || CELL_WHY+=("a key in the output: $leak")
	# what west-east logged on both sides, the module's lines included
	CELL_OUT="$(cat "$IKE_LAB_DIR/west/cell.out")
$(grep -v -F -e '"propose"' -e '"static"' "$IKE_LAB_DIR/west/pluto.log")
$(grep -v -F -e '"propose"' -e '"static"' "$IKE_LAB_DIR/east/pluto.log")"
	return 0
}

# A crash: a signal, a hang, or a sanitizer's report.
face_crashed() {
	[[ $CELL_RC -ge 124 ]] && return 0
	grep -Eq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|Segmentation fault|core dumped' \
		<<<"$CELL_OUT"
}
