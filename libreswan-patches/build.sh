#!/usr/bin/env bash
# Builds a minimal libreswan 5.2 pluto with the kmstore patch series
# (ppk-uri=) applied, installed into a prefix inside the build directory.
#
#   libreswan-patches/build.sh [options] [BUILD_DIR]
#
#   BUILD_DIR          where to extract, build and install
#                      [build/libreswan, or build/libreswan-stock with --stock]
#   --source PATH      a libreswan 5.2 tarball or an unpacked source directory
#                      you already have (a directory is copied, never changed)
#   --stock            apply only the crash fixes (patches marked "fix" in
#                      the series), i.e. stock 5.2 behaviour for interop tests
#   --deps             install the build dependencies with apt-get first
#   --force            rebuild even when BUILD_DIR is up to date
#   -j N               parallel make jobs [nproc]
#
# Without --source the 5.2 orig tarball is taken from the cache
# ($KMSTORE_CACHE, default /var/cache/kmstore/libreswan) or fetched once
# from Debian's source pool (trixie ships 5.2) through the Debian mirror
# named in this machine's apt sources, and its sha256 is always checked.
#
# Result: BUILD_DIR/prefix/libexec/ipsec/pluto, whack, addconn, ...
# (PREFIX=BUILD_DIR/prefix; sysconfdir, vardir, rundir under it too).
# BUILD_DIR/prefix/.kmstore-build says what was built from what.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
series_dir=$here/5.2
version=5.2
tarname=libreswan_${version}.orig.tar.gz
sha256=c382bbd838c239f8d4c4e9cc320f3abf34f7b08e71d9e78ed029a96d963940ce
pool_path=pool/main/libr/libreswan/$tarname
cache=${KMSTORE_CACHE:-/var/cache/kmstore}/libreswan

say() { printf 'libreswan-build: %s\n' "$*" >&2; }
die() { printf 'libreswan-build: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

source_arg='' stock=no deps=no force=no jobs=$(nproc) build=''
while [ $# -gt 0 ]; do
	case $1 in
	--source) source_arg=${2:?--source needs a path}; shift ;;
	--stock) stock=yes ;;
	--deps) deps=yes ;;
	--force) force=yes ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-j*) jobs=${1#-j} ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) [ -z "$build" ] || { usage >&2; exit 2; }; build=$1 ;;
	esac
	shift
done
if [ -z "$build" ]; then
	build=$here/../build/libreswan
	[ $stock = no ] || build=$build-stock
fi
mkdir -p "$build"
build=$(cd "$build" && pwd)
prefix=$build/prefix

# --- dependencies -------------------------------------------------------

build_deps=(libnss3-dev libnspr4-dev libevent-dev libseccomp-dev bison flex pkg-config make gcc)
missing=()
for p in "${build_deps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ $deps = yes ]; then
		say "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
	else
		die "missing build dependencies: ${missing[*]} (apt-get install them, or run with --deps)"
	fi
fi

# --- the source -----------------------------------------------------------

# The main Debian archives of the apt sources: scripts/lib/apt-archives.sh.
. "$(dirname "$(readlink -f "$0")")/../scripts/lib/apt-archives.sh"

check_sha() { # FILE
	echo "$sha256  $1" | sha256sum -c --quiet - >/dev/null 2>&1
}

fetch_tarball() { # -> prints the cached tarball's path
	local t=$cache/$tarname mirror tmp
	if [ -f "$t" ] && check_sha "$t"; then
		printf '%s\n' "$t"
		return
	fi
	command -v curl >/dev/null || die "curl is needed to fetch $tarname (or give --source)"
	mkdir -p "$cache"
	tmp=$(mktemp "$cache/.$tarname.XXXXXX")
	while read -r mirror; do
		say "fetching $mirror/$pool_path"
		if curl -fsS --retry 2 --connect-timeout 20 --max-time 600 -o "$tmp" "$mirror/$pool_path"; then
			if check_sha "$tmp"; then
				mv "$tmp" "$t"
				printf '%s\n' "$t"
				return
			fi
			say "$mirror: sha256 mismatch, not used"
		fi
	done < <(debian_archives)
	rm -f "$tmp"
	die "could not fetch $tarname with sha256 $sha256 from the mirrors in the apt sources; give --source"
}

# Series lines: "NNNN-name.patch [fix]"; '#' starts a comment.
series_patches() {
	sed -e 's/#.*//' "$series_dir/series" | awk -v stock=$stock 'NF { if (stock == "no" || $2 == "fix") print $1 }'
}

src_desc=''
if [ -n "$source_arg" ]; then
	[ -e "$source_arg" ] || die "$source_arg: no such file or directory"
	source_arg=$(cd "$(dirname "$source_arg")" && pwd)/$(basename "$source_arg")
	if [ -d "$source_arg" ]; then
		[ -f "$source_arg/programs/pluto/plutomain.c" ] || die "$source_arg: not a libreswan source tree"
		src_desc="directory $source_arg"
	else
		check_sha "$source_arg" || say "warning: $source_arg is not the Debian 5.2 orig tarball (sha256 differs); using it anyway"
		src_desc="tarball $source_arg ($(sha256sum <"$source_arg" | cut -c1-64))"
	fi
else
	tarball=$(fetch_tarball)
	source_arg=$tarball
	src_desc="tarball $tarball (sha256 $sha256)"
fi

# What this build is made of; an identical stamp means nothing to do.
stamp=$(
	echo "source: $src_desc"
	echo "stock: $stock"
	for p in $(series_patches); do sha256sum "$series_dir/$p" | sed "s:$series_dir/::"; done
	sha256sum "$0" | cut -c1-64
)
if [ $force = no ] && [ -x "$prefix/libexec/ipsec/pluto" ] && [ -f "$prefix/.kmstore-build" ] &&
	[ "$(cat "$prefix/.kmstore-build")" = "$stamp" ]; then
	say "up to date: $prefix"
	exit 0
fi

started=$SECONDS
src=$build/src
rm -rf "$src" "$prefix"
mkdir -p "$src"
if [ -d "$source_arg" ]; then
	cp -a "$source_arg/." "$src/"
else
	tar -xzf "$source_arg" -C "$src" --strip-components=1
fi

for p in $(series_patches); do
	say "applying $p"
	patch -d "$src" -p1 --quiet --forward --batch <"$series_dir/$p" ||
		die "$p does not apply to $src_desc"
done

# --- build -----------------------------------------------------------------

# A small pluto: no DNSSEC, LDAP, curl, labeled IPsec, audit, systemd,
# PAM, NetworkManager, libcap-ng; everything under the prefix; no man
# pages (they need xmlto). seccomp is built in, as in Debian's package
# (seccomp= stays disabled unless configured): the series refuses
# ppk-uri= with seccomp=enabled, and the tests check that.
make_vars=(
	PREFIX="$prefix" SYSCONFDIR="$prefix/etc" VARDIR="$prefix/var"
	RUNDIR="$prefix/run/pluto" LOGDIR="$prefix/var/log"
	USE_DNSSEC=false USE_LIBCURL=false USE_LDAP=false USE_SECCOMP=true
	USE_LABELED_IPSEC=false USE_LINUX_AUDIT=false USE_SYSTEMD_WATCHDOG=false
	USE_AUTHPAM=false USE_NM=false USE_LIBCAP_NG=false
	INITSYSTEM=sysvinit INSTALL_INITSYSTEM=false INSTBINFLAGS=
)
say "building ($([ $stock = yes ] && echo 'stock 5.2 + fixes' || echo 'patched')) in $src"
if ! make -C "$src" -j"$jobs" "${make_vars[@]}" base >"$build/make.log" 2>&1; then
	grep -E 'error|Error' "$build/make.log" | head -n 30 >&2
	die "make base failed; see $build/make.log"
fi
if ! make -C "$src" "${make_vars[@]}" install-base >"$build/install.log" 2>&1; then
	tail -n 30 "$build/install.log" >&2
	die "make install-base failed; see $build/install.log"
fi
[ -x "$prefix/libexec/ipsec/pluto" ] || die "no pluto in $prefix/libexec/ipsec"
printf '%s\n' "$stamp" >"$prefix/.kmstore-build"
say "installed into $prefix in $((SECONDS - started)) s"
