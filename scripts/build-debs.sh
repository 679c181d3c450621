#!/usr/bin/env bash
# Builds the Debian packages, on Debian 12 as root: kmstore's (debian/) and
# libreswan 5.2 with the ppk-uri= series (libreswan-patches/build-deb.sh).
#
#   bash scripts/build-debs.sh [--no-libreswan] OUTDIR
#
# OUTDIR/*.deb                 the packages (apt-get install ./OUTDIR/NAME_*.deb)
# OUTDIR/dbgsym/               their debug symbols
# OUTDIR/source/               libreswan's source package (debian/patches/)
# OUTDIR/lintian.txt           lintian's report on kmstore's packages
# OUTDIR/libreswan-build.txt   where libreswan's source came from, and
#                              lintian's report on it
#
# Build dependencies come from apt-get build-dep. kmstore is built from a
# copy of the tree with dpkg-buildpackage -us -uc -b, so the tree and its
# parent directory stay clean; libreswan's package is cached under
# /var/cache/kmstore/libreswan-deb, keyed by the hashes of its inputs.
# Fails if the build fails or lintian reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

say() { printf 'build-debs: %s\n' "$*" >&2; }
die() { printf 'build-debs: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

libreswan=yes out=''
while [ $# -gt 0 ]; do
	case $1 in
	--no-libreswan) libreswan=no ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) [ -z "$out" ] || { usage >&2; exit 2; }; out=$1 ;;
	esac
	shift
done
[ -n "$out" ] || { usage >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run it as root (apt-get build-dep)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# shellcheck source=lib/apt-archives.sh
. scripts/lib/apt-archives.sh
apt_ensure dpkg-dev debhelper lintian

# One version: CMake's project version is the packages' upstream version.
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
cmake_version=$(sed -n 's/^project(kmstore VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ "${version%-*}" = "$cmake_version" ] ||
	die "debian/changelog is at ${version%-*}, CMakeLists.txt at $cmake_version: add a changelog entry"

# /etc/kmstore/kmstore.conf is a conffile that every gateway rewrites
# (guide section 4): any change to the shipped text, a comment too, stops
# each upgrade at dpkg's conffile prompt (and a non-interactive one fails).
conf_sha=$(sha256sum debian/kmstore.conf | cut -d ' ' -f 1)
[ "$conf_sha" = f3a7583c5c0f30d72cde5c4d0add44b825a21731ec485762e90b58125bdbd7f3 ] ||
	die "debian/kmstore.conf is not the text 0.1.0-1 shipped: a change makes dpkg ask at every gateway's upgrade; say it in the docs instead"

# This script's results from an earlier run go; nothing else in OUTDIR.
rm -rf "$out/dbgsym" "$out/source"
rm -f "$out"/*.deb "$out/lintian.txt" "$out/libreswan-build.txt"
work=$(mktemp -d "$out/.work.XXXXXX")
tree=$work/kmstore-$cmake_version
mkdir -p "$tree"

# The tree as git sees it (tracked and new files, not ignored ones), or,
# outside a git checkout, everything but build directories and OUTDIR.
rel_out=${out#"$top"/}
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		{ if [ "$rel_out" != "$out" ]; then grep -zv "^$rel_out/"; else cat; fi; } |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf - | tar -xf - -C "$tree"
else
	tar --exclude='./build*' --exclude="./$rel_out" -cf - . | tar -xf - -C "$tree"
fi

say "kmstore $version: build dependencies (apt-get build-dep)"
apt_build_dep "$tree" "$work/build-dep.log" ||
	{ tail -n 20 "$work/build-dep.log" >&2; die "apt-get build-dep failed; kept $work"; }
say "kmstore $version: dpkg-buildpackage -us -uc -b"
started=$SECONDS
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
	tail -n 40 "$work/build.log" >&2
	die "dpkg-buildpackage failed; log: $work/build.log"
fi
say "kmstore $version: built in $((SECONDS - started)) s"

lint_rc=0
lintian -I "$work"/kmstore_*.changes >"$work/lintian.raw" 2>&1 || lint_rc=$?
grep -v '^running with root privileges' "$work/lintian.raw" >"$out/lintian.txt" || true
mkdir -p "$out/dbgsym"
for f in "$work"/*.deb; do
	case $f in *-dbgsym_*) mv "$f" "$out/dbgsym/" ;; *) mv "$f" "$out/" ;; esac
done
[ $lint_rc -eq 0 ] || { cat "$out/lintian.txt" >&2; die "lintian: errors in kmstore's packages (exit $lint_rc)"; }
rm -rf "$work"

if [ $libreswan = yes ]; then
	bash libreswan-patches/build-deb.sh "$out"
fi

say "packages in $out:"
for f in "$out"/*.deb; do
	printf '  %-48s %7s KiB\n' "$(basename "$f")" $(($(stat -c %s "$f") / 1024)) >&2
done
