# machine.sh - throw-away Debian machines for package tests: each machine
# is this host's own system seen through overlays, so apt-get, dpkg and
# the programs they install write into the machine's upper directories and
# never into the host's /etc, /usr, /var or /root. Used by
# tests/packages/install.sh. Bash; source it, then:
#
#   machine_isolate "$0" ARGS...
#                      call first: re-runs the calling script in a private
#                      mount namespace (propagation private) and PID
#                      namespace with /run on tmpfs, so mounts, network
#                      namespace names and processes cannot outlive or
#                      escape it (77 if unshare is missing or fails); /tmp
#                      stays the host's, where the script itself may live
#   machine_start NAME DIR [NETNS]
#                      a machine: a process holding a mount namespace with
#                      overlays on /etc /usr /var /root (upper and work
#                      directories in DIR, which must be outside those) and
#                      tmpfs on /run and /tmp; the host paths listed in
#                      MACHINE_SHARE stay visible at their place even where
#                      they lie under /run or /tmp; NETNS (ip netns) is the
#                      network its commands see, else the caller's (the host's,
#                      so apt-get reaches the archive); MACHINE_BIND, a
#                      list of FILE:PROGRAM, puts FILE in the place of
#                      PROGRAM (e.g. a stand-in for systemctl) by a bind
#                      mount (PROGRAM is made in the overlay if the host has
#                      none; machine_changes does not count it)
#   machine NAME CMD...
#                      CMD as root in the machine, with a clean environment
#                      (Debian's PATH, HOME=/root, LANG=C.UTF-8, plus the
#                      MACHINE_ENV assignments)
#   machine_net NAME NETNS
#                      from now on, NAME's commands run in NETNS
#   machine_copy FROM PATH TO PATH2
#                      a file from one machine to another (as scp would),
#                      mode kept
#   machine_changes NAME
#                      what the machine changed, relative to the host: one
#                      line per entry of its upper directories, "TYPE /path"
#                      (f file, l symlink, d new directory, w deleted)
#   machine_stop_all   every machine's processes killed, overlays gone
#
# The host's lower directories may change meanwhile (apt-get on the host):
# overlayfs then shows the new files, which is harmless for a test.

# shellcheck shell=bash

MACHINE_ENV=${MACHINE_ENV:-}
MACHINE_BIND=${MACHINE_BIND:-}
MACHINE_SHARE=${MACHINE_SHARE:-}
declare -A MACHINE_PID MACHINE_NETNS MACHINE_DIR

machine_isolate() { # "$0" ARGS...
	[ -z "${MACHINE_ISOLATED:-}" ] || return 0
	if ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null; then
		echo "machine: unshare and nsenter (util-linux) are needed" >&2
		exit 77
	fi
	MACHINE_ISOLATED=1 exec unshare --mount --pid --fork --mount-proc --propagation private \
		bash -c 'mount -t tmpfs -o mode=0755 tmpfs /run && exec bash "$@"' bash "$@"
}

machine_start() { # NAME DIR [NETNS]
	local name=$1 dir=$2 netns=${3:-} d
	case $dir in
	/etc/* | /usr/* | /var/* | /root/*)
		echo "machine: $dir is inside a directory the machine overlays" >&2
		return 1 ;;
	esac
	mkdir -p "$dir"
	for d in etc usr var root; do mkdir -p "$dir/$d.upper" "$dir/$d.work"; done
	rm -f "$dir/ready"
	unshare --mount --propagation private bash -c '
		dir=$1
		for d in etc usr var root; do
			mount -t overlay "machine-$d" \
				-o "lowerdir=/$d,upperdir=$dir/$d.upper,workdir=$dir/$d.work" "/$d" || exit 1
		done
		: >"$dir/made"
		for b in $2; do
			[ -e "${b#*:}" ] || { touch "${b#*:}" && echo "${b#*:}" >>"$dir/made"; } || exit 1
			mount --bind "${b%%:*}" "${b#*:}" || exit 1
		done
		# The shared paths under /run or /tmp wait on a private /dev/shm
		# while the tmpfs mounts cover their parents, then go back in place.
		mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 1
		i=0
		for p in $3; do
			case $p in /run/* | /tmp/*) ;; *) continue ;; esac
			mkdir -p "/dev/shm/.share/$i" && mount --bind "$p" "/dev/shm/.share/$i" || exit 1
			i=$((i + 1))
		done
		mount -t tmpfs -o mode=0755 tmpfs /run && mount -t tmpfs -o mode=1777 tmpfs /tmp || exit 1
		mkdir -p /run/lock
		i=0
		for p in $3; do
			case $p in /run/* | /tmp/*) ;; *) continue ;; esac
			mkdir -p "$p" && mount --bind "/dev/shm/.share/$i" "$p" && umount "/dev/shm/.share/$i" || exit 1
			i=$((i + 1))
		done
		rm -rf /dev/shm/.share
		echo ready >"$dir/ready"
		exec sleep infinity' bash "$dir" "$MACHINE_BIND" "${MACHINE_SHARE:-}" >"$dir/holder.log" 2>&1 &
	MACHINE_PID[$name]=$! MACHINE_NETNS[$name]=$netns MACHINE_DIR[$name]=$dir
	for _ in $(seq 100); do
		[ -s "$dir/ready" ] && return 0
		kill -0 "${MACHINE_PID[$name]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "machine: $name did not start:" >&2
	cat "$dir/holder.log" >&2
	return 1
}

machine_net() { MACHINE_NETNS[$1]=$2; }

machine() { # NAME CMD...
	local name=$1 net=()
	shift
	[ -z "${MACHINE_NETNS[$name]}" ] || net=(--net="/run/netns/${MACHINE_NETNS[$name]}")
	# shellcheck disable=SC2086 # MACHINE_ENV: assignments, one word each
	nsenter --target "${MACHINE_PID[$name]}" --mount "${net[@]}" --wd=/ -- \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb $MACHINE_ENV "$@"
}

machine_copy() { # FROM PATH TO PATH2
	local mode
	mode=$(machine "$1" stat -c %a "$2") || return 1
	machine "$1" cat "$2" | machine "$3" sh -c 'umask 077 && cat >"$1" && chmod "$2" "$1"' sh "$4" "$mode"
}

machine_changes() { # NAME
	local dir=${MACHINE_DIR[$1]} d
	for d in etc usr var root; do
		(cd "$dir/$d.upper" && find . -mindepth 1 \( -type c -printf 'w %p\n' \) -o \
			\( -type l -printf 'l %p\n' \) -o \( -type f -printf 'f %p\n' \) -o \
			\( -type d -printf 'd %p\n' \)) | sed "s:^\(.\) \./:\1 /$d/:" |
			while read -r t p; do
				# a directory the host has too was only copied up
				[ "$t" = d ] && [ -d "$p" ] && continue
				grep -qxF -- "$p" "$dir/made" && continue
				echo "$t $p"
			done
	done
}

machine_stop_all() {
	local name
	for name in "${!MACHINE_PID[@]}"; do
		kill "${MACHINE_PID[$name]}" 2>/dev/null || true
		wait "${MACHINE_PID[$name]}" 2>/dev/null || true
	done
	MACHINE_PID=()
}
