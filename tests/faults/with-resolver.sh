#!/bin/sh
# with-resolver.sh DIR CMD...: runs CMD with DIR/resolv.conf and
# DIR/nsswitch.conf in place of the system's, in a private mount namespace
# (they are bind-mounted over /etc's there), so nothing outside changes.
# Needs root (unshare). with_resolver_files DIR NAMESERVER in faces.sh
# writes the two files.
set -eu
dir=$1
shift
exec unshare --mount --propagation private -- sh -c '
	mount --bind "$0/resolv.conf" /etc/resolv.conf &&
	mount --bind "$0/nsswitch.conf" /etc/nsswitch.conf &&
	exec "$@"' "$dir" "$@"
