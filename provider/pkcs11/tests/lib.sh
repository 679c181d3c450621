# shellcheck shell=bash
# lib.sh - shared by the PKCS#11 module's shell tests: TAP-style
# assertions, a work directory, static profiles and NSS databases.
#
# The test sets MODULE (kmstore-pkcs11.so) and, where used, NSS_CLIENT and
# API_TEST, then sources this file. In a sanitizer build P11_PRELOAD names
# the ASan runtime: programs that are not instrumented (modutil, certutil,
# pkcs11-tool, p11tool) need it preloaded to load the instrumented module.

set -u
MODULE=$(realpath "$MODULE")  # p11-kit takes a relative path as under its own dir
n_ok=0
n_fail=0
n=0

ok() {
	n=$((n + 1)) n_ok=$((n_ok + 1))
	echo "ok $n - $*"
}

not_ok() {
	n=$((n + 1)) n_fail=$((n_fail + 1))
	echo "not ok $n - $*"
}

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# same DESCRIPTION GOT WANT (an empty WANT never matches: a value that
# failed to appear on both sides is not a match)
same() {
	if [ "$2" = "$3" ] && { [ -n "$3" ] || [ "${4:-}" = empty-ok ]; }; then
		ok "$1"
	else
		not_ok "$1 (got '$2', want '$3')"
	fi
}

# has DESCRIPTION TEXT PATTERN: the text matches the extended regex.
has() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		ok "$1"
	else
		not_ok "$1 (no /$3/ in:)"
		printf '%s\n' "$2" | sed 's/^/#   /' | head -20
	fi
}

finish() {
	echo "$n_ok passed, $n_fail failed"
	[ "$n_fail" -eq 0 ]
}

# Runs a program that is not instrumented: preloads ASan if the module is.
tool() {
	if [ -n "${P11_PRELOAD:-}" ]; then
		LD_PRELOAD=$P11_PRELOAD ASAN_OPTIONS=detect_leaks=0 "$@"
	else
		"$@"
	fi
}

WORK=$(mktemp -d /tmp/kmstore-pkcs11-test.XXXXXX)
cleanup_hooks=()
cleanup() {
	local h
	for h in "${cleanup_hooks[@]}"; do $h; done
	rm -rf "$WORK"
}
trap cleanup EXIT

hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }

# A configuration with two static profiles: west-static (32 random bytes,
# key ID PPK_ID_1) and second (48 bytes, key ID PPK_ID_2).
write_static_conf() {
	head -c 32 /dev/urandom >"$WORK/static.key"
	head -c 48 /dev/urandom >"$WORK/second.key"
	chmod 600 "$WORK/static.key" "$WORK/second.key"
	cat >"$WORK/static.conf" <<-EOF
	[west-static]
	type   = static
	key-id = PPK_ID_1
	key    = file:$WORK/static.key

	[second]
	type   = static
	key-id = PPK_ID_2
	key    = file:$WORK/second.key
	EOF
	chmod 600 "$WORK/static.conf"
}

# nss_db DIR PARAMS: an empty NSS database (as libreswan's ipsec initnss
# makes one) with the module added under the name "kmstore".
nss_db() {
	mkdir -p "$1"
	tool certutil -N -d "sql:$1" --empty-password &&
		echo | tool modutil -dbdir "sql:$1" -add kmstore -libfile "$MODULE" \
			-string "$2" -force >"$1/modutil-add.out" 2>&1
}
