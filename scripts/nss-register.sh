#!/usr/bin/env bash
# nss-register.sh (installed as kmstore-nss-register) - adds the kmstore
# PKCS#11 module to an NSS database, by default libreswan's, so that
# pkcs11:token=PROFILE URIs name kmstore keys. See docs/pkcs11.md.
set -euo pipefail

prog=$(basename "$0")
usage() {
	cat <<EOF
Usage: $prog [options]            register (or re-register) the module
       $prog --remove [options]   remove it
       $prog --list [options]     show it and its tokens

  --dbdir DIR      NSS database directory [/var/lib/ipsec/nss, libreswan's]
  --name NAME      module name in the database [kmstore]
  --module PATH    kmstore-pkcs11.so [the installed one]
  --config FILE    kmstore.conf the module reads [the module's default:
                   \$KMSTORE_CONF of the application, else
                   /etc/kmstore/kmstore.conf]
  --daemon SOCKET  the tokens are kmstored's profiles (not with --config);
                   e.g. /run/kmstore/kmstored.sock
  --log WHERE      auto, syslog, stderr or none [auto: stderr while it
                   leads somewhere, else syslog]
  --log-level L    error, warning or info [warning]
  --max-keys N     keys held per token [64]
  --create         make the database (empty password) if there is none
  --force          register even if the configuration does not check out

Applications read the database when they start: restart pluto
(ipsec restart) after a change.
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
usage_error() { echo "$prog: $*; see $prog --help" >&2; exit 2; }

# A missing value would otherwise take the next option as the value, or
# stop set -u with "$2: unbound variable".
need_value() { # "$@" at an option that takes a value
	case ${2-} in '' | --*) usage_error "$1 needs a value" ;; esac
}

dbdir=/var/lib/ipsec/nss name=kmstore module='' config='' daemon='' log=auto level=''
max_keys='' action=add create=no force=no
while [ $# -gt 0 ]; do
	case $1 in
	--dbdir) need_value "$@"; dbdir=$2; shift ;;
	--name) need_value "$@"; name=$2; shift ;;
	--module) need_value "$@"; module=$2; shift ;;
	--config) need_value "$@"; config=$2; shift ;;
	--daemon) need_value "$@"; daemon=$2; shift ;;
	--log) need_value "$@"; log=$2; shift ;;
	--log-level) need_value "$@"; level=$2; shift ;;
	--max-keys) need_value "$@"; max_keys=$2; shift ;;
	--create) create=yes ;;
	--force) force=yes ;;
	--remove) action=remove ;;
	--list) action=list ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

command -v modutil >/dev/null || die "modutil not found (Debian: libnss3-tools)"

# The installed module: next to this script's prefix, else the usual
# PKCS#11 module directories.
find_module() {
	local here d
	here=$(cd "$(dirname "$0")" && pwd)
	for d in "$here"/../lib*/pkcs11 "$here"/../lib/*/pkcs11 \
		/usr/lib/*/pkcs11 /usr/lib64/pkcs11 /usr/lib/pkcs11 \
		/usr/local/lib/pkcs11 /usr/local/lib/*/pkcs11; do
		if [ -f "$d/kmstore-pkcs11.so" ]; then
			(cd "$d" && echo "$PWD/kmstore-pkcs11.so")
			return
		fi
	done
}

db=sql:$dbdir
if [ ! -f "$dbdir/cert9.db" ]; then
	case $action in
	remove) echo "$prog: no NSS database in $dbdir: nothing to remove"; exit 0 ;;
	list) die "no NSS database in $dbdir" ;;
	esac
	[ "$create" = yes ] || die "no NSS database in $dbdir (libreswan: ipsec initnss; or --create)"
	mkdir -p "$dbdir"
	certutil -N -d "$db" --empty-password
fi

# Whether the database has a module of that name. -rawlist reads the
# module list without loading the modules: an earlier registration with
# bad parameters would otherwise print its complaints here.
registered() {
	modutil -dbdir "$db" -rawlist 2>/dev/null | grep -qF " name=\"$name\""
}

# modutil -add and -delete load every module in the database; what a
# module says then (e.g. the registration being replaced) is noise unless
# modutil fails.
quietly() { # COMMAND...: its stderr only if it fails
	local err rc=0
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	[ $rc -eq 0 ] || printf '%s\n' "$err" >&2
	return $rc
}

case $action in
list)
	modutil -dbdir "$db" -list "$name"
	exit
	;;
remove)
	if ! registered; then
		echo "$prog: no module '$name' in $dbdir: nothing to remove"
		exit 0
	fi
	quietly modutil -dbdir "$db" -delete "$name" -force ||
		die "modutil -delete failed (see above)"
	echo "$prog: removed '$name' from $dbdir; restart the applications that use it (ipsec restart)"
	exit
	;;
esac

[ -n "$module" ] || module=$(find_module)
[ -n "$module" ] || die "kmstore-pkcs11.so not found; give --module PATH"
[ -f "$module" ] || die "$module: no such file"
case $module in /*) ;; *) module=$PWD/$module ;; esac

params="log=$log"
[ -z "$config" ] || [ -z "$daemon" ] || die "--config or --daemon, not both"
if [ -n "$daemon" ]; then
	case $daemon in /*) ;; *) die "$daemon: the socket must be an absolute path" ;; esac
	case $daemon in *[[:space:]\"]*) die "$daemon: a path without blanks or quotes, please" ;; esac
	params="daemon=$daemon $params"
	if command -v kmstore >/dev/null && ! kmstore --daemon "$daemon" profiles; then
		[ "$force" = yes ] || die "kmstored at $daemon does not answer (see above); --force registers anyway"
	fi
fi
if [ -n "$config" ]; then
	case $config in /*) ;; *) config=$PWD/$config ;; esac
	case $config in *[[:space:]\"]*) die "$config: a path without blanks or quotes, please" ;; esac
	params="config=$config $params"
	if command -v kmstore >/dev/null && ! kmstore --config "$config" profiles; then
		[ "$force" = yes ] || die "$config does not load (see above); --force registers anyway"
	fi
fi
[ -z "$level" ] || params="$params log-level=$level"
[ -z "$max_keys" ] || params="$params max-keys=$max_keys"

if registered; then
	quietly modutil -dbdir "$db" -delete "$name" -force || die "modutil -delete failed (see above)"
fi
modutil -dbdir "$db" -add "$name" -libfile "$module" -string "$params" -force
modutil -dbdir "$db" -list "$name"
echo "$prog: registered in $dbdir; restart the applications that use it (ipsec restart)"
