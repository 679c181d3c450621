#!/usr/bin/env bash
# sandbox.sh BUILD STAGE RUN CASE KIND - run.sh runs it once per case, in
# new mount, network, UTS and PID namespaces (unshare --propagation
# private; as PID 1, so whatever the case leaves running dies with it).
#
# libreswan's test cases and its runner write where a test VM would:
# /etc/ipsec.*, /var/lib/ipsec, /run/pluto, /tmp, /testing, /root, and
# /proc/sys/kernel/core_pattern. Here they write into a copy-on-write
# overlay of the machine's root (the upper layer a tmpfs) with STAGE
# (libreswan and kmstore installed with their default paths) copied in;
# fresh /run and /tmp; BUILD bound through from the real file
# system (it holds RUN, where the results go); and a private file over
# core_pattern, which is global. One sandbox per case, as a test VM set
# is: nsrun's namespaces of cases running side by side never meet (the
# kernel refuses binding mount namespace files made at the same time in
# one mount namespace).
#
# Then the case runs with testing/utils/nsrun --ns from RUN, and gets a
# verdict in RUN/logs/CASE.verdict (also printed). KIND: stock (the
# release's case: no-ESP comparison allowed) or ours (must match as it is).
set -euo pipefail

build=$1 stage=$2 run=$3 c=$4 kind=$5
here=$(cd "$(dirname "$0")" && pwd)
t0=$SECONDS
# read now: this tree may be under /tmp, which the sandbox replaces
no_esp=$(cat "$here/no-esp.awk")

# --- the root -----------------------------------------------------------------

top=$build/sandbox/$c
mkdir -p "$top"
mount -t tmpfs -o mode=755 kmstore-sandbox "$top"
mkdir "$top/upper" "$top/work" "$top/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
mount -t proc proc "$top/root/proc" # this PID namespace's
for m in /sys /dev; do mount --rbind "$m" "$top/root$m"; done
# (nsrun recognises a tmpfs by the name "tmpfs" in /proc/mounts)
mount -t tmpfs -o mode=755 tmpfs "$top/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$top/root/tmp"
mkdir -p "$top/root$build" "$top/root/testing" "$top/root/.old-root"
mount --bind "$build" "$top/root$build"
cd "$top/root"
pivot_root . .old-root
cd /
umount -l /.old-root
rmdir /.old-root

# swan-prep writes "|/usr/bin/tee /tmp/core.%h.%e.%p" into core_pattern:
# let it write into a file of our own. The kernel still dumps cores by the
# real one, which other tests on this machine may be reading: nothing here
# leaves a core.
echo core >/run/core_pattern
mount --bind /run/core_pattern /proc/sys/kernel/core_pattern
ulimit -c 0

# (a layer of the overlay cannot be inside another: copied; through tar,
# which keeps the root's /lib -> usr/lib where the stage has a real lib/,
# kmstored's systemd unit)
tar -C "$stage" -cf - . | tar -C / -xf - --keep-directory-symlink
ldconfig # kmstore's library in /usr/local/lib
hostname kmstore-sandbox
printf '127.0.1.1\tkmstore-sandbox\n' >>/etc/hosts # sudo looks itself up
ip link set lo up

# --- the case ---------------------------------------------------------------

d=$run/testing/pluto/$c
out=$d/OUTPUT
nsrun() {
	rc=0
	(cd "$d" && timeout -k 10 900 /usr/bin/python3 ../../utils/nsrun --ns --shutdown --testname "$c") \
		>"$run/logs/$c.nsrun.log" 2>&1 || rc=$?
	mkdir -p "$out"
	mv "$run/logs/$c.nsrun.log" "$out/nsrun.log"
	[ $rc = 0 ] || echo "nsrun exit status $rc" >>"$out/nsrun.log"
}
nsrun
# A host's shell that died before its prompt (sudo or nsenter failing to
# start under load: "unable to execute /usr/bin/nsenter: Connection reset
# by peer") ran none of the case: the harness failed, not the case. Once
# more, and the verdict says so.
retried=''
# (nsrun opens HOST.console.verbose.txt as it starts a host's first script)
if [ ! -f "$out/RESULT" ] && grep -q 'pexpect.exceptions.EOF' "$out/nsrun.log" &&
	! compgen -G "$out/*.console.verbose.txt" >/dev/null; then
	mv "$out/nsrun.log" "$run/logs/$c.nsrun-first.log"
	rm -rf "$out"
	nsrun
	mv "$run/logs/$c.nsrun-first.log" "$out/nsrun-first.log"
	retried=' (nsrun retried: a shell did not start; see OUTPUT/nsrun-first.log)'
fi

# --- the verdict --------------------------------------------------------------

result='' why=''
[ -f "$out/RESULT" ] && result=$(sed -n 's/.*"result": "\([a-z]*\)".*/\1/p' "$out/RESULT" | tail -n 1)
if [ "$result" = passed ]; then
	v=PASS
elif [ -z "$result" ]; then
	v=FAIL why="nsrun gave no result; see OUTPUT/nsrun.log"
else
	v=FAIL why="console output differs; see OUTPUT/*.console.diff"
	if [ "$kind" = stock ]; then
		v='PASS (no-ESP)'
		for exp in "$d"/*.console.txt; do
			host=$(basename "$exp" .console.txt)
			awk "$no_esp" "$exp" >"$out/$host.console.no-esp.expected"
			awk "$no_esp" "$out/$host.console.txt" >"$out/$host.console.no-esp.txt" 2>/dev/null || true
			diff -w -N -u "$out/$host.console.no-esp.expected" "$out/$host.console.no-esp.txt" \
				>"$out/$host.console.no-esp.diff" ||
				v=FAIL why="console output differs, also without ESP; see OUTPUT/*.console.no-esp.diff"
		done
	fi
fi
# what a test VM's post-mortem would find
for f in "$out"/*.pluto.log; do
	[ -f "$f" ] || continue
	! grep -q 'leak detective found [0-9]* leaks' "$f" || v=FAIL why="$(basename "$f"): pluto leaked memory"
	! grep -q 'ASSERTION FAILED' "$f" || v=FAIL why="$(basename "$f"): ASSERTION FAILED"
done

if [ "$v" = FAIL ]; then
	echo "FAIL $c ($why)$retried  [$((SECONDS - t0)) s]"
else
	echo "$v $c$retried  [$((SECONDS - t0)) s]"
fi | tee "$run/logs/$c.verdict"
