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
# and CELL_KEY (1 when a key was delivered). Each run is bounded by
# FACE_HANG seconds (timeout(1); exit 124 means it hung). A new face (pluto
# in the netns harness) is one more such function and a name in FACES.

FACE_HANG=${FACE_HANG:-20}
FACES_ALL=(kmstore openssl pkcs11)

# faces_available: the faces whose programs are there (into FACES).
faces_available() {
	FACES=()
	[[ -x ${KMSTORE:-} ]] && FACES+=(kmstore)
	[[ -x ${OPENSSL:-} && -d ${KMSTORE_PROVIDER_DIR:-} ]] && FACES+=(openssl)
	[[ -x ${NSS_CLIENT:-} && -f ${P11_MODULE:-} ]] &&
		command -v modutil >/dev/null && command -v certutil >/dev/null &&
		FACES+=(pkcs11)
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
}

# face_run CMD...: CELL_RC, CELL_OUT, CELL_SECS of one bounded run.
face_run() {
	local t0 t1 errexit=${-//[^e]/}
	t0=$(date +%s.%N)
	set +e
	CELL_OUT=$(timeout -k 2 "$FACE_HANG" "$@" 2>&1)
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

# A crash: a signal, a hang, or a sanitizer's report.
face_crashed() {
	[[ $CELL_RC -ge 124 ]] && return 0
	grep -Eq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|Segmentation fault|core dumped' \
		<<<"$CELL_OUT"
}
