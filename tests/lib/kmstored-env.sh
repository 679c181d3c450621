# kmstored-env.sh - starting and stopping kmstored for tests, benchmarks and
# the lab. Source it; KMSTORED names the program.
#
#   kmstored_start SOCKET CONF [WRAPPER...]
#                      kmstored --config CONF --socket SOCKET --foreground
#                      (under WRAPPER, e.g. "ip netns exec NS" or valgrind),
#                      its log in SOCKET.log, its pid in SOCKET.pid; returns
#                      once it serves (1 with its log if it does not)
#   kmstored_stop SOCKET [SIGNAL]    SIGTERM (or SIGNAL), and waits
#   kmstored_pid SOCKET

kmstored_pid() { cat "$1.pid" 2>/dev/null || true; }

kmstored_start() { # SOCKET CONF [WRAPPER...]
	local sock=$1 conf=$2 i pid
	shift 2
	: >"$sock.log"
	"$@" "${KMSTORED:?}" --config "$conf" --socket "$sock" --foreground \
		>>"$sock.log" 2>&1 &
	pid=$!
	echo $pid >"$sock.pid"
	for i in $(seq 600); do # 30 s: under valgrind, on a loaded machine
		grep -q 'serving [0-9]* profile' "$sock.log" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "kmstored did not start:" >&2
	cat "$sock.log" >&2
	return 1
}

kmstored_stop() { # SOCKET [SIGNAL]
	local pid i signalled=0 forced=0 rc=0
	pid=$(kmstored_pid "$1")
	[ -n "$pid" ] || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null && signalled=1
	for i in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null && forced=1
	wait "$pid" 2>/dev/null || rc=$?
	rm -f "$1.pid"
	# kmstored(8): SIGTERM stops it with exit 0, within its stop wait. A
	# crash, an error exit or a hang while stopping is a failure (when it
	# was a child of this shell: wait says 127 otherwise).
	if [ "${2:-TERM}" = TERM ] && [ "$signalled" = 1 ] && [ "$rc" != 127 ] &&
		{ [ "$rc" != 0 ] || [ "$forced" = 1 ]; }; then
		local what="kmstored at $1 stops on SIGTERM with exit 0"
		local why="exit $rc$([ "$forced" = 1 ] && echo ", killed after 10 s")"
		if declare -F tap_not_ok >/dev/null; then
			# the log's end, or a sanitizer's whole report
			tap_not_ok "$what" "$why" "$(sed -n '/^==[0-9]*==ERROR/,$p' "$1.log" 2>/dev/null |
				grep . || tail -n 3 "$1.log" 2>/dev/null)"
		else
			echo "warning: $what: $why" >&2
		fi
	fi
	return 0
}
