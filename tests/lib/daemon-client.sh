# daemon-client.sh - a long-lived client of kmstored (tests/daemon's
# daemon_client, holding its store as pluto does) run as a coprocess, one
# at a time. Source it; DAEMON_CLIENT names the program.
#
#   client_start SOCKET [WRAPPER...]
#                      daemon_client SOCKET (under WRAPPER, e.g. a function
#                      that runs it as another user); its first line in
#                      ANSWER: "ready" once its store is open
#   client_ask LINE [SECONDS]   a command to it; its answer (one line) in
#                      ANSWER, "(no answer)" after SECONDS (20)
#   client_send LINE, client_read [SECONDS]   the same in two steps, for a
#                      test that acts while the client waits
#   client_stop        "quit", and waits for it (killed after 10 s); from a
#                      trap too

client_pid=

client_start() { # SOCKET [WRAPPER...]
	local sock=$1
	shift
	coproc CLIENT { "$@" "${DAEMON_CLIENT:?}" "$sock"; }
	client_pid=$CLIENT_PID # bash unsets CLIENT_PID once it has ended
	ANSWER=
	read -r -t 10 ANSWER <&"${CLIENT[0]:-}" || true
}

client_send() { # LINE
	{ echo "$1" >&"${CLIENT[1]:-}"; } 2>/dev/null
}

client_read() { # [SECONDS]
	ANSWER=
	{ read -r -t "${1:-20}" ANSWER <&"${CLIENT[0]:-}"; } 2>/dev/null || ANSWER="(no answer)"
}

client_ask() { # LINE [SECONDS]
	if client_send "$1"; then
		client_read "${2:-20}"
	else
		ANSWER="(no answer)"
	fi
}

client_stop() {
	local i
	[ -n "$client_pid" ] || return 0
	{ echo quit >&"${CLIENT[1]:-}"; } 2>/dev/null || true
	for i in $(seq 200); do
		kill -0 "$client_pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$client_pid" 2>/dev/null || true
	wait "$client_pid" 2>/dev/null || true
	client_pid=
}
