# apt-archives.sh - the Debian archives this machine's apt sources name,
# for scripts that fetch a source tarball from Debian's pool without
# writing a host name anywhere. Source it, then:
#
#   debian_archives    the main archives' http(s) URIs, without a trailing
#                      '/', each once, in the order the sources list them
#                      (the security archive is left out: its pool has no
#                      orig tarballs)

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
