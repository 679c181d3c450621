# tap.sh - assertions for the shell tests: "ok N - what" per check, and a
# closing "N passed, M failed" line. Source it; end with tap_done.

TAP_PASS=0
TAP_FAIL=0

tap_ok() {
	TAP_PASS=$((TAP_PASS + 1))
	echo "ok $((TAP_PASS + TAP_FAIL)) - $1"
}

tap_not_ok() {
	TAP_FAIL=$((TAP_FAIL + 1))
	echo "not ok $((TAP_PASS + TAP_FAIL)) - $1"
	shift
	[ $# -gt 0 ] && printf '#   %s\n' "$@"
	return 0
}

# run CMD...: runs it, keeping its exit status, stdout, stderr and seconds in
# RUN_RC, RUN_OUT, RUN_ERR, RUN_SECS. The caller's set -e stays as it was.
run() {
	local t0 t1 o e errexit=${-//[^e]/}
	o=$(mktemp) e=$(mktemp)
	t0=$(date +%s.%N)
	set +e
	"$@" >"$o" 2>"$e"
	RUN_RC=$?
	[ -n "$errexit" ] && set -e
	t1=$(date +%s.%N)
	RUN_OUT=$(cat "$o") RUN_ERR=$(cat "$e")
	RUN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	rm -f "$o" "$e"
}

# run_term_after SECONDS CMD...: as run, for a program that would go on: it
# gets SIGTERM after SECONDS (if still running), and SIGKILL 30 s later.
# Not timeout(1): it sends SIGCONT after SIGTERM, and a SIGCONT that comes
# while LeakSanitizer stops the exiting program's threads (PTRACE_ATTACH's
# SIGSTOP) cancels that stop, and the ASan build hangs at exit for good.
run_term_after() { run term_after "$@"; }

term_after() { # SECONDS CMD...: CMD's exit status
	local secs=$1 pid i
	shift
	"$@" &
	pid=$!
	for ((i = 0; i < secs * 10; i++)); do
		[[ $(ps -o stat= -p "$pid") == [^Z]* ]] || break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		[[ $(ps -o stat= -p "$pid") == [^Z]* ]] || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
}

# wait_for SECONDS CMD...: until CMD succeeds (polled every 0.1 s); fails
# after SECONDS. What a test waits for on a loaded machine, not a sleep.
wait_for() {
	local n=$(($1 * 10)) i
	shift
	for i in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}

# expect_rc CODE WHAT: the last run's exit status.
expect_rc() {
	if [ "$RUN_RC" -eq "$1" ]; then
		tap_ok "$2"
	else
		tap_not_ok "$2" "expected exit $1, got $RUN_RC" "stdout: $RUN_OUT" "stderr: $RUN_ERR"
	fi
}

# expect_in TEXT HAYSTACK WHAT
expect_in() {
	if [[ "$2" == *"$1"* ]]; then
		tap_ok "$3"
	else
		tap_not_ok "$3" "expected to find: $1" "in: $2"
	fi
}

# expect_match REGEX HAYSTACK WHAT (bash extended regex)
expect_match() {
	if [[ "$2" =~ $1 ]]; then
		tap_ok "$3"
	else
		tap_not_ok "$3" "expected to match: $1" "in: $2"
	fi
}

# expect_not_in TEXT HAYSTACK WHAT
expect_not_in() {
	if [[ "$2" != *"$1"* ]]; then
		tap_ok "$3"
	else
		tap_not_ok "$3" "did not expect: $1" "in: $2"
	fi
}

# expect_eq EXPECTED ACTUAL WHAT
expect_eq() {
	if [ "$1" = "$2" ]; then
		tap_ok "$3"
	else
		tap_not_ok "$3" "expected: $1" "got:      $2"
	fi
}

# expect_faster SECONDS WHAT: the last run took less than SECONDS.
expect_faster() {
	if awk -v t="$RUN_SECS" -v l="$1" 'BEGIN { exit !(t < l) }'; then
		tap_ok "$2 (${RUN_SECS}s)"
	else
		tap_not_ok "$2" "took ${RUN_SECS}s, limit ${1}s"
	fi
}

tap_done() {
	echo "$TAP_PASS passed, $TAP_FAIL failed"
	[ "$TAP_FAIL" -eq 0 ]
}
