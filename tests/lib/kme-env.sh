# kme-env.sh - a two-site QKD lab on 127.0.0.1 for tests, benchmarks and the
# demo: a test PKI, kme-sim serving KME_A (for SAE_A, "west") and KME_B (for
# SAE_B, "east") joined by a simulated QKD link, and one kmstore.conf per
# site. Source it, then:
#
#   kme_env_start DIR KME_SIM KME_SIM_PKI [kme-sim options...]
#   kme_env_stop
#   kme_env_hex FILE, kme_env_requests KME_SIM_LOG   (helpers, below)
#   kme_env_both_sites FILE [static]   (below)
#
# After start: $KME_DIR, $KME_PID, $KME_A_URL, $KME_B_URL, and
# $KME_DIR/west.conf, $KME_DIR/east.conf, each with profiles "qkd" (the
# site's SAE to the other's) and "static" (one shared 256-bit key in
# $KME_DIR/static.key). Options after the third argument go to kme-sim
# (e.g. --fault 503:50). KME_TIMEOUT sets the profiles' timeout (default 3);
# KME_A_CERT names another certificate (and key) of the PKI for KME_A, e.g.
# wrong-name for one issued to another host name. KME_A_LISTENERS=2 serves
# KME_A on a second listener too (one key store: failover), $KME_A2_URL.
# KME_A_HOST serves KME_A on another loopback address ([::1]: IPv6).

# kme_env_hex FILE: a key file's bytes in hex, one line (for PPKS lines and
# the secret scanner).
kme_env_hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }

# kme_env_dated_cert OUT START END: SAE_A's certificate again (its key,
# the lab's CA) valid from START to END (openssl ca's YYYYMMDDHHMMSSZ), for
# expiry checks: openssl x509 cannot date a certificate in the past.
kme_env_dated_cert() {
	local ca=$KME_DIR/dated-ca
	rm -rf "$ca" && mkdir -p "$ca" && : >"$ca/index.txt" && echo 1000 >"$ca/serial"
	printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nserial = %s/serial\nnew_certs_dir = %s\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n' \
		"$ca" "$ca" "$ca" >"$ca/ca.cnf"
	openssl req -new -key "$KME_DIR/pki/sae-a.key" -subj "/CN=SAE_A" -out "$ca/sae.csr"
	openssl ca -batch -notext -config "$ca/ca.cnf" -cert "$KME_DIR/pki/ca.crt" \
		-keyfile "$KME_DIR/pki/ca.key" -startdate "$2" -enddate "$3" \
		-in "$ca/sae.csr" -out "$1" 2>/dev/null
}

# kme_env_both_sites FILE [static]: one configuration (mode 600) with both
# sites' QKD profiles, named west and east, and with "static" the static
# profile too: what one process that plays both sites reads.
kme_env_both_sites() {
	{
		sed -n '/^\[qkd\]/,/^$/p' "$KME_DIR/west.conf" | sed 's/^\[qkd\]/[west]/'
		echo
		sed -n '/^\[qkd\]/,/^$/p' "$KME_DIR/east.conf" | sed 's/^\[qkd\]/[east]/'
		if [ "${2:-}" = static ]; then
			echo
			sed -n '/^\[static\]/,/^$/p' "$KME_DIR/west.conf"
		fi
	} >"$1" && chmod 600 "$1"
}

# kme_env_requests LOG: "N requests, faults injected: N 503, N drop, ..." of
# a kme-sim log (one line per request, retries included).
kme_env_requests() {
	local n faults
	n=$(grep -c '"POST' "$1" || true)
	faults=$( { grep -o 'fault=[^ ]*' "$1" || true; } | { grep -v 'fault=-$' || true; } |
		sed 's/:[0-9]*$//' | sort | uniq -c |
		awk '{ printf "%s%s %s", s, $1, substr($2, 7); s = ", " } END { if (!NR) printf "none" }')
	echo "$n requests, faults injected: $faults"
}

kme_env_write_conf() { # FILE URL LOCAL PEER CERT KEY
	cat >"$1" <<CONF
# $(basename "$1"): written by tests/lib/kme-env.sh
[qkd]
type         = qkd
url          = $2
local-sae-id = $3
peer-sae-id  = $4
certificate  = $5
private-key  = $6
ca           = $KME_DIR/pki/ca.crt
key-size     = 256
timeout      = ${KME_TIMEOUT:-3}

[static]
type   = static
key-id = STATIC_PPK_1
key    = file:$KME_DIR/static.key
CONF
	chmod 600 "$1"
}

kme_env_start() {
	local sim=$2 pki=$3 i
	KME_DIR=$1
	shift 3
	mkdir -p "$KME_DIR"
	"$pki" "$KME_DIR/pki" >"$KME_DIR/pki.log" 2>&1 || {
		cat "$KME_DIR/pki.log" >&2
		return 1
	}
	head -c 32 /dev/urandom >"$KME_DIR/static.key"
	chmod 600 "$KME_DIR/static.key"
	rm -f "$KME_DIR/ready"
	local second=
	[ "${KME_A_LISTENERS:-1}" = 2 ] && second=,listen=127.0.0.1:0
	"$sim" --ca "$KME_DIR/pki/ca.crt" \
		--kme "id=KME_A,listen=${KME_A_HOST:-127.0.0.1}:0$second,cert=$KME_DIR/pki/${KME_A_CERT:-kme-a}.crt,key=$KME_DIR/pki/${KME_A_CERT:-kme-a}.key,sae=SAE_A" \
		--kme "id=KME_B,listen=127.0.0.1:0,cert=$KME_DIR/pki/kme-b.crt,key=$KME_DIR/pki/kme-b.key,sae=SAE_B" \
		--ready-file "$KME_DIR/ready" "$@" >"$KME_DIR/kme-sim.out" 2>"$KME_DIR/kme-sim.log" &
	KME_PID=$!
	for i in $(seq 100); do
		[ -s "$KME_DIR/ready" ] && break
		kill -0 "$KME_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -s "$KME_DIR/ready" ]; then
		echo "kme-env: kme-sim did not start:" >&2
		cat "$KME_DIR/kme-sim.log" >&2
		return 1
	fi
	KME_A_URL=$(awk '$1 == "KME_A" { print $2 }' "$KME_DIR/ready")
	KME_A2_URL=$(awk '$1 == "KME_A/2" { print $2 }' "$KME_DIR/ready")
	KME_B_URL=$(awk '$1 == "KME_B" { print $2 }' "$KME_DIR/ready")
	kme_env_write_conf "$KME_DIR/west.conf" "$KME_A_URL" SAE_A SAE_B \
		"$KME_DIR/pki/sae-a.crt" "$KME_DIR/pki/sae-a.key"
	kme_env_write_conf "$KME_DIR/east.conf" "$KME_B_URL" SAE_B SAE_A \
		"$KME_DIR/pki/sae-b.crt" "$KME_DIR/pki/sae-b.key"
	export KME_DIR KME_PID KME_A_URL KME_A2_URL KME_B_URL
}

kme_env_stop() {
	if [ -n "${KME_PID:-}" ]; then
		kill "$KME_PID" 2>/dev/null || true
		wait "$KME_PID" 2>/dev/null || true
		KME_PID=
	fi
}
