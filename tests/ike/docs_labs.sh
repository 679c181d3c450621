#!/usr/bin/env bash
# docs_labs.sh - the labs the documents print, run as printed:
#   - docs/guide.md, section 5.6: its ```sh blocks one after the other in
#     one shell, then the checks of what the section says to expect;
#   - kme-sim(1), EXAMPLES: each .nf block in a directory of its own (the
#     second in a namespace "kme" with 192.0.2.254, as its text says),
#     then a status request to the KMEs it started.
# Each runs in namespaces of its own (mount, net, PID): /run/netns and /tmp
# are private there, so the fixed names the documents use (netns kme, west,
# east; /tmp/kmstore-lab) meet nothing else on the machine, nothing started
# outlives the run, and no packet leaves.
#
#   docs_labs.sh SOURCE_DIR MODULE IPSEC_DIR BIN_DIR...
#
# MODULE and IPSEC_DIR (pluto, whack, addconn with the kmstore series)
# are what the guide's MODULE and IPSEC stand for; the BIN_DIRs (kmstore,
# kme-sim, kme-sim-pki) go first in PATH. Needs root; exit 77 without.
set -uo pipefail
if [ $# -lt 4 ]; then
	sed -n '2,18p' "$0" >&2
	exit 2
fi
SRC=$1 MODULE=$2 IPSEC=$3
GUIDE=$SRC/docs/guide.md
shift 3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (namespaces)"; exit 77; }
for t in unshare ip certutil modutil; do
	command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
path=$PATH
for d in "$@"; do path=$(cd "$d" && pwd):$path; done

# (the lab's writes to /tmp stay in its namespace, but this directory, and
# the programs, may be under /tmp: see in_namespaces)
out=$(mktemp -d "$PWD/guide-lab.XXXXXX")
trap 'rm -rf "$out"' EXIT
# The section's blocks: the lab (all but the last) and its end (the last).
awk '
	/^\*\*5\.6 / { on = 1 }
	/^## 6\./ { on = 0 }
	on && /^```sh$/ { n++; block = 1; print "# --- block " n > "/dev/stderr"; next }
	on && block && /^```/ { block = 0; next }
	on && block { print > (OUT "/block." n) }
' OUT="$out" "$GUIDE" 2>/dev/null
blocks=$(ls "$out"/block.* 2>/dev/null | wc -l)
if [ "$blocks" -lt 3 ]; then
	tap_not_ok "the guide's section 5.6 has its shell blocks" "found $blocks"
	tap_done
	exit 1
fi
{
	for i in $(seq $((blocks - 1))); do cat "$out/block.$i"; done
	echo 'cp -a west east kme-sim.log "$LAB_OUT"/'
	cat "$out/block.$blocks"
	echo 'ip netns list >"$LAB_OUT/netns-after"'
} >"$out/lab.sh"

# in_namespaces SCRIPT: runs it with a private /run/netns, /tmp as an
# overlay whose writes vanish with the namespace (what was there stays
# visible: this tree may be under /tmp) but $out written through, loopback
# up, and PID 1 of its own, so that its end kills whatever it left running;
# its stdout and stderr in $out/stdout, $out/stderr; RC its exit status.
in_namespaces() {
	local start=$SECONDS
	timeout -k 5 240 unshare --mount --net --pid --fork --mount-proc --propagation private \
		env PATH="$path" MODULE="$MODULE" IPSEC="$IPSEC" LAB_OUT="$out" bash -c '
			mkdir -p /run/netns && mount -t tmpfs lab-netns /run/netns &&
			mount -t tmpfs lab-mnt /mnt && mkdir /mnt/out /mnt/upper /mnt/work &&
			mount --bind "$LAB_OUT" /mnt/out &&
			mount -t overlay lab-tmp -o lowerdir=/tmp,upperdir=/mnt/upper,workdir=/mnt/work /tmp &&
			mount --bind /mnt/out "$LAB_OUT" &&
			ip link set lo up || exit 99
			bash "$0"' "$1" >"$out/stdout" 2>"$out/stderr"
	RC=$?
	echo "# $(basename "$1") ran in $((SECONDS - start)) s (exit $RC)"
}

echo "# docs/guide.md, 5.6"
in_namespaces "$out/lab.sh"
rc=$RC
[ -f "$out/netns-after" ] && tap_ok "the lab's blocks ran to their end" ||
	tap_not_ok "the lab's blocks ran to their end" "exit $rc" "$(tail -n 20 "$out/stderr")"

w=$(cat "$out/west/pluto.log" 2>/dev/null) e=$(cat "$out/east/pluto.log" 2>/dev/null)
expect_match "state +ready" "$(cat "$out/stdout")" "kmstore status reaches each site's KME from its namespace"
expect_in "PPK AUTH calculated as initiator" "$w" "west used the PPK"
expect_in "PPK AUTH calculated as responder" "$e" "east used the PPK"
expect_in "established IKE SA" "$w" "west: the IKE SA is established"
expect_in "established IKE SA" "$e" "east: the IKE SA is established"
wid=$(sed -n 's/.*ppk-uri=[^ ]*: using PPK_ID \([^ ]*\).*/\1/p' <<<"$w" | head -n 1)
eid=$(sed -n 's/.*ppk-uri=[^ ]*: using received PPK_ID \([^ ]*\).*/\1/p' <<<"$e" | head -n 1)
[ -n "$wid" ] && [ "$wid" = "$eid" ] && tap_ok "the same PPK_ID on both sides ($wid)" ||
	tap_not_ok "the same PPK_ID on both sides" "west: $wid" "east: $eid"
wkcv=$(sed -n "s/.*key $wid for use now (check value \([0-9a-f]*\)).*/\1/p" <<<"$w" | head -n 1)
ekcv=$(sed -n "s/.*key $wid found (check value \([0-9a-f]*\)).*/\1/p" <<<"$e" | head -n 1)
[ -n "$wkcv" ] && [ "$wkcv" = "$ekcv" ] && tap_ok "the module's lines show the same check value ($wkcv)" ||
	tap_not_ok "the module's lines show the same check value" "west: $wkcv" "east: $ekcv"
expect_match "KME_A .*enc_keys HTTP/1\.1\" 200" "$(cat "$out/kme-sim.log" 2>/dev/null)" "kme-sim.log: enc_keys at KME_A"
expect_match "KME_B .*dec_keys HTTP/1\.1\" 200" "$(cat "$out/kme-sim.log" 2>/dev/null)" "kme-sim.log: dec_keys at KME_B"
expect_eq "" "$(cat "$out/netns-after" 2>/dev/null)" "the last block removes the namespaces"

echo "# kme-sim(1), EXAMPLES"
awk '
	/^\.SH / { sec = ($0 ~ /^\.SH +EXAMPLES/); next }
	sec && /^\.nf/ { n++; on = 1; next }
	on && /^\.fi/ { on = 0; next }
	on { print > (OUT "/example." n) }
' OUT="$out" "$SRC/docs/man/kme-sim.1"
for f in "$out"/example.*; do
	sed -i -E 's/\\-/-/g; s/\\e/\\/g' "$f"
done
{
	echo 'mkdir /tmp/example && cd /tmp/example'
	cat "$out/example.1"
} >"$out/ex1.sh"
in_namespaces "$out/ex1.sh"
expect_match '"source_KME_ID":"KME_A".*"slave_SAE_ID":"SAE_B"' "$(cat "$out/stdout")" \
	"kme-sim(1) example 1: two KMEs on 127.0.0.1 answer a status request"
{
	echo 'ip netns add kme && ip -n kme link set lo up && ip -n kme link add br0 type bridge &&'
	echo '	ip -n kme addr add 192.0.2.254/24 dev br0 && ip -n kme link set br0 up'
	echo 'mkdir /tmp/example && cd /tmp/example'
	cat "$out/example.2"
	echo 'until [ -s ready ]; do sleep 0.1; done'
	echo 'ip netns exec kme curl -sS --max-time 10 --cacert pki/ca.crt --cert pki/sae-a.crt \'
	echo '	--key pki/sae-a.key https://192.0.2.254:8443/api/v1/keys/SAE_B/status'
} >"$out/ex2.sh"
in_namespaces "$out/ex2.sh"
expect_match '"source_KME_ID":"KME_A".*"slave_SAE_ID":"SAE_B"' "$(cat "$out/stdout")" \
	"kme-sim(1) example 2: both KMEs in namespace kme on 192.0.2.254"
[ ! -f "$out/example.3" ] && tap_ok "kme-sim(1) has two examples, both run here" ||
	tap_not_ok "kme-sim(1) has two examples, both run here" "a third one is not"
tap_done
