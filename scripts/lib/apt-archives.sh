# apt-archives.sh - the Debian archives this machine's apt sources name,
# for scripts that fetch a source tarball from Debian's pool without
# writing a host name anywhere. Source it, then:
#
#   debian_archives    the main archives' http(s) URIs, without a trailing
#                      '/', each once, in the order the sources list them
#                      (the security archive is left out: its pool has no
#                      orig tarballs)

# shellcheck shell=bash

debian_archive_uris() { # every URI in deb822 .sources and one-line lists
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -E -n 's/^[[:space:]]*deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\3/p' "$f"
	done
}

debian_archives() {
	debian_archive_uris | grep -E '^https?://' | grep -v -- '-security' |
		sed 's:/*$::' | awk '!seen[$0]++'
}

# debian_keyring      the keyring that signs the archives (Signed-By of the
#                     deb822 sources, else debian-archive-keyring)
# debian_fetch URL FILE
#                     one file, bounded in time; prints nothing, returns
#                     curl's status (22: an HTTP error, code in
#                     $DEBIAN_FETCH_HTTP)
# debian_sources_index ARCHIVE SUITE DIR
#                     the suite's source index, verified: InRelease checked
#                     with gpgv against debian_keyring, main/source/Sources.xz
#                     against the sha256 InRelease lists; prints the path of
#                     the Sources.xz (kept in DIR, named after the suite and
#                     its sha256, so a second call with an unchanged index
#                     downloads only InRelease); 1 with a message on stderr
#                     when it cannot
# debian_source_stanzas SOURCES_XZ PACKAGE
#                     every stanza of PACKAGE in an index, one per line:
#                     "VERSION DIRECTORY" then "sha256 size name" for each
#                     file, separated by '|'

debian_keyring() {
	local k
	k=$(awk 'tolower($1) == "signed-by:" { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$k" ] && [ -f "$k" ] || k=/usr/share/keyrings/debian-archive-keyring.gpg
	printf '%s\n' "$k"
}

debian_fetch() { # URL FILE
	local rc=0
	DEBIAN_FETCH_HTTP=$(curl -sS --retry 2 --connect-timeout 20 --max-time 600 \
		-w '%{http_code}' -o "$2" "$1") || rc=$?
	if [ $rc -eq 0 ] && [ "$DEBIAN_FETCH_HTTP" != 200 ]; then
		rm -f "$2"
		rc=22
	fi
	return $rc
}

debian_sources_index() { # ARCHIVE SUITE DIR
	local archive=$1 suite=$2 dir=$3 sum
	mkdir -p "$dir"
	debian_fetch "$archive/dists/$suite/InRelease" "$dir/$suite.InRelease" || {
		echo "cannot fetch $archive/dists/$suite/InRelease (HTTP ${DEBIAN_FETCH_HTTP:-none})" >&2
		return 1
	}
	gpgv --keyring "$(debian_keyring)" --output "$dir/$suite.Release" "$dir/$suite.InRelease" 2>/dev/null || {
		echo "$archive/dists/$suite/InRelease: signature not valid for $(debian_keyring)" >&2
		return 1
	}
	sum=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 }
		s && $3 == "main/source/Sources.xz" { print $1; exit }' "$dir/$suite.Release")
	[ -n "$sum" ] || { echo "the Release of $suite lists no main/source/Sources.xz" >&2; return 1; }
	if [ ! -s "$dir/Sources.$suite.$sum.xz" ]; then
		debian_fetch "$archive/dists/$suite/main/source/Sources.xz" "$dir/Sources.xz.tmp" || {
			echo "cannot fetch the Sources.xz of $suite (HTTP ${DEBIAN_FETCH_HTTP:-none})" >&2
			return 1
		}
		echo "$sum  $dir/Sources.xz.tmp" | sha256sum -c --quiet - >/dev/null 2>&1 || {
			rm -f "$dir/Sources.xz.tmp"
			echo "the Sources.xz of $suite does not match the sha256 of its Release" >&2
			return 1
		}
		rm -f "$dir/Sources.$suite."*
		mv "$dir/Sources.xz.tmp" "$dir/Sources.$suite.$sum.xz"
	fi
	printf '%s\n' "$dir/Sources.$suite.$sum.xz"
}

debian_source_stanzas() { # SOURCES_XZ PACKAGE
	awk -v RS= -F '\n' -v pkg="$2" '
	$1 == "Package: " pkg {
		ver = ""; dir = ""; files = ""; in_sha = 0
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^Version: /) ver = substr($i, 10)
			else if ($i ~ /^Directory: /) dir = substr($i, 12)
			else if ($i ~ /^Checksums-Sha256:/) in_sha = 1
			else if (in_sha && $i ~ /^ /) files = files "|" substr($i, 2)
			else in_sha = 0
		}
		print ver " " dir files
	}' <(xz -dc "$1")
}

# apt_ensure PKG...   installs the packages that are not installed yet
#                     (apt-get update first), quietly; as root
# apt_build_dep DIR LOG
#                     apt-get build-dep for the unpacked source DIR (its
#                     debian/control), output in LOG; an apt-get update and
#                     a second try if the first fails

apt_ensure() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	echo "apt: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_build_dep() { # DIR LOG
	(cd "$1" && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./ >"$2" 2>&1) && return 0
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		(cd "$1" && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./ >"$2" 2>&1)
}
