#!/usr/bin/env bash
# install.sh - the packages as a user meets them, on throw-away machines
# (tests/lib/machine.sh: overlays on this host's /etc /usr /var /root, in a
# private mount and PID namespace, so nothing reaches the host):
#
#   1. two gateways, west and east, install the packages with the command of
#      docs/guide.md 3.1 (apt-get install ./...deb); a third machine, the
#      KMEs, installs kme-sim only; the files are where the guide says
#   2. the guide's deployment, run as written: every runnable block of
#      docs/guide.md (```sh west, ```ini gateways > FILE, ...: see
#      docs/architecture.md) in order, on the machines it names, joined by
#      network namespaces on 192.0.2.0/24 (tests/lib/ike-lab.sh), with
#      pluto started from its installed unit (tests/packages/shim/systemctl:
#      no systemd here) and default paths everywhere; the test only plays
#      the parts the guide leaves to people: scp of the static key, the
#      QKD vendor (a CA signing the SAEs' requests) and the KMEs (kme-sim at
#      192.0.2.10 and 192.0.2.20)
#   3. the demo's scenario on top: a static and a QKD IKE SA with ppk=insist,
#      the PPK_IDs in both plutos' logs, the static key's check value equal
#      through kmstore and through openssl storeutl on both gateways (the
#      provider where OpenSSL looks), each KME refusing the QKD key a second
#      time, no key in any log
#   4. the guide's section 9: the kmstored package installed, its unit
#      started as _kmstore (Type=notify), kmstore --daemon served by it, the
#      module moved to it and a QKD IKE SA through it
#   5. the guide's uninstall section, then nothing left on any machine but
#      what Debian policy allows (dpkg's and apt's own state, logs, caches,
#      the system user)
#
# Usage: install.sh DEBS_DIR SOURCE_DIR WORK_DIR   (as root; 77 otherwise)
# KEEP=1 keeps WORK_DIR (the machines' upper directories, logs).
set -uo pipefail

DEBS=${1:?usage: install.sh DEBS_DIR SOURCE_DIR WORK_DIR}
SRC=${2:?usage: install.sh DEBS_DIR SOURCE_DIR WORK_DIR}
W=${3:?usage: install.sh DEBS_DIR SOURCE_DIR WORK_DIR}
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root (namespaces, mounts)"; exit 77; }

# shellcheck source=../lib/machine.sh
. "$SRC/tests/lib/machine.sh"
machine_isolate "$0" "$@"

# shellcheck source=../lib/tap.sh
. "$SRC/tests/lib/tap.sh"
# shellcheck source=../lib/ike-lab.sh
. "$SRC/tests/lib/ike-lab.sh"

DEBS=$(cd "$DEBS" && pwd) SRC=$(cd "$SRC" && pwd)
mkdir -p "$W" && W=$(cd "$W" && pwd)
case $W in
/etc/* | /usr/* | /var/* | /root/*)
	# a machine's upper directories cannot lie inside what it overlays
	echo "# $W is inside a directory the machines overlay: working in /run/kmstore-packages (this run's own tmpfs; KEEP=1 keeps nothing)"
	W=/run/kmstore-packages ;;
esac
rm -rf "$W"
mkdir -p "$W/log"
GATEWAY_PKGS=(libkmstore0 kmstore kmstore-pkcs11 kmstore-openssl libreswan kmstored)
ARCH_LIB=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

finish() {
	machine_stop_all
	ike_lab_down
	[ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap finish EXIT

for p in "${GATEWAY_PKGS[@]}" kme-sim; do
	ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || { tap_not_ok "package $p in $DEBS" "run scripts/build-debs.sh $DEBS"; tap_done; exit 1; }
done

printf 'APT::Get::Assume-Yes "true";\nDpkg::Use-Pty "false";\n' >"$W/apt.conf"
# machine.sh's settings: apt-get as a script needs -y; systemctl and
# journalctl are stand-ins (no systemd here)
# shellcheck disable=SC2034
MACHINE_ENV="APT_CONFIG=$W/apt.conf DEBIAN_FRONTEND=noninteractive SHIM_PLUTO_IMPAIR=1"
# shellcheck disable=SC2034 # what the machines read from the host
MACHINE_SHARE="$W $DEBS $SRC"
# shellcheck disable=SC2034
MACHINE_BIND="$SRC/tests/packages/shim/systemctl:/usr/bin/systemctl $SRC/tests/packages/shim/journalctl:/usr/bin/journalctl"
for m in west east kme; do
	machine_start $m "$W/$m" || { tap_not_ok "machine $m starts"; tap_done; exit 1; }
done

# --- the guide's runnable blocks ----------------------------------------------

python3 "$SRC/tests/packages/guide_blocks.py" "$SRC/docs/guide.md" "$W/guide" ||
	{ tap_not_ok "docs/guide.md's runnable blocks parse"; tap_done; exit 1; }
mapfile -t BLOCKS < <(ls "$W/guide"/*.meta)
CUR=0

# block_on MACHINE OP PATH BODY LOG: one block on one machine, from the
# directory holding the packages (3.1 installs from there)
block_on() {
	case $2 in
	run) machine "$1" bash -c 'cd "$1" && exec bash -e "$2"' bash "$DEBS" "$4" ;;
	write) machine "$1" sh -c 'cat >"$1"' sh "$3" <"$4" ;;
	append) machine "$1" sh -c '[ ! -s "$1" ] || echo >>"$1"; cat >>"$1"' sh "$3" <"$4" ;;
	esac >"$5" 2>&1
}

# guide_until REGEX: runs the blocks from where the last call stopped up to
# the first one whose text matches REGEX; 1 when a block fails or none
# matches.
guide_until() {
	local meta body line target op path ms m rc pids what
	while [ $CUR -lt ${#BLOCKS[@]} ]; do
		meta=${BLOCKS[$CUR]} body=${BLOCKS[$CUR]%.meta}.body
		CUR=$((CUR + 1))
		read -r line target op path <"$meta"
		case $target in gateways) ms=(west east) ;; *) ms=("$target") ;; esac
		pids=()
		for m in "${ms[@]}"; do # gateways at the same time, like two admins
			block_on "$m" "$op" "$path" "$body" "$W/log/guide-$line-$m.log" &
			pids+=($!)
		done
		rc=0
		for i in "${!ms[@]}"; do
			what="guide.md:$line on ${ms[$i]}: $([ "$op" = run ] && head -n 1 "$body" || echo "$op $path")"
			if wait "${pids[$i]}"; then
				tap_ok "$what"
			else
				rc=1
				tap_not_ok "$what" "$(tail -n 15 "$W/log/guide-$line-${ms[$i]}.log")"
			fi
		done
		[ $rc -eq 0 ] || return 1
		grep -qE -- "$1" "$body" && return 0
	done
	tap_not_ok "a runnable block of docs/guide.md matches /$1/ (after block $CUR)"
	return 1
}

stop_here() { tap_done; exit 1; }

# --- 1. install -----------------------------------------------------------------

guide_until 'apt-get install ./libkmstore0' || stop_here
guide_until 'apt-get install ./kme-sim' || stop_here

on_gw() { # what cmd...: ok if CMD succeeds on both gateways
	local what=$1 m out
	shift
	for m in west east; do
		if out=$(machine $m "$@" 2>&1); then tap_ok "$m: $what"; else tap_not_ok "$m: $what" "$out"; fi
	done
}
on_gw "pluto is /usr/libexec/ipsec/pluto, ipsec is /usr/sbin/ipsec, libreswan 5.2 with ppk-uri=" \
	sh -c 'test -x /usr/libexec/ipsec/pluto && [ "$(command -v ipsec)" = /usr/sbin/ipsec ] &&
		ipsec --version | grep -q "Libreswan 5.2" && zcat /usr/share/man/man5/ipsec.conf.5.gz | grep -q "^.fBppk.-uri"'
on_gw "the module is $ARCH_LIB/pkcs11/kmstore-pkcs11.so, named by p11-kit's module file" \
	sh -c "test -f $ARCH_LIB/pkcs11/kmstore-pkcs11.so && grep -qx 'module: $ARCH_LIB/pkcs11/kmstore-pkcs11.so' /usr/share/p11-kit/modules/kmstore.module"
on_gw "/etc/kmstore is 700 and kmstore.conf 600, both root's; a conffile" \
	sh -c '[ "$(stat -c %a:%U /etc/kmstore)" = 700:root ] && [ "$(stat -c %a:%U /etc/kmstore/kmstore.conf)" = 600:root ] &&
		dpkg-query -W -f="\${Conffiles}\n" kmstore | grep -q " /etc/kmstore/kmstore.conf "'
on_gw "openssl loads the provider and the engine by name, from OpenSSL's own directories" \
	sh -c 'openssl list -providers -provider kmstore | grep -q "name: kmstore" &&
		openssl engine kmstore | grep -q kmstore'
on_gw "man pages: kmstore(1), kmstore.conf(5), kmstore-pkcs11(8), kmstore-nss-register(8), kmstore-provider(7)" \
	sh -c 'for p in 1:kmstore 5:kmstore.conf 8:kmstore-pkcs11 8:kmstore-nss-register 7:kmstore-provider; do
		man -w "${p%%:*}" "${p#*:}" >/dev/null || exit 1; done'
# The guides name each other by file: each one an installed guide links is
# beside it (kme-sim.md is the lab package's own).
on_gw "every guide the installed guides link is in /usr/share/doc/kmstore" \
	sh -c 'cd /usr/share/doc/kmstore && n=0 && for f in $(zcat -f ./*.md* | grep -o "\](\([a-z0-9-]*\.md\)" | sed "s/^](//" | sort -u); do
		[ "$f" = kme-sim.md ] && continue; n=$((n + 1)); [ -e "$f" ] || [ -e "$f.gz" ] || { echo "missing $f"; exit 1; }; done; [ "$n" -ge 4 ]'
on_gw "no kme-sim on a gateway" sh -c '! command -v kme-sim && ! command -v kme-sim-pki && ! dpkg -s kme-sim 2>/dev/null'
on_gw "the ipsec service is not enabled by the installation" sh -c '! systemctl is-enabled ipsec'
if out=$(machine kme sh -c 'command -v kme-sim && command -v kme-sim-pki && man -w kme-sim >/dev/null && ! dpkg -s kmstore 2>/dev/null' 2>&1); then
	tap_ok "kme: kme-sim and kme-sim-pki, and nothing of the gateways'"
else
	tap_not_ok "kme: kme-sim and kme-sim-pki, and nothing of the gateways'" "$out"
fi

# --- 2. the network: west 192.0.2.1, east 192.0.2.2, the KMEs .10 and .20 ---

ike_lab_init "$ARCH_LIB/pkcs11/kmstore-pkcs11.so" /usr/bin/kme-sim /usr/bin/kme-sim-pki "$W/lab"
if ! ike_lab_up || ! ip -n "$IKE_LAB_NS_L" addr add 192.0.2.10/24 dev br0 ||
	! ip -n "$IKE_LAB_NS_L" addr add 192.0.2.20/24 dev br0; then
	tap_not_ok "network namespaces"
	stop_here
fi
machine_net west "$IKE_LAB_NS_W"
machine_net east "$IKE_LAB_NS_E"
machine_net kme "$IKE_LAB_NS_L"

# --- 3. static PPK (guide section 4) ----------------------------------------------

guide_until 'head -c 32 /dev/urandom' || stop_here
# 4.2's scp, which the guide leaves to the reader
machine_copy west /etc/kmstore/west-east.key east /etc/kmstore/west-east.key ||
	{ tap_not_ok "the static key copied to east"; stop_here; }
guide_until 'ipsec up west-east' || stop_here

journal() { machine "$1" journalctl -u ipsec; }
expect_in "ppk-uri=pkcs11:token=west-east-static: using PPK_ID PPK_ID_1" "$(journal west)" "west: pluto took PPK_ID_1 from the static token"
expect_in "PPK AUTH calculated as initiator" "$(journal west)" "west: PPK AUTH calculated as initiator"
expect_in "ppk-uri=pkcs11:token=west-east-static: using received PPK_ID PPK_ID_1" "$(journal east)" "east: pluto found the received PPK_ID_1 in the static token"
expect_in "PPK AUTH calculated as responder" "$(journal east)" "east: PPK AUTH calculated as responder"
# the guide's section 6: what pluto and its NSS database show
for m in west east; do
	expect_in "ppk-uri: pkcs11:token=west-east-static;" "$(machine $m ipsec status 2>&1)" "$m: ipsec status shows the connection's ppk-uri"
	expect_in "token: west-east-static" "$(machine $m certutil -U -d sql:/var/lib/ipsec/nss 2>&1)" "$m: certutil -U lists the static profile's token"
done

# the key on both gateways, by kmstore and by openssl through the provider
declare -A kcv ossl
for m in west east; do
	kcv[$m]=$(machine $m kmstore key west-east-static | awk '$1 == "check-value" { print $2 }')
	out=$(machine $m openssl storeutl -provider kmstore -provider default -text \
		'kmstore:profile=west-east-static;key-id=PPK_ID_1' 2>&1)
	ossl[$m]=$(awk '$1 == "check-value:" { print $2 }' <<<"$out")
	expect_in "Total found: 1" "$out" "$m: openssl storeutl -provider kmstore loads the static key (no -provider-path)"
done
if [ -n "${kcv[west]}" ] && [ "${kcv[west]}" = "${kcv[east]}" ] && [ "${ossl[west]}" = "${kcv[west]}" ] &&
	[ "${ossl[east]}" = "${kcv[east]}" ]; then
	tap_ok "the static key's check value is ${kcv[west]} on both gateways, through kmstore and openssl"
else
	tap_not_ok "the static key's check value is the same everywhere" \
		"kmstore: west ${kcv[west]} east ${kcv[east]}; openssl: west ${ossl[west]} east ${ossl[east]}"
fi

# --- 4. QKD PPKs (guide section 5) --------------------------------------------------

# The QKD network: a CA (the vendor's) and two KMEs on kme-sim.
if ! machine kme kme-sim-pki /root/pki --ip 192.0.2.10 --ip 192.0.2.20 >"$W/log/pki.log" 2>&1; then
	tap_not_ok "kme: kme-sim-pki" "$(cat "$W/log/pki.log")"
	stop_here
fi
machine kme kme-sim --ca /root/pki/ca.crt \
	--kme id=KME_A,listen=192.0.2.10:8443,cert=/root/pki/kme-a.crt,key=/root/pki/kme-a.key,sae=SAE_A \
	--kme id=KME_B,listen=192.0.2.20:8443,cert=/root/pki/kme-b.crt,key=/root/pki/kme-b.key,sae=SAE_B \
	--ready-file /run/kme-sim.ready >"$W/log/kme-sim.out" 2>"$W/log/kme-sim.log" &
KME_PID=$!
for i in $(seq 100); do
	machine kme test -s /run/kme-sim.ready && break
	kill -0 $KME_PID 2>/dev/null || break
	sleep 0.1
done
machine kme test -s /run/kme-sim.ready || { tap_not_ok "kme: kme-sim started" "$(tail -n 5 "$W/log/kme-sim.log")"; stop_here; }

guide_until 'sae-b.csr' || stop_here
# the vendor signs each SAE's request (CN = SAE ID, clientAuth) with the CA
# the KMEs trust, and hands out the CA of the KMEs' certificates
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$W/sae.ext"
for s in west:sae-a east:sae-b; do
	m=${s%%:*} f=${s#*:}
	if machine_copy "$m" "/etc/kmstore/$f.csr" kme "/root/$f.csr" &&
		machine kme openssl x509 -req -in "/root/$f.csr" -CA /root/pki/ca.crt -CAkey /root/pki/ca.key \
			-CAcreateserial -days 30 -sha256 -extfile "$W/sae.ext" -out "/root/$f.crt" >"$W/log/sign-$f.log" 2>&1 &&
		machine_copy kme "/root/$f.crt" "$m" "/etc/kmstore/$f.crt" &&
		machine_copy kme /root/pki/ca.crt "$m" /etc/kmstore/kme-ca.crt; then
		tap_ok "$m: $f.crt signed by the QKD network's CA, kme-ca.crt in /etc/kmstore"
	else
		tap_not_ok "$m: $f.crt signed by the QKD network's CA" "$(cat "$W/log/sign-$f.log" 2>/dev/null)"
		stop_here
	fi
done
guide_until 'ipsec up west-east' || stop_here

qkd_id() { # MACHINE: the last QKD PPK_ID in its pluto log
	journal "$1" | sed -n 's/.*ppk-uri=pkcs11:token=west-east-qkd: using\( received\)\{0,1\} PPK_ID \([^ ]*\).*/\2/p' | tail -n 1
}
west_id=$(qkd_id west) east_id=$(qkd_id east)
if [ -n "$west_id" ] && [ "$west_id" = "$east_id" ]; then
	tap_ok "both plutos used the QKD key $west_id"
else
	tap_not_ok "both plutos used the same QKD key" "west: '$west_id' east: '$east_id'"
fi
n=$(journal west | grep -c 'PPK AUTH calculated as initiator')
expect_eq 2 "$n" "west: PPK AUTH calculated as initiator for the static and the QKD IKE SA"
n=$(journal east | grep -c 'PPK AUTH calculated as responder')
expect_eq 2 "$n" "east: PPK AUTH calculated as responder for both"
line=$(grep -F "KME_B dec_keys for SAE_A: key_IDs [\"$west_id\"]" "$W/log/kme-sim.log" | head -n 1)
expect_in "$west_id" "$line" "kme-sim: KME_B delivered $west_id, a key of SAE_A, by dec_keys"

# each KME delivers a key once: neither gives it again
run machine east kmstore key west-east-qkd --key-id "$west_id"
expect_rc 5 "east: KME_B refuses the QKD key a second time (kmstore, exit 5)"
out=$(machine west openssl storeutl -provider kmstore -provider default -text \
	"kmstore:profile=west-east-qkd;key-id=$west_id" 2>&1)
expect_in "Total found: 0" "$out" "west: KME_A does not give the key out again (openssl storeutl)"

# no key in any log: the static key, in every form scan_secrets knows
mkdir -p "$W/secrets" "$W/logs-scanned"
machine west od -An -v -tx1 /etc/kmstore/west-east.key | tr -d ' \n' >"$W/secrets/static"
for m in west east; do journal $m >"$W/logs-scanned/pluto-$m.log"; done
cp "$W/log/kme-sim.log" "$W/logs-scanned/"
if out=$(python3 "$SRC/tests/hygiene/scan_secrets.py" "$W/secrets" "$W/logs-scanned" "$W/log" 2>&1); then
	tap_ok "no key in pluto's logs, kme-sim's log or any command's output"
else
	tap_not_ok "no key in the logs" "$(grep LEAK <<<"$out")"
fi

# --- 5. kmstored (guide section 9) ---------------------------------------------------

guide_until 'Wants=kmstored.service' || stop_here
gw_kmstored_pid() { machine "$1" cat /run/shim-systemd/kmstored.service.pid; }
on_gw "kmstored: the package's unit, its sysusers file and the user _kmstore, kmstored(8)" \
	sh -c 'dpkg -L kmstored | grep -qx /lib/systemd/system/kmstored.service &&
		dpkg -L kmstored | grep -qx /usr/lib/sysusers.d/kmstored.conf && man -w 8 kmstored >/dev/null &&
		getent passwd _kmstore >/dev/null'
for m in west east; do
	pid=$(gw_kmstored_pid $m)
	expect_eq "_kmstore _kmstore 600" "$(machine $m stat -c '%U' "/proc/$pid" 2>&1) $(machine $m stat -c '%U %a' /etc/kmstore/kmstore.conf 2>&1)" \
		"$m: kmstored runs as _kmstore, which owns kmstore.conf"
	expect_eq "srw-rw-rw-" "$(machine $m stat -c %A /run/kmstore/kmstored.sock 2>&1)" "$m: its socket in /run/kmstore (RuntimeDirectory)"
	out=$(machine $m kmstore --daemon /run/kmstore/kmstored.sock key west-east-static 2>&1)
	expect_eq "${kcv[$m]}" "$(awk '$1 == "check-value" { print $2 }' <<<"$out")" \
		"$m: kmstore --daemon: the static key from the installed kmstored, the same check value"
	expect_in "daemon=/run/kmstore/kmstored.sock" "$(machine $m modutil -dbdir sql:/var/lib/ipsec/nss -rawlist 2>&1)" \
		"$m: the module in pluto's NSS database asks kmstored"
done
run machine west ipsec up west-east
expect_rc 0 "west: ipsec up west-east with both plutos' module on kmstored"
daemon_id=$(qkd_id west)
if [ -n "$daemon_id" ] && [ "$daemon_id" != "$west_id" ] && [ "$daemon_id" = "$(qkd_id east)" ]; then
	tap_ok "both plutos used a new QKD key, $daemon_id, through kmstored"
else
	tap_not_ok "a new QKD key through kmstored" "west: '$daemon_id' (before: '$west_id') east: '$(qkd_id east)'"
fi
expect_match 'kmstore_keys_served_total\{profile="west-east-qkd",kind="new"[^}]*\} 1' \
	"$(machine west kmstore --daemon /run/kmstore/kmstored.sock metrics 2>&1)" "west: kmstored counts the key it served pluto"

# --- purging kmstore-pkcs11 takes its module out of libreswan's NSS database --------
# (its prerm, under whatever name the module was registered; NSS loads a
# library once per database, so west's registration is renamed first. The
# guide's uninstall runs kmstore-nss-register --remove before the purge, so
# this is tried on west alone, which is then put back as the guide left it)

run machine west sh -c 'kmstore-nss-register --remove &&
	kmstore-nss-register --name kmstore-extra --daemon /run/kmstore/kmstored.sock'
expect_rc 0 "west: the module registered as kmstore-extra instead"
run machine west apt-get purge kmstore-pkcs11
expect_rc 0 "west: apt-get purge kmstore-pkcs11"
expect_in "kmstore-pkcs11: removed the module 'kmstore-extra' from /var/lib/ipsec/nss" "$RUN_OUT" \
	"west: ... says it took kmstore-extra out of /var/lib/ipsec/nss"
raw=$(machine west modutil -dbdir sql:/var/lib/ipsec/nss -rawlist 2>&1)
expect_not_in "kmstore-pkcs11.so" "$raw" "west: ... and no module in that database is kmstore-pkcs11.so any more"
run machine west bash -c 'cd "$1" && apt-get install ./kmstore-pkcs11_*.deb &&
	kmstore-nss-register --daemon /run/kmstore/kmstored.sock' bash "$DEBS"
expect_rc 0 "west: kmstore-pkcs11 installed and registered again, as the guide left it"

# --- 6. uninstall (guide section 10), then what is left ----------------------------

guide_until 'apt-get autoremove --purge' || stop_here
if [ $CUR -eq ${#BLOCKS[@]} ]; then
	tap_ok "every runnable block of docs/guide.md ran (${#BLOCKS[@]})"
else
	tap_not_ok "every runnable block of docs/guide.md ran" "$((${#BLOCKS[@]} - CUR)) left after the uninstall"
fi

kill $KME_PID 2>/dev/null
wait $KME_PID 2>/dev/null
machine kme rm -rf /root/pki /root/sae-a.csr /root/sae-b.csr /root/sae-a.crt /root/sae-b.crt
run machine kme sh -c 'apt-get purge kme-sim && apt-get autoremove --purge'
expect_rc 0 "kme: apt-get purge kme-sim"

# Debian policy: a purge leaves nothing of the package; dpkg's and apt's
# databases, logs and caches, and the linker cache, are theirs to keep.
# Files of packages still installed at the end are no leftovers (apt's
# autoremove keeps a dependency another package recommends, e.g.
# nftables, which the host's iptables recommends), and autoremove may take
# away what was already autoremovable on the host.
# System users stay after a purge, as Debian's own packages leave theirs
# (kmstored's _kmstore): the user databases (and their lock) may change.
allowed='^[fldw] /(var/lib/dpkg/|var/lib/apt/|var/cache/(apt|debconf|ldconfig|man)/|var/log/(apt/|dpkg\.log$|alternatives\.log$)|etc/ld\.so\.cache$|etc/(passwd|group|shadow|gshadow)-?$|etc/\.pwd\.lock$)'
host_orphans=$(apt-get -s autoremove 2>/dev/null | awk '$1 == "Remv" { print $2 }')
host_pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" { print $2 }' | sort)
for m in west east kme; do
	changes=$(machine_changes $m | grep -vE "$allowed")
	# dpkg -S: "pkg1, pkg2: /path" for every path a package owns; dpkg
	# knows /lib/x as /lib/x and the merged /usr/lib/x as /usr/lib/x
	owned=$(awk '$1 != "w" { print $2 }' <<<"$changes" | sed -n 'p; s:^/usr/\(lib\|bin\|sbin\)/:/\1/:p' |
		machine $m sh -c 'xargs -r dpkg -S 2>/dev/null' | sed 's|^[^/]*: /|/|' | sort -u)
	removed=$(awk '$1 == "w" { print $2 }' <<<"$changes" | xargs -r dpkg -S 2>/dev/null |
		sed 's/: .*//; s/, /\n/g' | sed 's/:[a-z0-9]*$//' | sort -u)
	# deb-systemd-helper's state is a unit's, for as long as the unit is installed
	left=$(awk '$1 != "w"' <<<"$changes" | while read -r t p; do
		grep -qxF -e "$p" -e "${p#/usr}" <<<"$owned" && continue
		case $p in /var/lib/systemd/deb-systemd-helper-*)
			u=$(basename "$p" .dsh-also)
			machine $m sh -c 'test -e "/lib/systemd/system/$1" || test -e "/usr/lib/systemd/system/$1"' sh "$u" && continue ;;
		esac
		echo "$t $p"
	done)
	bad_removed=$(comm -23 <(echo "$removed") <(echo "$host_orphans" | sort) | sed '/^$/d')
	expect_eq "" "$left" "$m: nothing left after the uninstall but what Debian policy allows"
	expect_eq "" "$bad_removed" "$m: the uninstall removed no package the host needs"
	kept=$(comm -13 <(echo "$host_pkgs") <(machine $m dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null |
		awk '$1 == "ii" { print $2 }' | sort) | tr '\n' ' ')
	[ -z "$kept" ] || echo "# $m: installed for the packages and kept by apt-get autoremove: $kept"
	left=$(machine $m dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 != "ii" && $1 != "un"')
	host=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 != "ii" && $1 != "un"')
	expect_eq "$host" "$left" "$m: no package left half-installed or with its configuration files"
done

tap_done
