#!/usr/bin/env bash
# Runs libreswan's own test cases (testing/pluto/CASE) against the patched
# pluto with libreswan's namespace runner (testing/utils/nsrun --ns) in a
# sandbox, and compares each host's console output with the case's
# *.console.txt through libreswan's sanitizers.
#
#   libreswan-patches/testing/run.sh [options] [CASE...]
#
#   CASE               a case directory name [every ikev2-ppk-* case of the
#                      libreswan release, and every case of the series
#                      (libreswan-patches/testing/pluto/)]
#   --libreswan V      the release and series (libreswan-patches/V/): 5.4
#                      or 5.2 [5.4, as build.sh]
#   --build DIR        libreswan's build (build.sh --destdir) and the runs'
#                      files [build/libreswan-V-testing]
#   --kmstore DIR      a CMake build of this repository: kme-sim, the
#                      PKCS#11 module, kmstore and kmstore-nss-register are
#                      installed from it into the sandbox [build/release]
#   -j N               cases run at once [8]
#   --accept           after the run, copy the sanitized console output of
#                      the series' cases that ran into their directories
#                      (CASE/V/ for a V whose output differs), to review
#                      with git diff
#
# Prints "PASS CASE", "PASS (no-ESP) CASE" or "FAIL CASE (why)" per case,
# with its wall time, "SKIP CASE (why)" for a case listed in the file
# "skip" (it cannot run here), and last "N passed, M failed"; exits 0 when nothing
# failed, 77 when it cannot run here (not root, no namespaces, a tool
# missing). Each case's OUTPUT/ (console, diffs, pluto and kme-sim logs,
# nsrun's log) stays in DIR/run/testing/pluto/CASE/OUTPUT.
#
# No ESP: this machine's kernel has XFRM but no ESP, so a stock case that
# sets up a tunnel differs after IKE_AUTH. When such a case fails, its
# expected and actual consoles are compared once more through no-esp.awk,
# which removes only the Child SA, ping and traffic-status lines: equal is
# "PASS (no-ESP)". The series' own cases use IKE SAs without Child SAs and
# must pass as they are.
#
# Each case runs in a sandbox of its own (sandbox.sh): mount, network, UTS
# and PID namespaces whose root is a copy-on-write overlay of this
# machine's, with libreswan and kmstore installed into it with their
# default paths, /testing made there, /proc/sys/kernel/core_pattern
# (global: swan-prep writes it) shadowed by a private file. Nothing of it
# reaches the machine but DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

say() { printf 'libreswan-testing: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
skip() { say "skipped: $*"; exit 77; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

version=5.4 build='' kmstore_build=$repo/build/release jobs=8 accept=no cases=()
while [ $# -gt 0 ]; do
	case $1 in
	--libreswan) version=${2:?--libreswan needs a version}; shift ;;
	--build) build=${2:?--build needs a directory}; shift ;;
	--kmstore) kmstore_build=${2:?--kmstore needs a directory}; shift ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-j*) jobs=${1#-j} ;;
	--accept) accept=yes ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) cases+=("$1") ;;
	esac
	shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j $jobs: a number of cases, please"
series=$repo/libreswan-patches/$version
[ -f "$series/series" ] || die "no series for libreswan $version ($series/series)"
if [ -z "$build" ]; then
	build=$repo/build/libreswan-$version-testing
fi

# --- can it run here? ---------------------------------------------------

[ "$(id -u)" = 0 ] || skip "needs root (network and mount namespaces)"
unshare --mount --net --uts --pid --fork --propagation private true 2>/dev/null ||
	skip "cannot make namespaces here (unshare --mount --net --uts --pid)"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
	grep -qw overlay /proc/filesystems || skip "no overlay file system"
# what libreswan's runner and its scripts call (Debian package: command)
need=(sudo:sudo python3-pexpect: iptables:iptables iputils-ping:ping
	diffstat:diffstat gawk:gawk libnss3-tools:modutil)
missing=()
for n in "${need[@]}"; do
	pkg=${n%%:*} cmd=${n#*:}
	if [ -n "$cmd" ]; then
		command -v "$cmd" >/dev/null || missing+=("$pkg")
	else
		/usr/bin/python3 -c 'import pexpect' 2>/dev/null || missing+=("$pkg")
	fi
done
[ ${#missing[@]} -eq 0 ] || skip "missing ${missing[*]} (apt-get install them; scripts/deps.sh does)"
for f in tests/kme-sim/kme-sim provider/pkcs11/kmstore-pkcs11.so; do
	[ -e "$kmstore_build/$f" ] || die "$kmstore_build: no $f (a CMake build of this repository: --kmstore)"
done

# --- libreswan with its default paths, and kmstore ------------------------

# one run at a time in a build directory (it is emptied and refilled)
mkdir -p "$build"
exec 9>"$build/.run.lock"
flock -n 9 || die "another run.sh is using $build (--build another directory)"

"$repo/libreswan-patches/build.sh" --libreswan "$version" --deps --destdir "$build" >&2 ||
	die "building libreswan $version failed"
src=$build/src

stage=$build/stage
rm -rf "$stage"
mkdir "$stage"
cp -a "$build/destdir/." "$stage/"
DESTDIR=$stage cmake --install "$kmstore_build" --prefix /usr/local >"$build/kmstore-install.log" 2>&1 ||
	die "installing kmstore from $kmstore_build failed; see $build/kmstore-install.log"

# --- the cases --------------------------------------------------------------

ours=$here/pluto
is_ours() { [ -d "$ours/$1" ]; }
if [ ${#cases[@]} -eq 0 ]; then
	# the release's own (the series' testing patch adds ikev2-ppk-uri-*)
	while read -r c; do cases+=("$c"); done < <(cd "$src/testing/pluto" && ls -d ikev2-ppk-* | grep -v '^ikev2-ppk-uri-' | sort)
	while read -r c; do cases+=("$c"); done < <(cd "$ours" && ls -d ikev2-ppk-uri-* 2>/dev/null | sort)
fi
for c in "${cases[@]}"; do
	[[ $c =~ ^[a-z0-9][-a-z0-9_.]*$ ]] || die "$c: not a test case name"
	is_ours "$c" || [ -d "$src/testing/pluto/$c" ] || die "$c: no such case in libreswan $version or the series"
done
# what cannot run here, and why (the file "skip")
skipped=() run_cases=()
for c in "${cases[@]}"; do
	why=$(while read -r v sc reason; do
		# shellcheck disable=SC2053 # the version field is a pattern
		if [[ $v != \#* && $sc = "$c" && $version == $v ]]; then echo "$reason"; fi
	done <"$here/skip")
	if [ -n "$why" ]; then
		skipped+=("$c")
		echo "SKIP $c ($why)"
	else
		run_cases+=("$c")
	fi
done
cases=("${run_cases[@]}")

# The run tree: libreswan's testing/ without its 1300 cases, plus the
# chosen ones. A case of the series comes from its directory here (CASE/
# and CASE/V/ over it), so an edited case runs without rebuilding libreswan;
# mkpatch.sh --check keeps the series' testing patch equal to it.
run=$build/run
rm -rf "$run"
mkdir -p "$run/testing/pluto" "$run/logs"
(cd "$src/testing" && find . -mindepth 1 -maxdepth 1 ! -name pluto -exec cp -a {} "$run/testing/" \;)
cp -a "$src/testing/pluto/setup.sh" "$src/testing/pluto/TESTLIST" "$run/testing/pluto/"
cp -a "$here/guestbin/." "$run/testing/guestbin/"
for c in "${cases[@]}"; do
	if is_ours "$c"; then
		mkdir "$run/testing/pluto/$c"
		find "$ours/$c" -mindepth 1 -maxdepth 1 -type f -exec cp -a {} "$run/testing/pluto/$c/" \;
		[ ! -d "$ours/$c/$version" ] || cp -a "$ours/$c/$version/." "$run/testing/pluto/$c/"
		echo ours >"$run/logs/$c.kind"
	else
		cp -a "$src/testing/pluto/$c" "$run/testing/pluto/"
		echo stock >"$run/logs/$c.kind"
	fi
done

# --- run ------------------------------------------------------------------

# One sandbox per case (sandbox.sh), JOBS at a time, each on one CPU.
# nsrun keeps a guest's mount namespace by binding it onto a file, which
# the kernel allows only for a namespace newer than the binder's own (no
# loops). "Newer" is a namespace ID handed out from per-CPU batches: a
# namespace made on another CPU than the sandbox's can look older, and
# the bind fails (EINVAL) whenever other processes on the machine make
# namespaces meanwhile (about one bind in two under ctest -j2). Made on
# one CPU, IDs only grow.
cpus=($(/usr/bin/python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))'))
pattern_before=$(cat /proc/sys/kernel/core_pattern)
started=$SECONDS
rm -rf "$build/sandbox"
n=0
for c in "${cases[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
	taskset -c "${cpus[n % ${#cpus[@]}]}" \
		unshare --mount --net --uts --pid --fork --propagation private \
		bash "$here/sandbox.sh" "$build" "$stage" "$run" "$c" "$(cat "$run/logs/$c.kind")" &
	n=$((n + 1))
done
wait
rc=0
if [ "$(cat /proc/sys/kernel/core_pattern)" != "$pattern_before" ]; then
	printf '%s\n' "$pattern_before" >/proc/sys/kernel/core_pattern
	say "error: /proc/sys/kernel/core_pattern changed during the run; restored"
	rc=1
fi

passed=0 failed=0
for c in "${cases[@]}"; do
	if [ -f "$run/logs/$c.verdict" ] && grep -q '^PASS' "$run/logs/$c.verdict"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		[ -f "$run/logs/$c.verdict" ] || echo "FAIL $c (no verdict: the sandbox stopped)"
	fi
done
say "$((SECONDS - started)) s for ${#cases[@]} cases, $jobs at once; outputs in $run/testing/pluto/*/OUTPUT"

if [ $accept = yes ]; then
	for c in "${cases[@]}"; do
		is_ours "$c" || continue
		for out in "$run/testing/pluto/$c/OUTPUT/"*.console.txt; do
			[ -f "$out" ] || continue
			host=$(basename "$out")
			if [ "$version" = 5.2 ] || cmp -s "$out" "$ours/$c/$host"; then
				cp "$out" "$ours/$c/$host"
				rm -f "$ours/$c/$version/$host"
			else
				mkdir -p "$ours/$c/$version"
				cp "$out" "$ours/$c/$version/$host"
			fi
		done
		say "accepted the output of $c: review it (git diff), then libreswan-patches/testing/mkpatch.sh"
	done
fi

[ ${#skipped[@]} -eq 0 ] || say "skipped (see above): ${skipped[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $rc -eq 0 ]
