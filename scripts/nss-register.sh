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
  --empty-slots N  slots for profiles added while the application runs [16]
  --create         make the database (empty password) if there is none
  --force          register even if the module would have no tokens (its
                   configuration does not load, kmstored does not answer):
                   they come once it loads or kmstored answers

The module first loads with the new parameters in a scratch database:
values it refuses change nothing. A registration that does not come up
as it did there is undone, and the previous one put back.

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
max_keys='' empty_slots='' action=add create=no force=no
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
	--empty-slots) need_value "$@"; empty_slots=$2; shift ;;
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
# Without --config the module reads the application's $KMSTORE_CONF, else
# /etc/kmstore/kmstore.conf; the checks below must load what pluto will,
# not what this shell's $KMSTORE_CONF names.
unset KMSTORE_CONF
case $name in *[\"\'\\[:cntrl:]]*) die "--name '$name': no quotes, backslashes or control characters, please" ;; esac
if [ ! -f "$dbdir/cert9.db" ]; then
	case $action in
	remove) echo "$prog: no NSS database in $dbdir: nothing to remove"; exit 0 ;;
	list) die "no NSS database in $dbdir" ;;
	esac
	[ "$create" = yes ] || die "no NSS database in $dbdir (libreswan: ipsec initnss; or --create)"
	# made once the module has taken the parameters (below): a refusal
	# leaves no empty database behind
	create=now
fi

# Whether the database has a module of that name. -rawlist reads the
# module list without loading the modules: an earlier registration with
# bad parameters would otherwise print its complaints here.
registered() {
	# (not grep -q: modutil killed by SIGPIPE would fail the pipeline)
	modutil -dbdir "$db" -rawlist 2>/dev/null | grep -F " name=\"$name\"" >/dev/null
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
case $module in *[\"[:cntrl:]]*) die "--module '$module': no quotes or control characters, please" ;; esac

# Each value is one word of the module's parameter string: a blank or a
# quote would start another parameter (--log 'stderr config=/x') or change
# how the module reads the rest. What the values mean is the module's to
# judge (below).
plain() { # OPTION VALUE
	case $2 in
	*[[:space:]\"\'\\[:cntrl:]]*)
		die "$1 '$2': no blanks, quotes, backslashes or control characters, please" ;;
	esac
}
[ -z "$config" ] || [ -z "$daemon" ] || die "--config or --daemon, not both"
params=''
if [ -n "$daemon" ]; then
	case $daemon in /*) ;; *) die "--daemon $daemon: the socket must be an absolute path" ;; esac
	plain --daemon "$daemon"
	params="daemon=$daemon"
fi
if [ -n "$config" ]; then
	case $config in /*) ;; *) config=$PWD/$config ;; esac
	plain --config "$config"
	params="config=$config"
fi
plain --log "$log"
[ -z "$level" ] || plain --log-level "$level"
[ -z "$max_keys" ] || plain --max-keys "$max_keys"
[ -z "$empty_slots" ] || plain --empty-slots "$empty_slots"
tail_words="${level:+ log-level=$level}${max_keys:+ max-keys=$max_keys}${empty_slots:+ empty-slots=$empty_slots}"
check_params="log=stderr${params:+ $params}$tail_words log=$log log=stderr"
params="${params:+$params }log=$log$tail_words"

work=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-nss-register.XXXXXX")
restore=no
cleanup() {
	if [ "$restore" = yes ]; then
		restore_previous
		echo "$prog: stopped half-way; $dbdir restored as it was" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# modutil -list for one module: LISTING_FILE gets stdout, ERRORS_FILE
# stderr; then "tokens N" in $tokens and whether it is kmstore's module.
inspect() { # DB NAME LISTING_FILE ERRORS_FILE
	modutil -dbdir "$1" -list "$2" >"$3" 2>"$4" || true
	tokens=$(grep -c '^[[:space:]]*Token Name:' "$3" || true)
	grep -q '^Description: kmstore PPK tokens' "$3"
}

# 1. The module itself judges the parameters, in a scratch database: the
# real one is not touched if it refuses them. The same words, but its
# messages on stderr, here: log=stderr first (a value the module refuses
# stops its parsing, and it then reports with what it has so far), the
# log= given last but one, and log=stderr again for what loading the
# configuration or asking kmstored says.
mkdir "$work/scratch"
quietly certutil -N -d "sql:$work/scratch" --empty-password ||
	die "certutil -N failed for a scratch database in $work (see above)"
if ! quietly modutil -dbdir "sql:$work/scratch" -add kmstore-check -libfile "$module" \
	-string "$check_params" -force; then
	die "$module does not load as a PKCS#11 module (see above); $dbdir unchanged"
fi
if ! inspect "sql:$work/scratch" kmstore-check "$work/check.out" "$work/check.err"; then
	what=$(sed -n 's/^Description: *//p' "$work/check.out" | sed 's/ *$//')
	die "$module is not kmstore's PKCS#11 module (it says: ${what:-nothing}); $dbdir unchanged"
fi
# NSS may initialize a module twice: each message once
complaints=$(grep '^kmstore-pkcs11: error: ' "$work/check.err" | sed 's/^kmstore-pkcs11: error: //' |
	sed 's/; the module has no tokens.*$//' | awk '!seen[$0]++' || true)
awk '!seen[$0]++' "$work/check.err" | grep '^kmstore-pkcs11: warning: ' >&2 || true
if [ -n "$complaints" ]; then
	printf '%s\n' "$complaints" | sed 's/^/  /' >&2
	if grep -q '^module parameters: ' <<<"$complaints"; then
		bad=$(sed -n "s/^module parameters: bad value '\(.*\)' for \([a-z-]*\)$/--\2 \1/p" <<<"$complaints")
		die "the module refuses ${bad:-the parameters \"$params\"} (above); not registered, $dbdir unchanged"
	fi
	[ "$force" = yes ] ||
		die "the module would have no tokens (above); not registered, $dbdir unchanged; --force registers anyway"
	echo "$prog: --force: registering although the module has no tokens (above)" >&2
fi
want_tokens=$tokens

made_dir=no
if [ "$create" = now ]; then
	[ -d "$dbdir" ] || made_dir=yes
	mkdir -p "$dbdir"
	certutil -N -d "$db" --empty-password || die "certutil -N failed for $dbdir (see above)"
fi

# 2. The registration: replaced, then checked where it counts; if the
# module does not come up there as it did in the scratch database, the
# database's module list (pkcs11.txt, what -rawlist shows) goes back to
# what it was.
list=$dbdir/pkcs11.txt
if [ -f "$list" ]; then
	cp -p "$list" "$work/pkcs11.txt"
	restore_previous() { cat "$work/pkcs11.txt" >"$list"; }
else
	restore_previous() { quietly modutil -dbdir "$db" -delete "$name" -force || true; }
fi
before="nothing is registered as '$name'"
if [ "$create" = now ]; then
	# what was there before is no database: none is left behind
	restore_previous() {
		rm -f "$dbdir/cert9.db" "$dbdir/key4.db" "$dbdir/pkcs11.txt"
		[ "$made_dir" = no ] || rmdir "$dbdir" 2>/dev/null || true
	}
	before="the database made for it is removed again"
fi
restore=yes
if registered; then
	before="the previous registration is back"
	if ! quietly modutil -dbdir "$db" -delete "$name" -force; then
		restore_previous
		restore=no
		die "modutil -delete of the registration in $dbdir failed (see above)"
	fi
fi
if ! quietly modutil -dbdir "$db" -add "$name" -libfile "$module" -string "$params" -force; then
	restore_previous
	restore=no
	die "modutil -add failed (see above); $before"
fi
if ! inspect "$db" "$name" "$work/real.out" "$work/real.err" || [ "$tokens" -lt "$want_tokens" ]; then
	restore_previous
	restore=no
	awk '!seen[$0]++' "$work/real.err" >&2
	die "in $dbdir the module has $tokens token(s), not $want_tokens as with the same parameters in a scratch database; $before"
fi
restore=no
cat "$work/real.out"
if [ "$tokens" -eq 0 ] && [ -z "$complaints" ]; then
	echo "$prog: the module has no tokens: no profiles in its configuration?" >&2
fi
echo "$prog: registered in $dbdir; restart the applications that use it (ipsec restart)"
