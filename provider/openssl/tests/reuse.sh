#!/usr/bin/env bash
# One process, many OSSL_STORE_opens (test_reuse.c): the provider keeps its
# parsed store and KME connections, sees every change of the configuration
# at the next open, serves threads at once (and under helgrind where
# valgrind is installed and the build is not sanitized), and grows neither
# descriptors nor memory.
source "$(dirname "$0")/lib.sh"
: "${TEST_REUSE:?}"
root=$(cd "$(dirname "$0")/../../.." && pwd)
make_store

# In a sanitizer build the program is instrumented: ASan's quarantine
# holds freed memory, so RSS says nothing (LeakSanitizer checks at exit).
rss_bound=1024
[[ -n ${KMSTORE_TEST_PRELOAD:-} ]] && rss_bound=10000000
REUSE_RSS_KB=$rss_bound run out "$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" opens "$work/kmstore.conf" 3000
relay "$out"
check "3000 opens: exit 0" test "$rc" = 0

cp "$work/kmstore.conf" "$work/reload.conf"
run out "$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" reload "$work/reload.conf" "$work/west-east.key"
relay "$out"
check "configuration changes: exit 0" test "$rc" = 0

run out "$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" threads "$work/threads.conf" 4 300
relay "$out"
check "4 threads: exit 0" test "$rc" = 0

helgrind=no
[[ -z ${KMSTORE_TEST_PRELOAD:-} ]] && command -v valgrind >/dev/null && helgrind=yes
if [[ $helgrind == yes ]]; then
	out=$(valgrind --tool=helgrind -q --error-exitcode=9 \
		--suppressions="$root/tests/lib/helgrind.supp" \
		"$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" threads "$work/threads.conf" 3 15 2>&1) &&
		rc=0 || rc=$?
	relay "$(grep -v '^==' <<<"$out")"
	check "3 threads under helgrind: no data race reported (exit $rc)" test "$rc" = 0
	((rc == 0)) || grep '^==' <<<"$out" | head -60 | sed 's/^/# /'
fi

# The QKD path: two kme-sim KMEs, one configuration with both sites.
if [[ -n ${KME_SIM:-} && -x ${KME_SIM:-} && -x ${KME_SIM_PKI:-} ]]; then
	source "$root/tests/lib/kme-env.sh"
	cleanups+=(kme_env_stop)
	# A generous timeout: under helgrind a TLS handshake takes seconds.
	KME_TIMEOUT=20
	kme_env_start "$work/lab" "$KME_SIM" "$KME_SIM_PKI" --pool-size 600 --key-rate 0
	{
		sed -n '/^\[qkd\]/,/^$/p' "$KME_DIR/west.conf" | sed 's/^\[qkd\]/[west]/'
		echo
		sed -n '/^\[qkd\]/,/^$/p' "$KME_DIR/east.conf" | sed 's/^\[qkd\]/[east]/'
	} >"$work/qkd.conf"
	chmod 600 "$work/qkd.conf"
	run out "$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" qkd "$work/qkd.conf" 40
	relay "$out"
	check "40 QKD round trips: exit 0" test "$rc" = 0
	# Threads share the store, and its profiles' KME connections.
	run out "$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" qkd "$work/qkd.conf" 100 4
	relay "$out"
	check "4 threads x 100 QKD round trips: exit 0" test "$rc" = 0
	# libcurl does not support one connection cache for concurrent
	# threads (curl 8.21 crashed in it); helgrind sees such sharing.
	if [[ $helgrind == yes ]]; then
		out=$(valgrind --tool=helgrind -q --error-exitcode=9 \
			--suppressions="$root/tests/lib/helgrind.supp" \
			"$TEST_REUSE" "$KMSTORE_PROVIDER_DIR" qkd "$work/qkd.conf" 10 3 2>&1) &&
			rc=0 || rc=$?
		relay "$(grep -v '^==' <<<"$out")"
		check "3 threads' QKD round trips under helgrind: no data race reported (exit $rc)" \
			test "$rc" = 0
		((rc == 0)) || grep '^==' <<<"$out" | head -60 | sed 's/^/# /'
	fi
else
	echo "# kme-sim not built: the QKD connection check is left out"
fi

finish
