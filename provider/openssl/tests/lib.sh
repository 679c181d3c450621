# lib.sh - sourced by the provider's and the engine's shell tests: TAP-style
# assertions, a scratch directory with a kmstore.conf, and the openssl
# program with the provider loaded from the build tree.
set -euo pipefail

: "${OPENSSL:?OPENSSL must name the openssl program}"
passed=0
failed=0
count=0
work=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-test.XXXXXX")
cleanups=()
cleanup() {
	local c
	for c in "${cleanups[@]}"; do eval "$c" || true; done
	rm -rf "$work"
}
trap cleanup EXIT

ok() { count=$((count + 1)); passed=$((passed + 1)); echo "ok $count - $*"; }
not_ok() { count=$((count + 1)); failed=$((failed + 1)); echo "not ok $count - $*"; }

# check DESCRIPTION COMMAND...: one assertion.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
# has TEXT NEEDLE / lacks TEXT NEEDLE (fixed strings)
has() {
	grep -qF -- "$2" <<<"$1" && return 0
	printf '# expected to find: %s\n' "$2" >&2
	sed 's/^/#   | /' <<<"$1" >&2
	return 1
}
lacks() {
	grep -qiF -- "$2" <<<"$1" || return 0
	printf '# must not contain: %s\n' "$2" >&2
	return 1
}

# relay TEXT: a test program's "ok - ..." / "not ok - ..." lines become
# this test's checks; its other lines are shown as comments.
relay() {
	local line
	while read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		"#"*) printf '%s\n' "$line" ;;
		*) printf '# %s\n' "$line" ;;
		esac
	done <<<"$1"
}

finish() {
	echo "$passed passed, $failed failed"
	((failed == 0))
}

skip_all() {
	echo "1..0 # SKIP $*"
	exit 77
}

# The openssl program; in a sanitizer build it preloads the ASan runtime
# so that it can dlopen the instrumented provider or engine.
ossl() {
	if [[ -n ${KMSTORE_TEST_PRELOAD:-} ]]; then
		LD_PRELOAD=$KMSTORE_TEST_PRELOAD "$OPENSSL" "$@"
	else
		"$OPENSSL" "$@"
	fi
}
prov=(-provider-path "${KMSTORE_PROVIDER_DIR:-}" -provider kmstore -provider default)

# run VAR COMMAND...: stdout+stderr into VAR, exit status into rc.
run() {
	local -n _out=$1
	shift
	_out=$("$@" 2>&1) && rc=0 || rc=$?
}

# The reference values, computed without kmstore.
hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }
kcv_of() { # KEYFILE
	printf kmstore-kcv | "$OPENSSL" dgst -sha256 -mac HMAC -macopt "hexkey:$(hex_of "$1")" |
		awk '{ print $NF }' | cut -c1-6
}
hmac_of() { # KEYFILE MESSAGE
	printf '%s' "$2" | "$OPENSSL" dgst -sha256 -mac HMAC -macopt "hexkey:$(hex_of "$1")" |
		awk '{ print $NF }'
}
# The secret must appear in no output: hex (either case) and base64.
no_secret() { # TEXT KEYFILE
	local hex b64
	hex=$(hex_of "$2")
	b64=$(base64 -w0 <"$2")
	lacks "$1" "$hex" && lacks "$1" "${hex:0:16}" && lacks "$1" "$b64" &&
		lacks "$1" "${b64:0:12}" && lacks "$1" "-----BEGIN"
}

# storeutl found nothing. OpenSSL 3.0 prints "Total found: 0"; 3.5's
# storeutl prints no total at all when nothing was found (it opens its
# output on the first object), so that form is accepted only where this
# openssl behaves so (probed once, not by version number).
storeutl_prints_zero() {
	if [[ -z ${_prints_zero:-} ]]; then
		_prints_zero=no
		"$OPENSSL" storeutl -certs /dev/null 2>/dev/null | grep -q "Total found: 0" &&
			_prints_zero=yes
	fi
	[[ $_prints_zero == yes ]]
}
found_none() { # TEXT
	if storeutl_prints_zero; then
		has "$1" "Total found: 0"
	else
		lacks "$1" "Total found:" && ! grep -qE '^ *[0-9]+: ' <<<"$1"
	fi
}

# A store with two static profiles: a key file and an inline hex key whose
# ID needs percent-encoding in a URI.
make_store() {
	umask 077
	"$OPENSSL" rand 32 >"$work/west-east.key"
	"$OPENSSL" rand 48 >"$work/inline.key"
	cat >"$work/kmstore.conf" <<-CONF
	[west-east-static]
	type   = static
	key-id = PPK_ID_1
	key    = file:west-east.key

	[inline-384]
	type   = static
	key-id = a/b;c%d
	key    = hex:$(hex_of "$work/inline.key")
	CONF
	export KMSTORE_CONF=$work/kmstore.conf
}
