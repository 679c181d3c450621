#!/usr/bin/env bash
# Builds a minimal libreswan pluto with the kmstore patch series (ppk-uri=)
# applied, installed into a prefix inside the build directory.
#
#   libreswan-patches/build.sh [options] [BUILD_DIR]
#
#   BUILD_DIR          where the build is made or linked: BUILD_DIR/prefix,
#                      BUILD_DIR/src [build/libreswan-VERSION, with -stock
#                      appended for --stock]
#   --libreswan VER    the libreswan release and its series: 5.4 (the
#                      newest, the default) or 5.2 (Debian 12 and 13)
#   --source PATH      a libreswan tarball or unpacked source directory of
#                      that release you already have (a directory is
#                      copied, never changed)
#   --stock            apply only the crash fixes (patches marked "fix" in
#                      the series), i.e. stock behaviour for interop tests
#   --deps             install the build dependencies with apt-get first
#   --force            rebuild even when the build is up to date
#   -j N               parallel make jobs [nproc]
#
# Sources, always checked against their sha256 (--source: a mismatch is
# only a warning):
#   5.2  Debian's orig tarball, from the cache or, once, from the Debian
#        source pool (trixie ships 5.2) of the mirror named in this
#        machine's apt sources
#   5.4  upstream's v5.4 tarball (libreswan-5.4.tar.gz), from the cache or
#        from a shared/libreswan/ directory beside the project (or beside
#        its parent, for a git worktree); Debian has no 5.4
#
# Cache: $KMSTORE_CACHE (default /var/cache/kmstore)/libreswan holds the
# tarballs and, for builds from a checked tarball, the builds themselves
# (build/VERSION-KIND-KEY, KEY a hash of everything the build is made of);
# BUILD_DIR/prefix and BUILD_DIR/src then link there, and a second run
# with the same inputs builds nothing, even from a clean clone. A source
# directory, or a cache that cannot be written, builds in BUILD_DIR.
#
# Result: BUILD_DIR/prefix/libexec/ipsec/pluto, whack, addconn, ...
# (PREFIX=the prefix; sysconfdir, vardir, rundir under it too).
# BUILD_DIR/prefix/.kmstore-build says what was built from what.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${KMSTORE_CACHE:-/var/cache/kmstore}/libreswan

say() { printf 'libreswan-build: %s\n' "$*" >&2; }
die() { printf 'libreswan-build: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

version=5.4 source_arg='' stock=no deps=no force=no jobs=$(nproc) build=''
while [ $# -gt 0 ]; do
	case $1 in
	--libreswan) version=${2:?--libreswan needs a version}; shift ;;
	--libreswan=*) version=${1#*=} ;;
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

# What each release is built from.
case $version in
5.2)
	tarname=libreswan_5.2.orig.tar.gz
	sha256=c382bbd838c239f8d4c4e9cc320f3abf34f7b08e71d9e78ed029a96d963940ce
	pool_path=pool/main/libr/libreswan/$tarname
	;;
5.4)
	tarname=libreswan-5.4.tar.gz
	sha256=98644f69b825cbdad49dbd70ea1f3b324b32e642f8005bb4d8936d60dee538ed
	pool_path=''
	;;
*) die "--libreswan $version: there is a series for 5.2 and 5.4" ;;
esac
series_dir=$here/$version
kind=$([ $stock = yes ] && echo stock || echo patched)

if [ -z "$build" ]; then
	build=$here/../build/libreswan-$version
	[ $stock = no ] || build=$build-stock
fi
mkdir -p "$build"
build=$(cd "$build" && pwd)

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

# Copies a checked tarball into the cache; prints the cached path.
cache_tarball() { # FILE
	local tmp
	if ! mkdir -p "$cache" 2>/dev/null || ! tmp=$(mktemp "$cache/.$tarname.XXXXXX" 2>/dev/null); then
		printf '%s\n' "$1"	# an unwritable cache: use it where it is
		return
	fi
	cp "$1" "$tmp" && mv "$tmp" "$cache/$tarname"
	printf '%s\n' "$cache/$tarname"
}

# 5.4: the shared/libreswan/ directory beside the project, or beside the
# directory holding it (a git worktree under the project's parent).
shared_tarball() {
	local d f
	d=$(cd "$here/.." && pwd)
	for _ in 1 2 3; do
		d=$(dirname "$d")
		f=$d/shared/libreswan/$tarname
		if [ -f "$f" ]; then
			if check_sha "$f"; then
				printf '%s\n' "$f"
				return 0
			fi
			say "$f: sha256 mismatch, not used"
		fi
	done
	return 1
}

debian_pool_tarball() {
	local mirror tmp
	command -v curl >/dev/null || die "curl is needed to fetch $tarname (or give --source)"
	mkdir -p "$cache"
	tmp=$(mktemp "$cache/.$tarname.XXXXXX")
	while read -r mirror; do
		say "fetching $mirror/$pool_path"
		if curl -fsS --retry 2 --connect-timeout 20 --max-time 600 -o "$tmp" "$mirror/$pool_path"; then
			if check_sha "$tmp"; then
				mv "$tmp" "$cache/$tarname"
				printf '%s\n' "$cache/$tarname"
				return 0
			fi
			say "$mirror: sha256 mismatch, not used"
		fi
	done < <(debian_archives)
	rm -f "$tmp"
	return 1
}

fetch_tarball() { # -> prints the tarball's path
	local t=$cache/$tarname found
	if [ -f "$t" ] && check_sha "$t"; then
		printf '%s\n' "$t"
		return
	fi
	if [ -n "$pool_path" ]; then
		debian_pool_tarball ||
			die "could not fetch $tarname with sha256 $sha256 from the mirrors in the apt sources; give --source"
	elif found=$(shared_tarball); then
		cache_tarball "$found"
	else
		die "no $tarname (sha256 $sha256) in $cache or in a shared/libreswan/ beside the project; give --source"
	fi
}

# Series lines: "NNNN-name.patch [fix]"; '#' starts a comment.
series_patches() {
	sed -e 's/#.*//' "$series_dir/series" | awk -v stock=$stock 'NF { if (stock == "no" || $2 == "fix") print $1 }'
}

src_desc='' cacheable=yes
if [ -n "$source_arg" ]; then
	[ -e "$source_arg" ] || die "$source_arg: no such file or directory"
	source_arg=$(cd "$(dirname "$source_arg")" && pwd)/$(basename "$source_arg")
	if [ -d "$source_arg" ]; then
		[ -f "$source_arg/programs/pluto/plutomain.c" ] || die "$source_arg: not a libreswan source tree"
		src_desc="directory $source_arg"
		cacheable=no	# it may change under us
	else
		check_sha "$source_arg" || say "warning: $source_arg is not the libreswan $version tarball this series is made for (sha256 differs); using it anyway"
		src_desc="tarball $(sha256sum <"$source_arg" | cut -c1-64)"
	fi
else
	source_arg=$(fetch_tarball)
	src_desc="tarball $sha256"
fi

# What this build is made of; an identical stamp means nothing to do.
stamp=$(
	echo "libreswan: $version"
	echo "source: $src_desc"
	echo "stock: $stock"
	for p in $(series_patches); do sha256sum "$series_dir/$p" | sed "s:$series_dir/::"; done
	sha256sum "$0" | cut -c1-64
)
up_to_date() { # PREFIX
	[ $force = no ] && [ -x "$1/libexec/ipsec/pluto" ] && [ -f "$1/.kmstore-build" ] &&
		[ "$(cat "$1/.kmstore-build")" = "$stamp" ]
}

# Where to build: a cache entry named after the stamp, or BUILD_DIR.
home=$build cached=''
if [ $cacheable = yes ]; then
	entry=$cache/build/$version-$kind-$(printf '%s\n' "$stamp" | sha256sum | cut -c1-16)
	if mkdir -p "$entry" 2>/dev/null && { exec 9>>"$entry.lock"; } 2>/dev/null; then
		flock 9	# another build.sh may be making this very entry
		home=$entry cached=" (cached: $entry)"
	else
		say "cannot write $cache/build: building in $build"
	fi
fi

link_build() { # the build in $home -> BUILD_DIR
	[ "$home" != "$build" ] || return 0
	local d
	for d in src prefix; do
		rm -rf "${build:?}/$d"
		ln -s "$home/$d" "$build/$d"
	done
}

if up_to_date "$home/prefix"; then
	link_build
	say "up to date: $build/prefix$cached"
	exit 0
fi

started=$SECONDS
src=$home/src prefix=$home/prefix
rm -rf "$src" "$prefix" "${build:?}/src" "$build/prefix"
mkdir -p "$src"
if [ -d "$source_arg" ]; then
	cp -a "$source_arg/." "$src/"
else
	tar -xzf "$source_arg" -C "$src" --strip-components=1
fi

for p in $(series_patches); do
	say "applying $p"
	patch -d "$src" -p1 --quiet --forward --batch <"$series_dir/$p" ||
		die "$p does not apply to libreswan $version ($src_desc)"
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
say "building libreswan $version ($([ $stock = yes ] && echo 'stock + crash fixes' || echo 'with the series')) in $src"
if ! make -C "$src" -j"$jobs" "${make_vars[@]}" base >"$home/make.log" 2>&1; then
	grep -E ': (error|warning):|\*\*\*' "$home/make.log" | head -n 30 >&2
	die "make base failed; see $home/make.log"
fi
if ! make -C "$src" "${make_vars[@]}" install-base >"$home/install.log" 2>&1; then
	tail -n 30 "$home/install.log" >&2
	die "make install-base failed; see $home/install.log"
fi
[ -x "$prefix/libexec/ipsec/pluto" ] || die "no pluto in $prefix/libexec/ipsec"
# the objects are not needed again: a change makes a new build
[ "$home" = "$build" ] || rm -rf "$src"/OBJ.*
printf '%s\n' "$stamp" >"$prefix/.kmstore-build"
link_build
say "installed into $build/prefix$cached in $((SECONDS - started)) s"
