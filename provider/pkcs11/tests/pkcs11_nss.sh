#!/usr/bin/env bash
# The module through NSS, as libreswan's pluto uses it: an NSS database
# with the module added by modutil, pkcs11: URIs parsed by NSS, keys
# generated and found by ID, HMAC-SHA256 and IKEv2 prf+ computed by NSS's
# softoken with the key and compared with values computed without NSS,
# error cases, threads, and NSS FIPS mode.
# Usage: pkcs11_nss.sh MODULE NSS_CLIENT
MODULE=$1
NSS_CLIENT=$2
. "$(dirname "$0")/lib.sh"
for t in modutil certutil; do
	command -v $t >/dev/null || { echo "# $t (libnss3-tools) not installed: skipped"; exit 77; }
done

client() { "$NSS_CLIENT" "$@"; }
field() { printf '%s\n' "$1" | sed -n "s/^$2=//p"; }

write_static_conf
db=$WORK/db
check "modutil -add the module with -string config=..." \
	nss_db "$db" "config=$WORK/static.conf log=stderr"
has "pkcs11.txt holds the parameter string" "$(cat "$db/pkcs11.txt")" \
	"^parameters=config=$WORK/static.conf log=stderr$"

list=$(tool modutil -dbdir "sql:$db" -list 2>&1)
has "modutil -list: the module is loaded" "$list" "2\. kmstore"
has "modutil -list: one token per profile" "$list" \
	"uri: pkcs11:token=west-static;manufacturer=kmstore;serial=[0-9a-f]{16};model=static"
has "modutil -list: the second profile" "$list" "token: second"
list=$(tool certutil -U -d "sql:$db" 2>&1)
has "certutil -U lists the token URIs" "$list" \
	"uri: pkcs11:token=west-static;manufacturer=kmstore;.*model=static"

out=$(client "$db" tokens kmstore)
has "NSS sees the tokens, model = profile type" "$out" \
	"^token=west-static model=static$"
key_hex=$(hex_of "$WORK/static.key")

# pkcs11:token=P: "a key for use now", through C_GenerateKey.
out=$(client "$db" key pkcs11:token=west-static)
same "pkcs11:token=P generates: CKA_ID is the key ID" "$(field "$out" id)" PPK_ID_1
same "... and the value is the static key" "$(field "$out" key)" "$key_hex"
same "... and the module created no thread" "$(field "$out" new-threads)" 0
out=$(client "$db" key pkcs11:token=west-static token)
same "... also as a token object (PK11_ATTR_TOKEN)" "$(field "$out" key)" "$key_hex"

# pkcs11:token=P;id=K: "that key", through C_FindObjects (PK11_FindFixedKey).
out=$(client "$db" key 'pkcs11:token=west-static;id=PPK_ID_1')
same "pkcs11:token=P;id=K finds the key" "$(field "$out" key)" "$key_hex"
out=$(client "$db" key 'pkcs11:token=west-static;id=%50%50%4B%5F%49%44%5F%31')
same "... with a percent-encoded id" "$(field "$out" key)" "$key_hex"
uri=$(tool modutil -dbdir "sql:$db" -list 2>/dev/null |
	sed -n 's/^[[:space:]]*uri: \(pkcs11:token=west-static;.*\)$/\1/p')
out=$(client "$db" key "$uri;id=PPK_ID_1")
same "... with the full token URI modutil prints" "$(field "$out" key)" "$key_hex"
out=$(client "$db" key 'pkcs11:token=second;id=PPK_ID_2')
same "the other token's key (48 bytes)" "$(field "$out" key)" \
	"$(hex_of "$WORK/second.key")"

# The key in NSS's softoken: HMAC-SHA256 and IKEv2 prf+ as pluto uses it.
data=$(printf 'kmstore PPK test' | od -An -v -tx1 | tr -d ' \n')
want=$(printf 'kmstore PPK test' | openssl dgst -sha256 -mac HMAC \
	-macopt "hexkey:$key_hex" | sed 's/^.*= //')
out=$(client "$db" hmac 'pkcs11:token=west-static;id=PPK_ID_1' "$data")
same "HMAC-SHA256 by NSS = openssl dgst -mac HMAC" "$(field "$out" hmac)" "$want"
out=$(client "$db" hmac pkcs11:token=west-static "$data")
same "... with a generated key too" "$(field "$out" hmac)" "$want"
seed=000102030405060708090a0b0c0d0e0f
want=$(python3 - "$key_hex" "$seed" 100 <<'EOF'
import hashlib, hmac, sys
key, seed, n = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
out, t, i = b"", b"", 1
while len(out) < n:   # RFC 7296 prf+
    t = hmac.new(key, t + seed + bytes([i]), hashlib.sha256).digest()
    out, i = out + t, i + 1
print(out[:n].hex())
EOF
)
out=$(client "$db" prfplus 'pkcs11:token=west-static;id=PPK_ID_1' "$seed" 100)
same "prf+ (CKM_NSS_IKE_PRF_PLUS_DERIVE) = RFC 7296 prf+ in Python" \
	"$(field "$out" key)" "$want"

# Errors.
client "$db" key pkcs11:token=nosuchtoken >/dev/null 2>&1
same "unknown token: no slot (exit 3)" $? 3
err=$(client "$db" key 'pkcs11:token=west-static;id=NOPE' 2>&1 >/dev/null)
same "unknown key ID: no key (exit 4)" $? 4
has "... and the module says why" "$err" "no key NOPE: .*has no key with ID 'NOPE'"
for bad in 'pkcs11:token=west-static;id=%zz' 'pkcs11:token=west-static;id=%4' \
	'kmstore:profile=west-static' 'pkcs11:id=PPK_ID_1' 'pkcs11:token=a;token=b' \
	'pkcs11:token=west-static?pin-value=1;x'; do
	client "$db" key "$bad" >/dev/null 2>&1
	same "malformed URI '$bad' (exit 5)" $? 5
done
client "$db" key 'pkcs11:token=west-static;id=PPK%0A_1' >/dev/null 2>&1
same "a key ID with a control character finds nothing (exit 4)" $? 4

# A configuration the module refuses: it loads with no tokens and says why.
bad=$WORK/bad
nss_db "$bad" "config=$WORK/missing.conf log=stderr"
err=$(client "$bad" tokens kmstore 2>&1)
has "missing configuration: the module loads, the log names the file" "$err" \
	"error: cannot open configuration file $WORK/missing.conf"
cp "$WORK/static.conf" "$WORK/open.conf"
chmod 644 "$WORK/open.conf"
open=$WORK/open
nss_db "$open" "config=$WORK/open.conf"
err=$(client "$open" key pkcs11:token=west-static 2>&1)
same "configuration readable by others: no token (exit 3)" $? 3
has "... and the log says chmod 600" "$err" "fix: chmod 600 $WORK/open.conf"
nss_db "$WORK/typo" "conifg=$WORK/static.conf"
err=$(client "$WORK/typo" tokens kmstore 2>&1)
has "unknown module parameter: named in the log" "$err" "unknown parameter 'conifg'"
# start_waiter DB TOKEN: in the background, the client looks the token
# up every 0.1 s, as pluto does at each IKE SA, until it is there (40 s at
# most; output in DB.out and DB.err); returns once it has missed it.
start_waiter() {
	client "$1" wait-token "pkcs11:token=$2" 40 >"$1.out" 2>"$1.err" &
	waiter=$!
	for _ in $(seq 100); do grep -q '^missed' "$1.out" && break; sleep 0.1; done
}

# A configuration written while the application runs (its time an hour
# ahead): its profiles come as tokens, without a restart. (A profile
# added by a kmstored reload: tests/daemon.)
late=$WORK/late
nss_db "$late" "config=$WORK/late.conf log=stderr"
start_waiter "$late" second
cp -p "$WORK/static.conf" "$WORK/late.conf"
touch -m -d '+1 hour' "$WORK/late.conf" # copied from a host whose clock is ahead
wait "$waiter"
same "a configuration written after C_Initialize: its tokens come" $? 0
has "... with its key" "$(cat "$WORK/late.out")" "^key=$(hex_of "$WORK/second.key")$"
err=$(cat "$WORK/late.err")
has "... the module said why it had none at first" "$err" \
	"cannot open configuration file $WORK/late.conf.*; the module has no tokens yet"
has "... and where each went" "$err" "profile 'second' is new in $WORK/late.conf: its token is in slot 2"
# A file still being written: a profile is taken only once two looks 2 s
# apart saw the file unchanged. Here a writer keeps a profile with a cut
# key-id in the file, rewriting it every 0.2 s for 7 s (the module's first
# look is 5 s after its start), and then writes the whole.
half=$WORK/half
sed -n '/^\[west-static\]/,/^$/p' "$WORK/static.conf" >"$WORK/half.conf"
chmod 600 "$WORK/half.conf"
nss_db "$half" "config=$WORK/half.conf log=stderr"
start_waiter "$half" second
for _ in $(seq 35); do
	{ sed -n '/^\[west-static\]/,/^$/p' "$WORK/static.conf"
	  printf '[second]\ntype = static\nkey = file:%s\nkey-id = PPK_I' "$WORK/second.key"; } >"$WORK/half.conf"
	sleep 0.2
done
cat "$WORK/static.conf" >"$WORK/half.conf"
wait "$waiter"
same "a file written in pieces: the profile comes" $? 0
same "... as the whole file has it, not as a piece had it" "$(sed -n 's/^id=//p' "$WORK/half.out")" PPK_ID_2
# Slots run out: with one empty slot, of two profiles added the first is
# a token, and the module says which is left out and why.
full=$WORK/full
sed -n '/^\[west-static\]/,/^$/p' "$WORK/static.conf" >"$WORK/full.conf"
chmod 600 "$WORK/full.conf"
nss_db "$full" "config=$WORK/full.conf log=stderr empty-slots=1"
start_waiter "$full" second
{ cat "$WORK/static.conf"; printf '\n[third]\ntype = static\nkey-id = PPK_ID_3\nkey = file:%s\n' "$WORK/second.key"; } >"$WORK/full.conf"
wait "$waiter"
same "empty-slots=1, two profiles added: the first is a token" $? 0
err=$(cat "$WORK/full.err")
has "... the module says that was the last empty slot" "$err" "that was the last of the module's 1 empty slots"
has "... and which profile is left out" "$err" \
	"1 new profile\(s\) in $WORK/full.conf not made tokens: no empty slot is left \(empty-slots=1\) for 'third'"
quiet=$WORK/quiet
nss_db "$quiet" "config=$WORK/missing.conf log=none"
err=$(client "$quiet" tokens kmstore 2>&1)
same "log=none: nothing on stderr" "$err" "" empty-ok

# The registration helper (kmstore-nss-register), as for libreswan.
register=$(dirname "$0")/../../../scripts/nss-register.sh
reg=$WORK/reg
tool bash "$register" --dbdir "$reg" --create --module "$MODULE" \
	--config "$WORK/static.conf" --max-keys lots >/dev/null 2>&1
same "--create with a value the module refuses: refused (exit 1)" $? 1
same "... and no database made" "$(ls -A "$reg" 2>/dev/null || true)" "" empty-ok
# ... nor when the registration fails after the database is made (here a
# modutil that refuses to add the module to it).
mkdir -p "$WORK/failing-bin"
cat >"$WORK/failing-bin/modutil" <<EOF
#!/bin/sh
case " \$* " in *" -dbdir sql:$WORK/reg2 -add "*) echo "modutil: refused here" >&2; exit 1 ;; esac
exec $(command -v modutil) "\$@"
EOF
chmod 755 "$WORK/failing-bin/modutil"
err=$(PATH="$WORK/failing-bin:$PATH" tool bash "$register" --dbdir "$WORK/reg2" --create \
	--module "$MODULE" --config "$WORK/static.conf" 2>&1)
same "--create, then modutil -add fails: refused (exit 1)" $? 1
has "... saying the database made is removed again" "$err" "the database made for it is removed again"
same "... and it is" "$(ls -A "$WORK/reg2" 2>/dev/null || true)" "" empty-ok
out=$(tool bash "$register" --dbdir "$reg" --create --module "$MODULE" \
	--config "$WORK/static.conf" --log stderr --max-keys 8 --empty-slots 4 2>&1)
same "nss-register.sh --create registers the module" $? 0
has "... with the parameter string" "$(cat "$reg/pkcs11.txt")" \
	"^parameters=config=$WORK/static.conf log=stderr max-keys=8 empty-slots=4$"
has "... four empty slots" "$(tool modutil -dbdir "sql:$reg" -list kmstore 2>/dev/null | grep -c 'Slot: kmstore slot for a new profile')" "^4$"
has "... and NSS sees the tokens" "$(client "$reg" tokens kmstore)" \
	"^token=second model=static$"
tool bash "$register" --dbdir "$reg" --module "$MODULE" \
	--config "$WORK/static.conf" >/dev/null 2>&1
same "registering again replaces the entry" \
	"$(grep -c '^name=kmstore$' "$reg/pkcs11.txt")" 1

# Values the module refuses, or that would add words to its parameter
# string: refused before the database is touched, the value named, the
# working registration (two tokens) kept. Each case starts from that
# registration, made by modutil itself.
params_now() { # the kmstore module's parameter string in $reg
	awk '/^name=/ { k = $0 == "name=kmstore" } k && sub(/^parameters=/, "")' "$reg/pkcs11.txt"
}
tokens_now() { client "$reg" tokens kmstore 2>/dev/null | grep -c '^token='; }
good_params=$(params_now)
reset_reg() {
	tool modutil -dbdir "sql:$reg" -delete kmstore -force >/dev/null 2>&1
	tool modutil -dbdir "sql:$reg" -add kmstore -libfile "$MODULE" -string "$good_params" \
		-force >/dev/null 2>&1
}
reg_run() { # ARGS...: the script on $reg with the module built here
	tool bash "$register" --dbdir "$reg" --module "$MODULE" "$@"
}
refused() { # WHAT PATTERN ARGS...: exit 1, the message matches, nothing changed
	local what=$1 pattern=$2 err rc
	shift 2
	reset_reg
	err=$(reg_run "$@" 2>&1 >/dev/null)
	rc=$?
	same "$what: refused (exit 1)" "$rc" 1
	has "... naming it" "$err" "$pattern"
	same "... the registration unchanged" "$(params_now)" "$good_params"
	same "... its tokens still there" "$(tokens_now)" 2
}
conf=$WORK/static.conf
refused "--log-level verbose" "refuses --log-level verbose" --config "$conf" --log-level verbose
refused "--log sylog" "refuses --log sylog" --config "$conf" --log sylog
refused "--max-keys lots" "refuses --max-keys lots" --config "$conf" --max-keys lots
refused "--max-keys 0" "refuses --max-keys 0" --config "$conf" --max-keys 0
refused "--empty-slots 2000" "refuses --empty-slots 2000" --config "$conf" --empty-slots 2000
refused "--log 'stderr config=/nonexistent' (a blank adds a parameter)" \
	"--log 'stderr config=/nonexistent': no blanks" --config "$conf" --log 'stderr config=/nonexistent'
refused "--log-level with a blank" "--log-level 'info log=none': no blanks" \
	--config "$conf" --log-level 'info log=none'
refused "--max-keys with a blank" "--max-keys '8 ': no blanks" --config "$conf" --max-keys '8 '
refused "--log with a quote" "--log 'stderr\"': no blanks, quotes" --config "$conf" --log 'stderr"'
refused "--max-keys with a newline" "--max-keys '8" --config "$conf" --max-keys $'8\nlog=none'
ln -s "$conf" "$WORK/with blank.conf"
refused "--config with a blank" "--config '$WORK/with blank.conf': no blanks" --config "$WORK/with blank.conf"
refused "--daemon with a quote" "--daemon '/run/a\"b': no blanks" --daemon '/run/a"b'
refused "--daemon, a relative path" "--daemon run/kmstored.sock: the socket must be an absolute path" \
	--daemon run/kmstored.sock
refused "--daemon where no kmstored answers" "kmstored at $WORK/no.sock: cannot connect" \
	--daemon "$WORK/no.sock"
refused "--config and --daemon" "--config or --daemon, not both" --config "$conf" --daemon "$WORK/no.sock"
refused "--config, a file that does not load" "cannot open configuration file $WORK/missing.conf" \
	--config "$WORK/missing.conf"
refused "--name with a quote" "--name 'a\"b': no quotes" --config "$conf" --name 'a"b'
refused "--module, not a PKCS#11 module" "$conf does not load as a PKCS#11 module" \
	--config "$conf" --module "$conf"
other=''
for f in /usr/lib/*/pkcs11/p11-kit-trust.so /usr/lib/*/p11-kit-proxy.so; do
	[ -f "$f" ] && { other=$f; break; }
done
if [ -n "$other" ]; then
	refused "--module, another PKCS#11 module ($(basename "$other"))" \
		"$other is not kmstore's PKCS#11 module" --config "$conf" --module "$other"
else
	echo "# no other PKCS#11 module (p11-kit) installed: --module check skipped"
fi

# Each option that takes a value, without one: a usage error (exit 2)
# that names it, at the end of the line or before another option.
for opt in --dbdir --name --module --config --daemon --log --log-level --max-keys --empty-slots; do
	err=$(tool bash "$register" "$opt" 2>&1)
	same "$opt without a value: exit 2" $? 2
	has "... '$opt needs a value'" "$err" "^nss-register.sh: $opt needs a value"
	err=$(tool bash "$register" "$opt" --force 2>&1)
	same "$opt followed by another option: exit 2" $? 2
	has "... '$opt needs a value'" "$err" "$opt needs a value"
done
err=$(tool bash "$register" --log '' 2>&1)
same "--log '': exit 2" $? 2
has "... '--log needs a value'" "$err" "--log needs a value"

# If the module does not come up in the database itself as it did in the
# scratch one (here: modutil -add fails there), the previous registration
# is put back.
mkdir -p "$WORK/shim"
cat >"$WORK/shim/modutil" <<SHIM
#!/bin/sh
case " \$* " in *" -dbdir sql:$reg -add "*) echo "shim: -add refused" >&2; exit 1 ;; esac
PATH=$PATH exec modutil "\$@"
SHIM
chmod +x "$WORK/shim/modutil"
reset_reg
err=$(PATH=$WORK/shim:$PATH reg_run --config "$conf" --log-level info 2>&1 >/dev/null)
same "the add fails after the old registration was deleted: exit 1" $? 1
has "... and says the previous registration is back" "$err" \
	"modutil -add failed .*the previous registration is back"
same "... it is: the parameters" "$(params_now)" "$good_params"
same "... and its tokens" "$(tokens_now)" 2

# A valid change replaces the registration; what the registration being
# replaced says while it is deleted is not printed.
nss_db "$WORK/noisy" "config=$conf log=stderr log-level=verbose"
err=$(tool bash "$register" --dbdir "$WORK/noisy" --module "$MODULE" --config "$conf" \
	--log-level info 2>&1 >/dev/null)
same "replacing a registration with bad parameters: exit 0" $? 0
same "... without the old one's complaints" "$(grep -c "bad value 'verbose'" <<<"$err")" 0
has "... now with tokens" "$(client "$WORK/noisy" tokens kmstore)" "^token=west-static model=static$"
reg_run --config "$conf" --log-level error >/dev/null 2>&1
same "--log-level error: registered" $? 0
has "... with the new parameter string" "$(params_now)" "^config=$conf log=auto log-level=error$"
same "... and the tokens" "$(tokens_now)" 2
out=$(reg_run --config "$WORK/missing.conf" --force 2>&1)
same "--force registers a configuration that does not load" $? 0
has "... saying why there will be no tokens" "$out" "cannot open configuration file $WORK/missing.conf"
has "... with that parameter string" "$(params_now)" "^config=$WORK/missing.conf log=auto$"
reg_run --config "$conf" >/dev/null 2>&1
has "--list shows the module and its tokens" "$(tool bash "$register" --dbdir "$reg" --list 2>&1)" \
	"Token Name: west-static"

tool bash "$register" --dbdir "$reg" --remove >/dev/null 2>&1
same "nss-register.sh --remove" "$(grep -c '^name=kmstore$' "$reg/pkcs11.txt")" 0
out=$(tool bash "$register" --dbdir "$reg" --remove 2>&1)
same "--remove again: exit 0" $? 0
has "... nothing to remove" "$out" "no module 'kmstore' in $reg: nothing to remove"
out=$(tool bash "$register" --dbdir "$WORK/nodb" --remove 2>&1)
same "--remove without a database: exit 0" $? 0
has "... nothing to remove" "$out" "no NSS database in $WORK/nodb: nothing to remove$"
out=$(tool bash "$register" --dbdir "$WORK/nodb" --list 2>&1)
same "--list without a database: exit 1" $? 1
has "... says so, without the advice to make one" "$out" "no NSS database in $WORK/nodb$"
[ ! -e "$WORK/nodb" ]
same "... and neither makes one" $? 0

# Threads (NSS passes CKF_OS_LOCKING_OK).
out=$(client "$db" threads pkcs11:token=west-static 8 50)
has "8 threads generating and finding keys through NSS" "$out" \
	"rounds=400 failures=0"
if [ -n "${P11_VALGRIND:-}" ]; then
	out=$("$P11_VALGRIND" --tool=helgrind -q --error-exitcode=9 \
		--suppressions="$(dirname "$0")/../../../tests/lib/helgrind.supp" \
		"$NSS_CLIENT" "$db" threads pkcs11:token=west-static 4 10 2>&1)
	same "... 4 threads under valgrind's helgrind: no data race reported" $? 0
	has "... and all rounds right" "$out" "rounds=40 failures=0"
fi

# NSS FIPS mode: NSS refuses to import a foreign key into its FIPS
# softoken; an application that reads the value and derives the key in
# (as libreswan's symkey_from_bytes does) gets the same HMAC.
fips=$WORK/fips
nss_db "$fips" "config=$WORK/static.conf"
if echo | tool modutil -dbdir "sql:$fips" -fips true -force >/dev/null 2>&1; then
	want=$(printf 'kmstore PPK test' | openssl dgst -sha256 -mac HMAC \
		-macopt "hexkey:$key_hex" | sed 's/^.*= //')
	out=$(client "$fips" fips-hmac 'pkcs11:token=west-static;id=PPK_ID_1' "$data" 2>&1)
	same "FIPS mode: NSS is in FIPS mode" "$(field "$out" fips)" 1
	same "FIPS mode: the key is found, NSS refuses to move it" \
		"$(field "$out" direct)" refused
	same "FIPS mode: imported by derivation, the HMAC is right" \
		"$(field "$out" hmac)" "$want"
else
	not_ok "modutil -fips true"
fi

# symkeyutil -K makes a key and then names it (C_SetAttributeValue on
# CKA_LABEL); on a QKD token a refusal would waste the key it consumed.
if command -v symkeyutil >/dev/null; then
	out=$(tool symkeyutil -K -n my-ppk -t generic -s 32 -d "sql:$db" -h west-static 2>&1)
	same "symkeyutil -K: a key for use now, given a label" "$?" 0
	has "... which it then reads back (and prints the key: see docs/pkcs11.md)" \
		"$out" "^my-ppk +32 "
else
	echo "# symkeyutil (libnss3-tools) not installed: skipped"
fi

finish
