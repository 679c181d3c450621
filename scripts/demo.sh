#!/usr/bin/env bash
# The main command: a live demonstration of kmstore with libreswan, as root
# on Debian 12, in a few minutes.
#
# It installs what it needs (apt-get), builds kmstore (cmake) and a libreswan
# 5.4 pluto with the ppk-uri= patch series, then runs two sites, west and
# east, in network namespaces (192.0.2.0/24), each with its own KME (kme-sim,
# ETSI GS QKD 014 over mutual TLS; the two KMEs share a simulated QKD link).
# The two plutos bring up a quantum-safe IKE SA: ppk=insist with a PPK that
# west's pluto gets from its KME through NSS and the kmstore PKCS#11 module,
# and that east's pluto gets from its own KME by the key ID west sent. Then
# the keys are inspected with kmstore and openssl storeutl, and everything
# is torn down. Each step says what it does.
#
# Usage: bash scripts/demo.sh [BUILD_DIR]   (default: build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${1:-build/release}
case $build in /*) ;; *) build=$top/$build ;; esac

bold='' plain=''
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true) plain=$(tput sgr0 2>/dev/null || true); fi
n=0
step() { n=$((n + 1)); printf '\n%s== %d. %s%s\n' "$bold" $n "$1" "$plain"; [ $# -lt 2 ] || printf '%s\n' "$2" | fold -s -w 78; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
# on SIDE CMD...: CMD in SIDE's namespace, shown as "SIDE# CMD" with the
# build and lab directories abbreviated as $BUILD and $LAB
on() {
	local side=$1 a line=''
	shift
	for a in "$@"; do
		[[ $a =~ ^[A-Za-z0-9_./=:@%+-]+$ ]] || a="'$a'"
		line+="$a "
	done
	line=${line//$build/\$BUILD}
	printf '%s# %s\n' "$side" "${line//$IKE_LAB_DIR/\$LAB}"
	ike_lab_exec "$side" "$@"
}

[ "$(id -u)" -eq 0 ] || die "run it as root (apt-get, network namespaces)"

step "Dependencies" "Debian packages for kmstore, NSS tools, iproute2; libreswan's build dependencies come with its build (step 3)."
bash scripts/deps.sh
if ! command -v ip >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi
echo "ok"

step "Build kmstore" "Library and command, PKCS#11 module, OpenSSL provider, kme-sim (cmake, in $build)."
mkdir -p "$build"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	cmake --build "$build" -j "$(nproc)"; } >"$build/demo-build.log" 2>&1; then
	tail -n 30 "$build/demo-build.log" >&2
	die "the build failed; see $build/demo-build.log"
fi
kmstore=$build/kmstore/kmstore
module=$build/provider/pkcs11/kmstore-pkcs11.so
provider_dir=$build/provider/openssl
echo "ok: $kmstore, $module, $provider_dir/kmstore.so"

step "Build libreswan 5.4 with the ppk-uri= series" "libreswan-patches/build.sh: upstream's 5.4 tarball (sha256 checked), the patches of libreswan-patches/5.4/series, a minimal pluto linked at $build/libreswan/prefix (about 2 minutes the first time, nothing to do after: builds are cached in /var/cache/kmstore/libreswan)."
libreswan-patches/build.sh --deps --libreswan 5.4 "$build/libreswan"
pluto_prefix=$build/libreswan/prefix

# shellcheck source=../tests/lib/ike-lab.sh
. tests/lib/ike-lab.sh
ike_lab_init "$module" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki
trap ike_lab_down EXIT

step "Two sites and two KMEs" "Network namespaces: west (192.0.2.1) and east (192.0.2.2), joined through a bridge in a third one, 'the network', where kme-sim serves KME_A for west (SAE_A) and KME_B for east (SAE_B), with a test PKI made now."
ike_lab_up || die "cannot make network namespaces"
ike_lab_kmes_start || die "kme-sim did not start"
echo "namespaces: west $IKE_LAB_NS_W, east $IKE_LAB_NS_E, network $IKE_LAB_NS_L"
echo "KMEs: KME_A $KME_A_URL, KME_B $KME_B_URL"
echo "west's kmstore.conf ($IKE_LAB_DIR/kme/west.conf):"
sed -n '/^\[/,$p' "$IKE_LAB_DIR/kme/west.conf" | sed 's/^/    /'

step "Two plutos with ppk-uri=" "Each site's NSS database holds the kmstore PKCS#11 module: each profile is a token. Conn west-east takes its PPK from the QKD token, conn static from the static one; ppk=insist: no IKE SA without the PPK."
STATIC_CONN() { # SIDE
	local me=west peer=east ma=192.0.2.1 pa=192.0.2.2
	[ "$1" = west ] || { me=east peer=west ma=192.0.2.2 pa=192.0.2.1; }
	printf 'conn static\n\tleft=%s\n\tleftid=@%s-static\n\tright=%s\n\trightid=@%s-static\n' $ma $me $pa $peer
	printf '\tauthby=secret\n\tkeyexchange=ikev2\n\tppk=insist\n\tppk-uri=pkcs11:token=static\n'
}
psk2='@west-static @east-static : PSK "demo pre-shared key 2, not the PPK"'
for side in west east; do
	ike_lab_side $side "$pluto_prefix" "$IKE_LAB_DIR/kme/$side.conf" \
		$'ppk=insist\nppk-uri=pkcs11:token=qkd' "$psk2" "$(STATIC_CONN $side)" || die "setting up $side failed"
done
echo "west's ipsec.conf:"
sed 's/^/    /' "$IKE_LAB_DIR/west/ipsec.conf"
on west modutil -dbdir "sql:$IKE_LAB_DIR/west/nss" -list kmstore 2>/dev/null |
	grep -E 'Name|Library file|Token Name' | sed 's/^ */    /; s/ *$//' || true
ike_lab_start west && ike_lab_start east || die "pluto did not start"
for side in west east; do
	echo "$side: whack --connectionstatus (ipsec status), abridged:"
	ike_lab_whack $side --connectionstatus | grep -E '^"[^"]*": [0-9]|  policy: |ppk-uri' | sed 's/^/    /'
done

step "A quantum-safe IKE SA with a QKD key" "West initiates conn west-east (an IKE SA only: this kernel has no ESP). West's pluto asks its token for a key for use now (enc_keys at KME_A) and sends its key ID as the PPK_ID; east's pluto looks that ID up in its own token (dec_keys at KME_B)."
ike_lab_initiate west west-east || { cat "$IKE_LAB_DIR/west/initiate.out"; die "the IKE SA did not come up"; }
sed 's/^/    /' "$IKE_LAB_DIR/west/initiate.out"
sleep 0.3
pattern='kmstore-pkcs11: info: token|ppk-uri=|PPK AUTH calculated|established IKE SA'
for side in west east; do
	echo "$side's pluto log:"
	ike_lab_log $side | grep -E "$pattern" | grep -v 'token static' | sed 's/^/    /'
done
qkd_id() { ike_lab_log "$1" | sed -n 's/.*"west-east".*ppk-uri=[^ ]*: using\( received\)\{0,1\} PPK_ID \([^ ]*\).*/\2/p' | tail -n 1; }
west_id=$(qkd_id west) east_id=$(qkd_id east)
[ -n "$west_id" ] && [ "$west_id" = "$east_id" ] || die "the two plutos logged different key IDs: '$west_id' '$east_id'"
echo "both plutos used the QKD key $west_id"
for side in west east; do
	echo "$side: whack --showstates:"
	ike_lab_whack $side --showstates | sed 's/^/    /'
done

step "The QKD key on both sides" "The key itself is never printed. A KME delivers a QKD key once, to pluto here, so the key is inspected through what the module and the KMEs say about it."
kcv() { ike_lab_log "$1" | grep -F "kmstore-pkcs11: info: token qkd: key $west_id" | sed -n 's/.*check value \([0-9a-f]*\).*/\1/p' | head -n 1; }
west_kcv=$(kcv west) east_kcv=$(kcv east)
if [ -n "$west_kcv" ] && [ -n "$east_kcv" ]; then
	echo "check value logged by the module: west $west_kcv, east $east_kcv"
	[ "$west_kcv" = "$east_kcv" ] || die "the check values differ"
	echo "equal: both plutos hold the same 256-bit key"
else
	echo "(this module version logs the key ID it hands to NSS, not its check value)"
fi
echo "KME_B has delivered key $west_id; asking for it again at east is refused:"
if on east "$kmstore" --config "$IKE_LAB_DIR/kme/east.conf" key "kmstore:profile=qkd;key-id=$west_id"; then
	die "unexpected: KME_B delivered the key twice"
fi
echo "KME_A, asked by west for that key (it gave it out as enc_keys), refuses too:"
ossl=(openssl storeutl -provider-path "$provider_dir" -provider kmstore -provider default)
on west env KMSTORE_CONF="$IKE_LAB_DIR/kme/west.conf" "${ossl[@]}" -text \
	"kmstore:profile=qkd;key-id=$west_id" 2>&1 | tee "$IKE_LAB_DIR/west.qkd" | sed 's/^[0-9A-F]*:error:[0-9A-F]*:/error: /'
grep -q 'Total found: 0' "$IKE_LAB_DIR/west.qkd" || die "unexpected: KME_A delivered the key again"

step "A second IKE SA with the static profile, and its key on both sides" "Conn static takes its PPK from the static token (key ID STATIC_PPK_1); that key can be read any number of times, so both sites show it by its key ID, with the kmstore command and with openssl storeutl through the kmstore provider."
ike_lab_initiate west static || { cat "$IKE_LAB_DIR/west/initiate.out"; die "the static IKE SA did not come up"; }
sleep 0.3
for side in west east; do
	echo "$side's pluto log:"
	ike_lab_log $side | grep -F '"static"' | grep -E 'ppk-uri=|PPK AUTH calculated|established IKE SA' | sed 's/^/    /'
done
declare -A static_kcv
for side in west east; do
	on $side env KMSTORE_CONF="$IKE_LAB_DIR/kme/$side.conf" "${ossl[@]}" -text \
		'kmstore:profile=static;key-id=STATIC_PPK_1' | tee "$IKE_LAB_DIR/$side.storeutl"
	on $side "$kmstore" --config "$IKE_LAB_DIR/kme/$side.conf" key \
		'kmstore:profile=static;key-id=STATIC_PPK_1'
	static_kcv[$side]=$(awk '$1 == "check-value:" { print $2 }' "$IKE_LAB_DIR/$side.storeutl")
done
[ -n "${static_kcv[west]}" ] && [ "${static_kcv[west]}" = "${static_kcv[east]}" ] ||
	die "the static check values differ: ${static_kcv[west]} ${static_kcv[east]}"
echo "equal check values (${static_kcv[west]}): the key both plutos used for conn static"

step "Tear down" "Plutos shut down, kme-sim stopped, namespaces and files removed."
ike_lab_stop
ike_lab_down
trap - EXIT
echo "done: a quantum-safe IKE SA (QKD key $west_id) and a static-PPK IKE SA between two patched plutos."
