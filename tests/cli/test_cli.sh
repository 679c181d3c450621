#!/bin/bash
# test_cli.sh - the kmstore command, run for real against configuration and
# key files written here. Usage: test_cli.sh PATH/TO/kmstore
set -euo pipefail

KMSTORE=${1:?usage: test_cli.sh PATH/TO/kmstore}
T=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
umask 077
unset KMSTORE_CONF

n=0 passed=0 failed=0

report() { # report OK WHAT [DETAIL]
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		passed=$((passed + 1))
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2${3:+ ($3)}"
	fi
}

# run ARGS...: runs kmstore; sets rc, out, err (set -e must not stop us).
run() {
	set +e
	"$KMSTORE" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	out=$(cat "$T/out")
	err=$(cat "$T/err")
}

expect_rc() { # expect_rc WANT WHAT
	if [ "$rc" = "$1" ]; then report 1 "$2"
	else report 0 "$2" "expected exit $1, got $rc; stderr: ${err:0:200}"; fi
}

expect_eq() { # expect_eq WANT GOT WHAT
	if [ "$1" = "$2" ]; then report 1 "$3"
	else report 0 "$3" "expected '$1', got '$2'"; fi
}

expect_in() { # expect_in NEEDLE HAYSTACK WHAT
	case "$2" in
	*"$1"*) report 1 "$3" ;;
	*) report 0 "$3" "expected '$1' in '${2:0:300}'" ;;
	esac
}

expect_not_in() { # expect_not_in NEEDLE HAYSTACK WHAT
	case "$2" in
	*"$1"*) report 0 "$3" "expected no '$1', got it in '${2:0:300}'" ;;
	*) report 1 "$3" ;;
	esac
}

# expect_json PYTHON-EXPRESSION WHAT: the expression, on d = the JSON
# document kmstore printed (valid UTF-8, as JSON must be), must be true.
expect_json() {
	local why
	if why=$(python3 -c '
import json, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
if not eval(sys.argv[2]):
    print(json.dumps(d)[:300])
    sys.exit(1)
' "$T/out" "$1" 2>&1); then report 1 "$2"
	else report 0 "$2" "expected $1, got $why"; fi
}

hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }
kcv_of() { # the check value computed apart from kmstore
	printf kmstore-kcv | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(hex_of "$1")" |
		sed 's/.*= //' | cut -c1-6
}

# Files: a 32-byte key, a TLS client certificate and key for a QKD profile.
openssl rand -out "$T/west.key" 32
KEY_HEX=$(hex_of "$T/west.key")
KEY_B64=$(base64 -w0 "$T/west.key")
KCV=$(kcv_of "$T/west.key")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/sae-a.key" -out "$T/sae-a.crt" -subj /CN=SAE_A -days 2 2>/dev/null
cp "$T/sae-a.crt" "$T/kme-ca.crt"

CONF=$T/kmstore.conf
cat >"$CONF" <<CONF
# written by test_cli.sh
[west-east-static]
type   = static
key-id = PPK_ID_1
key    = file:west.key          # relative to this file

[inline]
type   = static
key-id = a/b;c
key    = hex:$KEY_HEX

[west-east-qkd]
type         = qkd
url          = https://kme-a.example:8443
local-sae-id = SAE_A
peer-sae-id  = SAE_B
certificate  = sae-a.crt
private-key  = sae-a.key
ca           = kme-ca.crt
key-size     = 512
timeout      = 3
CONF
chmod 600 "$CONF"

# --- profiles
run -c "$CONF" profiles
expect_rc 0 "profiles exits 0"
expect_in "west-east-static" "$out" "profiles lists the static profile"
expect_in "key-id=PPK_ID_1" "$out" "profiles shows the key ID"
line=$(grep '^west-east-qkd ' "$T/out" || true)
expect_in "qkd" "$line" "profiles shows the qkd type"
expect_in "512" "$line" "profiles shows the qkd key size in bits"
expect_in "url=https://kme-a.example:8443" "$line" "profiles shows the KME url"
expect_in "local-sae-id=SAE_A peer-sae-id=SAE_B" "$line" "profiles shows the SAE IDs"
expect_not_in "$KEY_HEX" "$out$err" "profiles prints no key"

run -c "$CONF" --json profiles
expect_rc 0 "profiles --json exits 0"
expect_json '[p["name"] for p in d["profiles"]] == ["west-east-static", "inline", "west-east-qkd"]' \
	"profiles --json lists the profiles in order"
expect_json 'd["profiles"][0] == {"name": "west-east-static", "type": "static", "key_bits": 256, "key_id": "PPK_ID_1"}' \
	"profiles --json: static profile fields"
expect_json 'd["profiles"][2]["type"] == "qkd" and d["profiles"][2]["key_bits"] == 512 and d["profiles"][2]["url"] == "https://kme-a.example:8443" and d["profiles"][2]["local_sae_id"] == "SAE_A" and d["profiles"][2]["peer_sae_id"] == "SAE_B"' \
	"profiles --json: qkd profile fields"
expect_json 'd["config"].endswith("/kmstore.conf")' "profiles --json names the config file"

# A file name that is not UTF-8: JSON's strings must be. Each byte that
# is not part of valid UTF-8 is shown as U+FFFD: an overlong form, a
# surrogate, a cut sequence and a code point past U+10FFFF, but not the
# valid two- and four-byte sequences between them.
cp "$CONF" "$T/"$'bad\xff.conf'
run -c "$T/"$'bad\xff.conf' --json profiles
expect_rc 0 "profiles --json of a file whose name is not UTF-8 exits 0"
expect_json 'd["config"].endswith("/bad\ufffd.conf") and len(d["profiles"]) == 3' \
	"profiles --json: the name's byte 0xff is U+FFFD"
run -c "$T/"$'no\xc0\xaf-\xed\xa0\x80-\xe2\x82-\xc3\xa9-\xf0\x9f\x98\x80-\xf4\x90\x80\x80.conf' --json profiles
expect_rc 3 "profiles --json of a missing file whose name is not UTF-8 exits 3"
expect_json 'd["error"]["code"] == "config" and "/no\ufffd\ufffd-\ufffd\ufffd\ufffd-\ufffd\ufffd-\u00e9-\U0001f600-\ufffd\ufffd\ufffd\ufffd.conf: " in d["error"]["message"]' \
	"--json error quoting a name that is not UTF-8: U+FFFD for each bad byte"

# --- key
run -c "$CONF" key west-east-static
expect_rc 0 "key exits 0"
expect_in "PPK_ID_1" "$out" "key prints the key ID"
expect_in "32 bytes (256 bits)" "$out" "key prints the size"
got=$(awk '$1 == "check-value" { print $2 }' "$T/out")
expect_eq "$KCV" "$got" "key check value equals HMAC-SHA256 by openssl"
expect_not_in "$KEY_HEX" "$out$err" "key prints no hex key without --reveal"
expect_not_in "${KEY_B64%%=*}" "$out$err" "key prints no base64 key without --reveal"

run -c "$CONF" --json key west-east-static
expect_rc 0 "key --json exits 0"
expect_json 'd["check_value"] == "'"$KCV"'" and d["key_id"] == "PPK_ID_1" and d["bytes"] == 32 and d["bits"] == 256 and d["profile"] == "west-east-static"' \
	"key --json fields"
expect_json '"key" not in d' "key --json has no key without --reveal"

run -c "$CONF" key west-east-static --reveal hex
expect_rc 0 "key --reveal hex exits 0"
expect_eq "$KEY_HEX" "$(awk '$1 == "key" { print $2 }' "$T/out")" "key --reveal hex is the raw key"
run -c "$CONF" key west-east-static --reveal base64
expect_eq "$KEY_B64" "$(awk '$1 == "key" { print $2 }' "$T/out")" "key --reveal base64 is the raw key"
run -c "$CONF" --json key west-east-static -r base64
expect_json 'd["key"] == "'"$KEY_B64"'" and d["encoding"] == "base64"' "key --json --reveal base64"

run -c "$CONF" key inline --reveal hex
expect_eq "$KEY_HEX" "$(awk '$1 == "key" { print $2 }' "$T/out")" "inline hex: key is the same bytes"
expect_eq "$KCV" "$(awk '$1 == "check-value" { print $2 }' "$T/out")" "inline hex: same check value"

run -c "$CONF" key 'kmstore:profile=west-east-static;key-id=PPK_ID_1'
expect_rc 0 "key by kmstore: URI with key-id exits 0"
expect_eq "$KCV" "$(awk '$1 == "check-value" { print $2 }' "$T/out")" "key by URI: same check value"

# libcrypto without HMAC-SHA256 (an openssl.cnf that activates only the
# base provider): no value that two sites could compare, and why.
printf 'openssl_conf = init\n[init]\nproviders = p\n[p]\nbase = b\n[b]\nactivate = 1\n' >"$T/base.cnf"
OPENSSL_CONF=$T/base.cnf run -c "$CONF" key west-east-static
expect_rc 0 "no HMAC-SHA256: key still exits 0 (the key was fetched)"
expect_eq "none" "$(awk '$1 == "check-value" { print $2 }' "$T/out")" "no HMAC-SHA256: check value none"
expect_in "HMAC-SHA256 is not available" "$err" "no HMAC-SHA256: stderr says why"
OPENSSL_CONF=$T/base.cnf run -c "$CONF" --json key west-east-static
expect_json '"check_value" not in d and d["key_id"] == "PPK_ID_1"' "no HMAC-SHA256: --json has no check_value"
run -c "$CONF" key 'KMSTORE:profile=inline;key-id=a%2Fb%3Bc'
expect_rc 0 "key by URI with a percent-encoded key ID"
expect_in "a/b;c" "$out" "key by URI: decoded key ID printed"
run -c "$CONF" key 'kmstore:profile=west-east-static'
expect_rc 0 "key by URI without key-id"
run -c "$CONF" key inline --key-id 'a/b;c'
expect_rc 0 "key --key-id with the right ID"

run -c "$CONF" key west-east-static --key-id PPK_ID_2
expect_rc 5 "key --key-id wrong ID exits 5"
expect_in "PPK_ID_2" "$err" "wrong key ID is named"
run -c "$CONF" key no-such-profile
expect_rc 5 "unknown profile exits 5"
expect_in "no-such-profile" "$err" "unknown profile is named"
run -c "$CONF" key 'kmstore:profile=west-east-static;color=red'
expect_rc 6 "URI with an unknown attribute exits 6"
expect_in "color" "$err" "the bad attribute is named"
run -c "$CONF" key 'kmstore:profile=a%ZZ'
expect_rc 6 "URI with a bad %-escape exits 6"
run -c "$CONF" key 'kmstore:'
expect_rc 2 "URI without a profile is a usage error"
expect_eq "kmstore: URI 'kmstore:' names no profile (kmstore:profile=NAME)" "$err" \
	"... saying so once, the URI quoted (not 'kmstore: kmstore: names no profile')"
run -c "$CONF" key 'kmstore:profile=inline;key-id=a%2Fb%3Bc' --key-id x
expect_rc 2 "key-id in the URI and --key-id is a usage error"
expect_in "kmstore: URI 'kmstore:profile=inline;key-id=a%2Fb%3Bc' has a key-id and --key-id is given too" "$err" \
	"... naming the URI as a URI"

run -c "$CONF" --json key no-such-profile
expect_rc 5 "--json failure exits 5"
expect_json 'd["error"]["code"] == "not-found" and "no-such-profile" in d["error"]["message"]' \
	"--json failure prints an error object"

# --- status
run -c "$CONF" status west-east-static
expect_rc 0 "status of a static profile exits 0"
expect_in "ready" "$out" "status says ready"

# --- check
run -c "$CONF" check
expect_rc 0 "check of a good config exits 0"
expect_not_in "hex text" "$err" "a key file of raw bytes is not taken for hex text"
run -c "$CONF" --json check
expect_json 'all(p["ok"] for p in d["profiles"]) and len(d["profiles"]) == 3' "check --json: every profile ok"

head -c 15 "$T/west.key" >"$T/short.key"
BROKEN=$T/broken.conf
printf '[good]\ntype = static\nkey-id = g\nkey = hex:%s\n\n[broken]\ntype = static\nkey-id = b\nkey = file:short.key\n' \
	"$KEY_HEX" >"$BROKEN"
chmod 600 "$BROKEN"
run -c "$BROKEN" check
expect_rc 1 "check with a broken key file exits 1"
expect_in "$BROKEN:9: profile 'broken': key:" "$err" "check names file:line of the broken key"
expect_in "15 bytes" "$err" "check says what is wrong with the key"
expect_not_in "$KEY_HEX" "$out$err" "check prints no key"
run -c "$BROKEN" --json check
expect_json 'd["profiles"][0]["ok"] is True and d["profiles"][1]["ok"] is False and ":9:" in d["profiles"][1]["error"]' \
	"check --json marks the broken profile"

# allow-users and allow-groups are kmstored's, but check looks their names
# up as kmstored does at start and reload: a typo is found by check, not by
# a kmstored that waits 60 s for it and exits. A number is taken as it is.
# (check passed them all, and said nothing.)
ACL=$T/acl.conf
printf '[a]\ntype = static\nkey-id = a\nkey = hex:%s\nallow-users = root no-such-user-kmscli\n\n' "$KEY_HEX" >"$ACL"
printf '[g]\ntype = static\nkey-id = g\nkey = hex:%s\nallow-groups = root,no-such-group-kmscli\n\n' "$KEY_HEX" >>"$ACL"
printf '[n]\ntype = static\nkey-id = n\nkey = hex:%s\nallow-users = 4242424\nallow-groups = 4242425\n' "$KEY_HEX" >>"$ACL"
chmod 600 "$ACL"
run -c "$ACL" check
expect_rc 1 "check of an allow-users naming no user exits 1"
expect_in "$ACL:5: profile 'a': allow-users: no user 'no-such-user-kmscli' on this system" "$err" \
	"... naming the file, line, profile, setting and user"
expect_in "$ACL:11: profile 'g': allow-groups: no group 'no-such-group-kmscli' on this system" "$err" \
	"... and the group of an allow-groups that names none"
expect_in "ok      n (static)" "$out" "numbers in allow-users and allow-groups pass check without an entry"
run -c "$ACL" profiles
expect_rc 0 "the names are check's: profiles (in-process, where they do nothing) still loads"

# A key file of hex text (openssl rand -hex, xxd -p: 60 digits a line) is
# raw bytes like any other, its characters the key: check warns, naming the
# file (never its content), and uses it. (It said nothing.)
openssl rand -hex 32 >"$T/hex1.key"
xxd -p "$T/west.key" >"$T/hex2.key"
printf '[h1]\ntype = static\nkey-id = h1\nkey = file:hex1.key\n\n[h2]\ntype = static\nkey-id = h2\nkey = file:hex2.key\n' >"$T/hex.conf"
chmod 600 "$T/hex.conf"
run -c "$T/hex.conf" check
expect_rc 0 "check of key files of hex text exits 0: they are not refused"
expect_in "warning: profile 'h1': key file $T/hex1.key looks like hex text" "$err" \
	"check warns of a key file of hex text (openssl rand -hex), naming it"
expect_in "its 65 bytes are the key as they are, not decoded from hex" "$err" "... saying how it is read"
expect_in "key = hex:" "$err" "... and how to write a key in hex"
expect_in "warning: profile 'h2': key file $T/hex2.key looks like hex text" "$err" \
	"... and of one of several lines (xxd -p)"
expect_eq 2 "$(grep -c 'hex text' <<<"$err")" "... once each"
expect_not_in "$(head -c 20 "$T/hex1.key")" "$out$err" "... never showing the content"
expect_not_in "$KEY_HEX" "$out$err" "... of either"
run -c "$T/hex.conf" key h1
expect_rc 0 "a key file of hex text still gives its key"
expect_in "$(kcv_of "$T/hex1.key")" "$out" "... its bytes as they are"

# A key file rewritten in place, as kmstore.conf(5) shows (truncated, then
# written), is read whole: a reader that finds it empty just after a change
# waits for the writer, up to 250 ms. (The old reader failed: "0 bytes".)
printf '[rot]\ntype = static\nkey-id = r\nkey = file:rot.key\n' >"$T/rot.conf"
: >"$T/rot.key"
(set +e; "$KMSTORE" -c "$T/rot.conf" --json key rot >"$T/out" 2>"$T/rot.err"; echo $? >"$T/rot.rc") &
sleep 0.1
head -c 32 /dev/urandom >"$T/rot.key"
wait
rc=$(cat "$T/rot.rc") err=$(cat "$T/rot.err")
expect_rc 0 "a key read while its file is rewritten in place waits for the writer"
expect_json "d[\"check_value\"] == \"$(kcv_of "$T/rot.key")\"" "... and gets the whole new key"
: >"$T/rot.key"
run -c "$T/rot.conf" key rot
expect_rc 3 "a key file left empty still fails once the wait is over"
expect_in "0 bytes" "$err" "... saying so"

printf '[p]\ntype = static\nkey-id = x\nkey = hex:00\n' >"$T/badkey.conf"
chmod 600 "$T/badkey.conf"
run -c "$T/badkey.conf" profiles
expect_rc 3 "a config error exits 3"
expect_in "badkey.conf:4: profile 'p': key:" "$err" "a config error names file:line"
run -c "$T/badkey.conf" --json check
expect_rc 1 "check --json of a file that does not load exits 1"
expect_json 'd["profiles"] == [] and d["error"]["code"] == "config" and "badkey.conf:4:" in d["error"]["message"]' \
	"check --json of a file that does not load: no profiles and an error object"

printf '# no profile yet\n' >"$T/empty.conf"
chmod 600 "$T/empty.conf"
run -c "$T/empty.conf" check
expect_rc 1 "check of a file without profiles exits 1"
expect_in "empty.conf defines no profile" "$err" "... saying it defines none"
run -c "$T/empty.conf" --json check
expect_rc 1 "check --json of a file without profiles exits 1"
expect_json 'd["profiles"] == [] and d["error"]["code"] == "config" and d["error"]["message"].endswith("empty.conf defines no profile")' \
	"check --json of a file without profiles: no profiles and an error object"

# --- permissions
cp "$CONF" "$T/open.conf"
chmod 644 "$T/open.conf"
run -c "$T/open.conf" profiles
expect_rc 4 "a config readable by others exits 4"
expect_in "chmod 600" "$err" "the refusal says how to fix it"
run -c "$T/open.conf" check
expect_rc 1 "check of a config readable by others exits 1"
chmod 644 "$T/west.key"
run -c "$CONF" key west-east-static
expect_rc 4 "a key file readable by others exits 4"
expect_in "chmod 600" "$err" "key file refusal says chmod 600"
chmod 600 "$T/west.key"

# --- output that cannot be written (a full disk): exit 10, a system error
# as kmstore(1) documents, check's too (not one of its findings), with one
# line that says why. (help and --version exited 0; the others said only
# "cannot write the output".)
if [ -w /dev/full ]; then
	for args in profiles "status west-east-static" "key west-east-static" \
		"key west-east-static --reveal" check "--json check" "--json profiles" \
		help --help --version; do
		set +e
		# shellcheck disable=SC2086 # the words of args are arguments
		"$KMSTORE" -c "$CONF" $args >/dev/full 2>"$T/err"
		rc=$?
		set -e
		err=$(cat "$T/err")
		expect_rc 10 "kmstore $args >/dev/full exits 10"
		# (check also warns here of the test certificates' end)
		expect_eq "kmstore: cannot write to standard output: No space left on device" \
			"$(grep -v '^kmstore: warning: ' <<<"$err")" "... saying so once, with the reason"
	done
fi

# --- KMSTORE_CONF
set +e
KMSTORE_CONF=$CONF "$KMSTORE" profiles >"$T/out" 2>"$T/err"
rc=$?
set -e
out=$(cat "$T/out")
err=$(cat "$T/err")
expect_rc 0 "KMSTORE_CONF is honoured"
expect_in "west-east-static" "$out" "KMSTORE_CONF's profiles are listed"
# ... but not by a set-ID program (secure_getenv): whoever runs it chose
# the environment. As root: a setgid copy, run with another real group.
if [ "$(id -u)" = 0 ] && getent group nogroup >/dev/null; then
	cp "$KMSTORE" "$T/kmstore-setgid"
	chgrp nogroup "$T/kmstore-setgid"
	chmod 2755 "$T/kmstore-setgid"
	chmod 711 "$T"
	set +e
	KMSTORE_CONF=$CONF "$T/kmstore-setgid" profiles >"$T/out" 2>"$T/err"
	set -e
	out=$(cat "$T/out")
	if [[ $out != *west-east-static* ]]; then report 1 "a setgid kmstore ignores KMSTORE_CONF"
	else report 0 "a setgid kmstore ignores KMSTORE_CONF" "it listed $CONF's profiles"; fi
	chmod 700 "$T"
else
	echo "# not root: the set-ID case of KMSTORE_CONF is not checked"
fi

# --- reload and metrics: the kmstored of a client configuration
# (tests/daemon has one running; here none listens, and the error names
# the socket asked).
printf 'daemon = %s\n' "$T/none.sock" >"$T/client.conf"
chmod 600 "$T/client.conf"
run -c "$T/client.conf" reload
expect_rc 8 "reload -c CLIENT.conf asks the kmstored it names (none: exit 8)"
expect_in "kmstored at $T/none.sock: cannot connect" "$err" "... at the socket it names"
KMSTORE_CONF=$T/client.conf run metrics
expect_in "kmstored at $T/none.sock: cannot connect" "$err" \
	"metrics with KMSTORE_CONF naming a client configuration: its socket"
KMSTORE_CONF=$CONF run -d "$T/other.sock" reload
expect_in "kmstored at $T/other.sock: cannot connect" "$err" "reload --daemon: that socket"
run -c "$CONF" reload
expect_rc 2 "reload -c FILE of profiles: a usage error"
expect_in "$CONF is not a client configuration (daemon = SOCKET)" "$err" "... saying the file names no kmstored"
run -c "$CONF" --json metrics
expect_json 'd["error"]["code"] == "usage" and "not a client configuration" in d["error"]["message"]' \
	"metrics --json -c FILE of profiles: an error object"
printf 'daemon = none.sock\n' >"$T/relative.conf"
chmod 600 "$T/relative.conf"
run -c "$T/relative.conf" reload
expect_rc 3 "reload -c CLIENT.conf with a relative socket: its error (exit 3)"
expect_in "relative.conf:1: daemon: the socket must be an absolute path" "$err" "... naming file and line"

# --- usage
run --help
expect_rc 0 "--help exits 0"
for word in profiles status key check help --config --key-id --reveal --json --help --version KMSTORE_CONF; do
	expect_in "$word" "$out" "--help mentions $word"
done
for code in 0 1 2 3 4 5 6 7 8 9 10; do
	if grep -Eq "^ +$code +[a-z]" "$T/out"; then report 1 "--help documents exit status $code"
	else report 0 "--help documents exit status $code" "no line for $code"; fi
done
run help
expect_rc 0 "help command exits 0"
run --version
expect_rc 0 "--version exits 0"
run --bogus profiles
expect_rc 2 "an unknown option exits 2"
run -c "$CONF" frobnicate
expect_rc 2 "an unknown command exits 2"
run -c "$CONF" key
expect_rc 2 "key without a profile exits 2"
run -c "$CONF" key west-east-static --reveal raw
expect_rc 2 "--reveal raw exits 2"
run -c "$CONF" profiles --key-id x
expect_rc 2 "--key-id with profiles exits 2"
run
expect_rc 2 "no command exits 2"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
