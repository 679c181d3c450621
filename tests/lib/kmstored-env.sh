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
	local pid i
	pid=$(kmstored_pid "$1")
	[ -n "$pid" ] || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null || true
	for i in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$1.pid"
	return 0
}
