#!/usr/bin/env bash
# test_daemon.sh - kmstored and its clients, against two kme-sim KMEs:
#   - every kmstore command gives the same output, errors and exit status
#     through kmstored as in-process; keys taken through kmstored at one
#     site are the ones the other site finds in-process, and back;
#   - a client configuration ("daemon = PATH") moves a process there;
#   - access rules by SO_PEERCRED: root only by default; allow-users and
#     allow-groups (primary and supplementary groups); refusals logged;
#     a client sees only the profiles open to it;
#   - a key file whose mode changed under kmstored: every request fails,
#     logged and counted (not taken for an access refusal);
#   - reload (kmstore reload, SIGHUP): new profiles served, a bad file
#     refused with the reason and the running configuration kept, clients
#     kept connected;
#   - faults: kmstored not running, killed (-9) mid-request, stopped
#     (SIGSTOP), restarted: a clear error in bounded time, and a long-lived
#     client recovers without being restarted; a KME request that hangs
#     does not hold up other clients;
#   - the protocol: garbage, another version, oversized or unknown fields,
#     a stalled request: a clear error reply and a closed connection, and
#     kmstored keeps serving;
#   - floods and limits: refusals a user causes are logged a few times,
#     then counted; a user at its connection cap that keeps connecting
#     does not crowd root out; out of descriptors (EMFILE), kmstored
#     neither spins nor floods its log, and serves again after;
#   - start-up: a second kmstored on a live socket, a stale socket, a bad
#     or client configuration, detaching only when ready, systemd's
#     Type=notify (READY, RELOADING, STOPPING), a dedicated user;
#   - the OpenSSL provider (kmstore-daemon), the engine (DAEMON) and the
#     PKCS#11 module (daemon=) through kmstored;
#   - the systemd unit: systemd-analyze verify and security.
# Environment: KMSTORE, KMSTORED, KME_SIM, KME_SIM_PKI, DAEMON_CLIENT,
# KMSTORED_UNIT; optional as tests/faults/faces.sh: OPENSSL,
# KMSTORE_PROVIDER_DIR, KMSTORE_ENGINE_DIR, P11_MODULE, NSS_CLIENT,
# KMSTORE_TEST_PRELOAD.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/tap.sh"
. "$here/../lib/kme-env.sh"
. "$here/../lib/kmstored-env.sh"
. "$here/../lib/daemon-client.sh"
: "${KMSTORE:?}" "${KMSTORED:?}" "${KME_SIM:?}" "${KME_SIM_PKI:?}" "${DAEMON_CLIENT:?}"

work=$(mktemp -d /tmp/test-daemon.XXXXXX)
chmod 755 "$work" # nobody's clients reach the sockets in here
cleanup() {
	set +e
	local s
	for s in "$work"/*.sock "$work"/run/*.sock; do kmstored_stop "$s" KILL; done
	client_stop
	[ -z "${hang_pid:-}" ] || kill "$hang_pid" 2>/dev/null
	[ -z "${flood_pid:-}" ] || kill "$flood_pid" 2>/dev/null
	[ -z "${hold_pid:-}" ] || kill "$hold_pid" 2>/dev/null
	[ -z "${late_pid:-}" ] || kill "$late_pid" 2>/dev/null
	[ -z "${token_pid:-}" ] || kill "$token_pid" 2>/dev/null
	kme_env_stop
	[ -n "${DAEMON_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

export KME_TIMEOUT=2
kme_env_start "$work/lab" "$KME_SIM" "$KME_SIM_PKI" >/dev/null
W=$work/lab/west.conf E=$work/lab/east.conf
SW=$work/west.sock SE=$work/east.sock
kmstored_start "$SW" "$W"
kmstored_start "$SE" "$E"
unset KMSTORE_CONF
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2" 2>/dev/null || echo '(none)'; }

# --- the same answers in both modes -------------------------------------
# same ARGS...: kmstore -c west.conf ARGS vs kmstore --daemon west.sock ARGS
same() {
	local rc1 out1 err1
	run "$KMSTORE" -c "$W" "$@"
	rc1=$RUN_RC out1=$RUN_OUT err1=$RUN_ERR
	run "$KMSTORE" --daemon "$SW" "$@"
	if [[ $rc1 == "$RUN_RC" && $out1 == "$RUN_OUT" && $err1 == "$RUN_ERR" ]]; then
		tap_ok "kmstore $* (exit $rc1): the same through kmstored"
	else
		tap_not_ok "kmstore $*: the same through kmstored" \
			"in-process: exit $rc1, stdout: $out1, stderr: $err1" \
			"kmstored:   exit $RUN_RC, stdout: $RUN_OUT, stderr: $RUN_ERR"
	fi
}
same profiles
same --json profiles
same status static
same --json status static
same status qkd
same --json status qkd
same key static
same --json key static
same key static --reveal hex
same --json key static --reveal base64
same key 'kmstore:profile=static;key-id=STATIC_PPK_1'
same check
same --json check
same key nope
same --json key nope
same status nope
same key static --key-id NOPE
same key qkd --key-id 'bad id'
same key 'kmstore:profile=static;kid=1'

run "$KMSTORE" --daemon "$SW" --json key qkd
expect_rc 0 "west's kmstored: a new QKD key (enc_keys at KME_A)"
id=$(json "$RUN_OUT" key_id) kcv=$(json "$RUN_OUT" check_value)
run "$KMSTORE" -c "$E" --json key qkd --key-id "$id"
expect_eq "$kcv" "$(json "$RUN_OUT" check_value)" "east in-process finds that key: the same check value ($kcv)"
run "$KMSTORE" -c "$W" --json key qkd
id=$(json "$RUN_OUT" key_id) kcv=$(json "$RUN_OUT" check_value)
run "$KMSTORE" --daemon "$SE" --json key qkd --key-id "$id"
expect_eq "$kcv" "$(json "$RUN_OUT" check_value)" "east's kmstored finds west's in-process key by its ID"
run "$KMSTORE" --daemon "$SE" key qkd --key-id "$id"
expect_rc 5 "through kmstored too, a QKD key is delivered once"
run "$KMSTORE" -c "$W" --daemon "$SW" profiles
expect_rc 2 "--config and --daemon together: a usage error"

# --- a client configuration ----------------------------------------------
printf '# this host'"'"'s profiles are kmstored'"'"'s\ndaemon = %s\n' "$SW" >"$work/client.conf"
chmod 600 "$work/client.conf"
run "$KMSTORE" -c "$W" profiles
want=$RUN_OUT
KMSTORE_CONF=$work/client.conf run "$KMSTORE" profiles
expect_eq "$want" "$RUN_OUT" "KMSTORE_CONF naming a client configuration (daemon = PATH): kmstored's profiles"
run "$KMSTORE" -c "$work/client.conf" key static
expect_rc 0 "kmstore -c CLIENT.conf key static: through kmstored"
# reload and metrics too: with such a file every command asks kmstored.
KMSTORE_CONF=$work/client.conf run "$KMSTORE" metrics
expect_rc 0 "KMSTORE_CONF naming a client configuration: kmstore metrics asks its kmstored"
expect_in "# TYPE kmstore_profiles gauge" "$RUN_OUT" "... and prints its metrics"
# Output that cannot be written: exit 10 and one line saying why, through
# kmstored as in-process (tests/cli). The metrics are over stdio's buffer.
for args in metrics "check" "status static"; do
	# shellcheck disable=SC2086 # the words of args are arguments
	run sh -c 'exec "$@" >/dev/full' sh "$KMSTORE" --daemon "$SW" $args
	expect_rc 10 "kmstore --daemon $args >/dev/full exits 10"
	expect_eq "kmstore: cannot write to standard output: No space left on device" \
		"$(grep -v '^kmstore: warning: ' <<<"$RUN_ERR")" "... saying so once, with the reason"
done
run "$KMSTORE" -c "$work/client.conf" reload
expect_rc 0 "kmstore -c CLIENT.conf reload: its kmstored reloads"
expect_match "reloaded .*west.conf: [0-9]+ profiles" "$RUN_OUT" "... and says what it loaded"
run "$KMSTORE" -c "$W" reload
expect_rc 2 "kmstore -c FILE-OF-PROFILES reload: a usage error"
expect_in "is not a client configuration (daemon = SOCKET): give --daemon SOCKET" "$RUN_ERR" "... saying why"
printf 'daemon = %s\n[x]\ntype = static\n' "$SW" >"$work/mixed.conf"
chmod 600 "$work/mixed.conf"
run "$KMSTORE" -c "$work/mixed.conf" profiles
expect_rc 3 "a client configuration with a profile is refused"
expect_in "mixed.conf:2: a client configuration (daemon = ..., line 1) has no profiles" "$RUN_ERR" "... naming the line"
printf 'daemon = run/kmstored.sock\n' >"$work/relative.conf"
chmod 600 "$work/relative.conf"
run "$KMSTORE" -c "$work/relative.conf" profiles
expect_in "relative.conf:1: daemon: the socket must be an absolute path" "$RUN_ERR" "a relative daemon socket is refused"

# --- access rules ---------------------------------------------------------
run as_nobody "$KMSTORE" --daemon "$SW" profiles
expect_rc 4 "nobody, no allow-*: refused (exit 4)"
expect_in "no profile is open to user nobody (uid 65534)" "$RUN_ERR" "... with a clear error"
expect_in "refused nobody (uid 65534, pid " "$(cat "$SW.log")" "kmstored logs who was refused"
cp "$W" "$work/acl.conf"
# qkd is the first section, static the last
sed -i '/^\[static\]/a allow-users = nobody' "$work/acl.conf"
kmstored_stop "$SW"
kmstored_start "$SW" "$work/acl.conf"
run as_nobody "$KMSTORE" --daemon "$SW" --json profiles
expect_rc 0 "allow-users = nobody on static: nobody lists profiles"
expect_eq "static" "$(python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.loads(sys.argv[1])["profiles"]))' "$RUN_OUT")" \
	"... and sees only static"
expect_not_in "SAE_A" "$RUN_OUT" "... learning nothing of qkd's settings"
run as_nobody "$KMSTORE" --daemon "$SW" key static
expect_rc 0 "nobody gets static's key"
run as_nobody "$KMSTORE" --daemon "$SW" key static
run as_nobody "$DAEMON_CLIENT" "$SW" <<<"key qkd"
expect_match "^error 4 .*profile 'qkd' is not open to user nobody \(uid 65534\)" "$(tail -n 1 <<<"$RUN_OUT")" "nobody asking for qkd's key: refused, with the reason"
expect_in "refused nobody (uid 65534, pid" "$(grep "profile 'qkd' is not open" "$SW.log")" "kmstored logs the refusal"
# A name that is no profile gets the same answer as one not open: which
# names exist is not nobody's to learn.
run as_nobody "$DAEMON_CLIENT" "$SW" <<<"key made-up-1"
expect_match "^error 4 .*profile 'made-up-1' is not open to user nobody \(uid 65534\)" "$(tail -n 1 <<<"$RUN_OUT")" \
	"nobody asking for a profile that does not exist: the same answer as for one not open to it"
run as_nobody "$KMSTORE" --daemon "$SW" status qkd
expect_rc 4 "nobody asking for qkd's status: refused"
run as_nobody "$KMSTORE" --daemon "$SW" reload
expect_rc 4 "nobody asking for a reload: refused"
expect_in "a reload is for root" "$RUN_ERR" "... saying who may"
sed -i '/^\[qkd\]/a allow-groups = nogroup' "$work/acl.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "reload with allow-groups = nogroup on qkd"
run as_nobody "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "nobody (primary group nogroup) gets qkd's key"
run setpriv --reuid=65534 --regid=100 --groups=65534 "$KMSTORE" --daemon "$SW" key qkd
expect_rc 0 "a client with nogroup as a supplementary group only gets qkd's key (SO_PEERGROUPS)"
run setpriv --reuid=65534 --regid=100 --clear-groups "$KMSTORE" --daemon "$SW" key qkd
expect_rc 4 "... and without it, not"
sed -i 's/^allow-users = nobody/allow-users = nobody no-such-user-kms/' "$work/acl.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 3 "allow-users naming a user that does not exist: the reload is refused"
expect_match "acl.conf:[0-9]+: profile 'static': allow-users: no user 'no-such-user-kms' on this system" "$RUN_ERR" "... naming file, line, profile and user"
expect_in "the configuration loaded at" "$RUN_ERR" "... and saying the running one stays"
# (it would try for 60 s: SIGTERM after 3 s ends the wait)
run_term_after 3 "$KMSTORED" --config "$work/acl.conf" --socket "$work/acl-start.sock" --foreground
expect_in "no user 'no-such-user-kms' on this system; trying again every 2 s" "$RUN_ERR" \
	"kmstored started with it waits for the lookup (it may pass later: sssd not up yet), not 78 at once"
expect_rc 0 "... SIGTERM ends the wait: exit 0, a stop, not a failure"
expect_in "stopped before it served" "$RUN_ERR" "... and says so"
# The warnings about the file (the library's of a weak key, kmstored's of
# an expired certificate) are told once, not at each try of the wait
# (tries at 0, 2 and 4 s).
kme_env_dated_cert "$work/expired.crt" 20200101000000Z 20210101000000Z
sed "s|^certificate .*|certificate = $work/expired.crt|" "$work/acl.conf" >"$work/acl-weak.conf"
chmod 600 "$work/acl-weak.conf"
printf '\n[weak]\ntype = static\nkey-id = W\nkey = hex:00112233445566778899aabbccddeeff\n' >>"$work/acl-weak.conf"
run_term_after 5 "$KMSTORED" --config "$work/acl-weak.conf" --socket "$work/acl-start.sock" --foreground
expect_eq 1 "$(grep -c "profile 'weak': the key is only 128 bits" <<<"$RUN_ERR" || true)" \
	"a weak key's warning, once in a start that waits for a lookup"
expect_eq 1 "$(grep -c "expired.crt expired on" <<<"$RUN_ERR" || true)" \
	"... and an expired certificate's, once too"
# An error of the file's in a later profile is told at once, not hidden
# behind the wait.
cp -p "$work/acl.conf" "$work/acl-broken.conf"
printf '\n[broken]\ntype = static\nkey-id = B\nkey = file:%s\n' "$work/no-such.key" >>"$work/acl-broken.conf"
run_term_after 20 "$KMSTORED" --config "$work/acl-broken.conf" --socket "$work/acl-start.sock" --foreground
expect_rc 78 "the lookup that may pass, then a profile naming a missing key file: exit 78 at once"
expect_in "no-such.key" "$RUN_ERR" "... telling the file's error"
expect_not_in "trying again" "$RUN_ERR" "... without waiting on the lookup"
run as_nobody "$KMSTORE" --daemon "$SW" key static
expect_rc 0 "the configuration in force is unchanged: nobody still gets static's key"
kmstored_stop "$SW"
kmstored_start "$SW" "$W"

# --- user names: looked up when wanted, off the accepting thread ----------------
# A client's name is for messages and the log only (access goes by numbers,
# its groups come from the kernel: above, the same user with and without
# nogroup, a moment apart). It may come from a directory service that takes
# seconds (LDAP, sssd), and clients reconnect often: kmstored looks it up
# on the client's own thread when a line needs it, and keeps it a minute.
# nss_count.c, preloaded, notes each lookup and the thread that made it.
SN=$work/names.sock
sed '/^\[static\]/a allow-users = nobody' "$W" >"$work/names.conf"
chmod 600 "$work/names.conf"
: >"$work/nss.log"
kmstored_start "$SN" "$work/names.conf" env NSS_COUNT_LOG="$work/nss.log" \
	LD_PRELOAD="${KMSTORE_TEST_PRELOAD:+$KMSTORE_TEST_PRELOAD }${NSS_COUNT:?}"
expect_in "getpwnam_r nobody main" "$(cat "$work/nss.log" 2>/dev/null)" \
	"the lookups are counted (kmstored resolves allow-users = nobody at start-up)"
lookups() { # [REGEX]: kmstored's lookups since the mark, those matching
	tail -n +$((mark + 1)) "$work/nss.log" | grep -c -- "${1:-.}" || true
}
mark=$(wc -l <"$work/nss.log")
for _ in $(seq 20); do as_nobody "$KMSTORE" --daemon "$SN" profiles >/dev/null; done
expect_eq 0 "$(lookups)" "20 connections of nobody's listing profiles: no user or group lookup (nothing needed the name)"
mark=$(wc -l <"$work/nss.log")
for _ in $(seq 20); do as_nobody "$KMSTORE" --daemon "$SN" key static >/dev/null; done
# each line is written once its reply is: the last may come after the client ends
keys_logged() { grep -c "nobody (uid 65534, pid [0-9]*): profile 'static': key STATIC_PPK_1 for use now" "$SN.log" || true; }
all_logged() { [ "$(keys_logged)" -ge 20 ]; }
wait_for 10 all_logged || true
expect_eq 20 "$(keys_logged)" "20 connections of nobody's taking a key: each key logged with the user's name"
n=$(lookups "^getpwuid_r 65534 ")
[[ $n -ge 1 && $n -le 2 ]] && tap_ok "... looked up once for all 20 ($n; twice if a minute passed)" ||
	tap_not_ok "... nobody's name looked up once for all 20 connections (twice if a minute passed)" "$n lookups" "$(tail -n 3 "$work/nss.log")"
expect_eq 0 "$(lookups " main$")" "... none of them on the thread that accepts connections"
kmstored_stop "$SN"

# kmstore check looks allow-users and allow-groups up with kmstored's own
# lookup (the library's, one for both): a name as kmstored does, a number
# not at all.
printf '[n]\ntype = static\nkey-id = N_1\nkey = hex:%s\nallow-users = 4242424 nobody\nallow-groups = 4242425\n' \
	"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >"$work/numbers.conf"
chmod 600 "$work/numbers.conf"
mark=$(wc -l <"$work/nss.log")
run env NSS_COUNT_LOG="$work/nss.log" \
	LD_PRELOAD="${KMSTORE_TEST_PRELOAD:+$KMSTORE_TEST_PRELOAD }${NSS_COUNT:?}" \
	"$KMSTORE" -c "$work/numbers.conf" check
expect_rc 0 "kmstore check of allow-users = 4242424 nobody, allow-groups = 4242425"
expect_eq 1 "$(lookups "^getpwnam_r nobody ")" "... looks up the name nobody once"
expect_eq 0 "$(lookups "4242")" "... and neither number"

# --- access rules: large entries and failed lookups (LDAP, sssd) ------------
# A group of thousands of members is a line of tens of KiB; a lookup may fail
# (sssd not up yet), which is not "no such group". kmstored runs in a mount
# namespace of its own, with copies of /etc/group and /etc/passwd bound over
# the real ones; the clients stay outside (their groups come from the kernel).
nss=$work/nss
mkdir -p "$nss"
cp /etc/group "$nss/group"
cp /etc/passwd "$nss/passwd"
printf 'passwd: files\ngroup: files\n' >"$nss/nsswitch.conf"
# kmsbiggrp: 2000 members and nobody, a 20 KB line; kmshugegrp: over 1 MiB
{ printf 'kmsbiggrp:x:4242:'; printf 'kmsmember%04d,' $(seq 2000); echo nobody; } >>"$nss/group"
{ printf 'kmshugegrp:x:4244:'; printf 'kmsmember%06d,' $(seq 80000); echo nobody; } >>"$nss/group"
# kmsbiguser: an entry of 6 KB (its GECOS field)
printf 'kmsbiguser:x:4243:4243:%s:/nonexistent:/usr/sbin/nologin\n' "$(head -c 6000 /dev/zero | tr '\0' x)" >>"$nss/passwd"
# in_nss CMD...: CMD in its own mount namespace with those files over /etc's
in_nss=(unshare -m sh -c 'for f in group passwd nsswitch.conf; do mount --bind "$0/$f" "/etc/$f" || exit 125; done; exec "$@"' "$nss")
if "${in_nss[@]}" true 2>/dev/null; then
	SB=$work/big.sock
	cp "$W" "$work/big.conf"
	sed -i '/^\[qkd\]/a allow-groups = kmsbiggrp' "$work/big.conf"
	sed -i '/^\[static\]/a allow-users = kmsbiguser' "$work/big.conf"
	if kmstored_start "$SB" "$work/big.conf" "${in_nss[@]}"; then
		tap_ok "allow-groups naming a group of 2000 members (a 20 KB line), allow-users a user of 6 KB: kmstored starts"
	else
		tap_not_ok "allow-groups naming a group of 2000 members (a 20 KB line), allow-users a user of 6 KB: kmstored starts" "$(cat "$SB.log")"
	fi
	run setpriv --reuid=65534 --regid=65534 --groups=4242 "$KMSTORE" --daemon "$SB" key qkd
	expect_rc 0 "a member of the group of 2000 (nobody) gets qkd's key"
	run setpriv --reuid=4243 --regid=4243 --clear-groups "$KMSTORE" --daemon "$SB" key static
	expect_rc 0 "the user of 6 KB gets static's key"
	run setpriv --reuid=4243 --regid=4243 --clear-groups "$KMSTORE" --daemon "$SB" key qkd
	expect_in "profile 'qkd' is not open to user kmsbiguser (uid 4243)" "$RUN_ERR" "... is refused qkd's, named by kmstored (getpwuid_r of a 6 KB entry)"
	kmstored_stop "$SB"
	sed -i 's/^allow-groups = kmsbiggrp/allow-groups = kmshugegrp/' "$work/big.conf"
	run timeout 60 "${in_nss[@]}" "$KMSTORED" --config "$work/big.conf" --socket "$SB" --foreground
	expect_match "big.conf:[0-9]+: profile 'qkd': allow-groups: cannot look up group 'kmshugegrp': its entry is over 1 MiB \(give its number instead\)" \
		"$RUN_ERR" "a group of over 1 MiB: kmstored does not start, saying why"
	expect_rc 78 "... at once, exit 78: waiting would not mend it"
	# a lookup that fails: here /etc/group unreadable to kmstored's user
	printf '[s]\ntype = static\nkey-id = S_1\nkey = hex:%s\nallow-groups = kmsbiggrp\n' \
		"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >"$nss/fail.conf"
	chown nobody "$nss/fail.conf"
	chmod 600 "$nss/fail.conf"
	chmod 000 "$nss/group"
	# (it would try for 60 s: SIGTERM after 3 s ends the wait)
	run_term_after 3 "${in_nss[@]}" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$KMSTORED" --config "$nss/fail.conf" --socket "$nss/fail.sock" --foreground
	chmod 644 "$nss/group"
	expect_match "fail.conf:5: profile 's': allow-groups: cannot look up group 'kmsbiggrp': Permission denied; trying again every 2 s for 60 s" \
		"$RUN_ERR" "allow-groups when the group database cannot be read: kmstored waits, saying the lookup failed, not that there is no such group"
	expect_rc 0 "... until SIGTERM (exit 0)"
	# sssd up after kmstored at boot: a group that appears after the start
	# (in files of its own, without the group of over 1 MiB, which fails
	# every lookup behind it). kmstored waits for it (so does pluto,
	# ordered after it).
	late=$work/nss-late
	mkdir -p "$late"
	cp /etc/group /etc/passwd "$nss/nsswitch.conf" "$late/"
	printf '[s]\ntype = static\nkey-id = S_1\nkey = hex:%s\nallow-groups = kmslategrp\n' \
		"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >"$late/late.conf"
	chmod 600 "$late/late.conf"
	"${in_nss[@]:0:5}" "$late" "$KMSTORED" --config "$late/late.conf" --socket "$late/late.sock" \
		--foreground >"$late/late.log" 2>&1 &
	late_pid=$!
	if wait_for 10 grep -q "no group 'kmslategrp' on this system; trying again" "$late/late.log"; then
		tap_ok "allow-groups naming a group not there yet: kmstored waits for it"
	else
		tap_not_ok "allow-groups naming a group not there yet: kmstored waits for it" "$(tail -n 5 "$late/late.log")"
	fi
	echo "kmslategrp:x:4250:nobody" >>"$late/group" # (the same file: bound inside)
	if wait_for 10 grep -q "serving 1 profile" "$late/late.log"; then
		tap_ok "allow-groups naming a group that appears after kmstored started: it waits, then serves"
	else
		tap_not_ok "allow-groups naming a group that appears after kmstored started: it waits, then serves" "$(tail -n 5 "$late/late.log")"
	fi
	run setpriv --reuid=65534 --regid=65534 --groups=4250 "$KMSTORE" --daemon "$late/late.sock" key s
	expect_rc 0 "... and a member gets the key"
	kill "$late_pid" 2>/dev/null
	wait "$late_pid" 2>/dev/null || true
	late_pid=
else
	tap_ok "# SKIP large groups and failed lookups: no private mount namespace (unshare -m)"
fi

# --- reload -----------------------------------------------------------------
cp "$W" "$work/reload.conf"
kmstored_stop "$SW"
kmstored_start "$SW" "$work/reload.conf"
client_start "$SW"
expect_eq ready "$ANSWER" "a long-lived client (daemon_client) opens kmstored's store"
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "it gets a key"
printf '\n[added]\ntype   = static\nkey-id = ADDED_1\nkey    = hex:%s\n' \
	"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >>"$work/reload.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "kmstore reload"
expect_match "reloaded .*reload.conf: 3 profiles" "$RUN_OUT" "... says what was loaded"
run "$KMSTORE" --daemon "$SW" key added
expect_rc 0 "the profile added is served"
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "the long-lived client goes on after the reload"
good=$(cat "$work/reload.conf")
echo "this line is not a setting" >>"$work/reload.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 3 "a reload of a broken file fails (exit 3)"
expect_match "reload refused, the configuration loaded at [0-9-]+ [0-9:]+ stays in force: .*reload.conf:[0-9]+: expected" "$RUN_ERR" "... with the file, line and reason"
run "$KMSTORE" --daemon "$SW" key added
expect_rc 0 "... and the running configuration still serves"
kill -HUP "$(kmstored_pid "$SW")"
wait_for 10 grep -q "reload refused.*(SIGHUP)" "$SW.log" || true
expect_match "error: reload refused.*\(SIGHUP\)" "$(cat "$SW.log")" "SIGHUP with a broken file: logged, refused"
echo "$good" >"$work/reload.conf"
sed -i 's/^\[added\]/[renamed]/' "$work/reload.conf"
t_reload=$(date +%s)
kill -HUP "$(kmstored_pid "$SW")"
wait_for 10 grep -q "reloaded .*(SIGHUP)" "$SW.log" || true
expect_match "info: reloaded .*reload.conf: 3 profiles \(SIGHUP\)" "$(cat "$SW.log")" "SIGHUP with a good file: reloaded"
m=$("$KMSTORE" --daemon "$SW" metrics)
expect_eq "2 2" "$(sed -n 's/^kmstore_config_reloads_total{result="ok"} //p' <<<"$m") $(sed -n 's/^kmstore_config_reloads_total{result="failed"} //p' <<<"$m")" \
	"kmstore_config_reloads_total counts both ways, ok and failed: kmstore reload's and SIGHUP's"
loaded=$(sed -n 's/^kmstore_config_loaded_timestamp_seconds //p' <<<"$m")
if [[ $loaded =~ ^[0-9]+$ ]] && [ "$loaded" -ge "$t_reload" ] && [ "$loaded" -le "$(date +%s)" ]; then
	tap_ok "kmstore_config_loaded_timestamp_seconds: the time of the last reload that was taken"
else
	tap_not_ok "kmstore_config_loaded_timestamp_seconds: the time of the last reload that was taken" "got '$loaded', the reload at $t_reload"
fi
# The long-lived client's connection and the one asking: 2 (a client that
# just exited may be counted until kmstored sees it go).
conns_are() { "$KMSTORE" --daemon "$SW" metrics | grep -qx "kmstore_connections $1"; }
if wait_for 10 conns_are 2; then tap_ok "kmstore_connections: the long-lived client and the one asking (2)"; else
	tap_not_ok "kmstore_connections: the long-lived client and the one asking (2)" "$("$KMSTORE" --daemon "$SW" metrics | grep '^kmstore_connections')"; fi
run "$KMSTORE" --daemon "$SW" key renamed
expect_rc 0 "... its profiles served"
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "the long-lived client still goes on"
# A store cache of kmstored's store (the OpenSSL provider's): a profile a
# reload adds is listed within a second, with no new cache.
printf '\n[later]\ntype   = static\nkey-id = LATER_1\nkey    = hex:%s\n' \
	"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >>"$work/reload.conf"
mkfifo "$work/cache.in" "$work/cache.out"
"$DAEMON_CLIENT" --cache "$SW" <"$work/cache.in" >"$work/cache.out" 2>&1 &
cache_pid=$!
exec 7>"$work/cache.in" 8<"$work/cache.out"
cache_ask() { echo "$1" >&7; ANSWER=; read -r -t 20 ANSWER <&8 || ANSWER="(no answer)"; }
read -r -t 10 ANSWER <&8 || ANSWER=
cache_ask "key later"
expect_match "^error 5 .*later" "$ANSWER" "a store cache of kmstored's store (as the provider keeps): no profile 'later' yet"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "... a reload adds it"
sleep 1.2
cache_ask "key later"
expect_match "^ok LATER_1 " "$ANSWER" "... a second later the same cache serves it"
cache_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "... and the others"
echo quit >&7
exec 7>&- 8<&-
wait "$cache_pid" 2>/dev/null || true

# --- faults -----------------------------------------------------------------
run "$KMSTORE" --daemon "$work/none.sock" key static
expect_rc 8 "kmstored not running: exit 8 (unreachable)"
expect_in "kmstored at $work/none.sock: cannot connect: No such file or directory (is kmstored running?)" "$RUN_ERR" "... saying so"
expect_faster 1 "... at once"
# A KME that accepts and never answers, for a request to hang in.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' >"$work/hang.port" &
hang_pid=$!
for _ in $(seq 50); do [ -s "$work/hang.port" ] && break; sleep 0.1; done
sed -n '/^\[qkd\]/,/^$/p' "$W" | sed "s/^\[qkd\]/[hang]/; s|^url .*|url          = https://127.0.0.1:$(cat "$work/hang.port")|" >>"$work/reload.conf"
run "$KMSTORE" --daemon "$SW" reload
expect_rc 0 "a profile whose KME never answers (timeout 2 s)"
client_ask "key hang"
expect_match "^error 5 .*profile 'hang' is new in kmstored at .*west.sock since this process opened its store" "$ANSWER" \
	"a profile added since the client opened its store: it is told to open it again"
client_stop
client_start "$SW"
expect_eq ready "$ANSWER" "a new long-lived client"
t0=$(date +%s.%N)
"$KMSTORE" --daemon "$SW" key hang >"$work/hang.out" 2>&1 &
hang_client=$!
sleep 0.3
run "$KMSTORE" --daemon "$SW" key static
expect_rc 0 "while one client waits for a silent KME, another is served"
expect_faster 0.5 "... at once"
wait "$hang_client" || true
t1=$(date +%s.%N)
expect_in "TLS handshake did not finish within the timeout of 2.0 s" "$(cat "$work/hang.out")" "the waiting client gets the KME's timeout, relayed"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 3) }' && tap_ok "... within the profile's timeout" ||
	tap_not_ok "... within the profile's timeout" "took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
client_send "key hang"
sleep 0.5
kill -9 "$(kmstored_pid "$SW")"
t0=$(date +%s.%N)
client_read 10
t1=$(date +%s.%N)
expect_match "^error 8 .*kmstored at .*west.sock closed the connection before it answered" "$ANSWER" "kmstored killed (-9) mid-request: the client is told"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 0.5) }' && tap_ok "... at once ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s)" ||
	tap_not_ok "... at once" "took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
client_ask "key static"
expect_match "^error 8 .*cannot connect" "$ANSWER" "while kmstored is down: 'cannot connect'"
kmstored_start "$SW" "$work/reload.conf"
expect_in "serving 5 profiles" "$(cat "$SW.log")" "kmstored restarts on the socket the killed one left"
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "the long-lived client recovers, not restarted"
kmstored_stop "$SW"
kmstored_start "$SW" "$work/reload.conf"
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "... and again after a clean restart (its idle connection was stale)"
kill -STOP "$(kmstored_pid "$SW")"
client_ask "key qkd"
expect_match "^error 8 [34]\.[0-9]+ kmstored at .*west.sock did not answer within 3.0 s" "$ANSWER" "kmstored stopped (SIGSTOP): the profile's timeout and 1 s (and 0.5 s asking it again), then a clear error"
kill -CONT "$(kmstored_pid "$SW")"
client_ask "key qkd"
expect_match "^ok " "$ANSWER" "... and served again once it runs"
client_stop

# --- a key file whose mode changed -------------------------------------------
# The library's result for a key file others may read (or of another owner)
# is the code of an access refusal, "permission"; but no access rule
# refused anything: every request fails until the file is mended. kmstored
# logs it, naming the file, and counts it, as any other failure.
SK=$work/perm.sock
head -c 32 /dev/urandom >"$work/perm.key"
chmod 600 "$work/perm.key"
printf '[perm]\ntype   = static\nkey-id = PERM_1\nkey    = file:%s\nallow-users = nobody\n' "$work/perm.key" >"$work/perm.conf"
chmod 600 "$work/perm.conf"
kmstored_start "$SK" "$work/perm.conf"
run "$KMSTORE" --daemon "$SK" key perm
expect_rc 0 "a static profile whose key is a file: served"
chmod 640 "$work/perm.key"
run "$KMSTORE" --daemon "$SK" key perm
expect_rc 4 "its key file made mode 0640: the request fails (4, permission)"
expect_in "$work/perm.key is accessible by group or others" "$RUN_ERR" "... saying why"
if wait_for 5 grep -q "error: root (uid 0, pid [0-9]*): key for use now: .*$work/perm.key is accessible by group or others" "$SK.log"; then
	tap_ok "... and kmstored logs it, naming the file"
else
	tap_not_ok "... and kmstored logs it, naming the file" "$(tail -n 3 "$SK.log")"
fi
expect_in 'kmstore_requests_failed_total{profile="perm",cause="permission"} 1' "$("$KMSTORE" --daemon "$SK" metrics)" \
	"... and counts it in kmstore_requests_failed_total"
run as_nobody "$KMSTORE" --daemon "$SK" key perm
expect_rc 4 "... for nobody, allowed, too"
expect_eq 2 "$(grep -c "key for use now: .*$work/perm.key is accessible" "$SK.log" || true)" "... logged again"
chmod 600 "$work/perm.key"
run as_nobody "$KMSTORE" --daemon "$SK" key other
expect_rc 4 "a profile not open to nobody: refused (4, permission)"
m=$("$KMSTORE" --daemon "$SK" metrics)
expect_in 'kmstore_requests_failed_total{profile="perm",cause="permission"} 2' "$m" \
	"... counted among the clients refused, not the failed requests"
expect_in 'kmstore_clients_refused_total 1' "$m" "... (kmstore_clients_refused_total 1)"
kmstored_stop "$SK"

# --- the connections a client keeps -------------------------------------------
# kmstored serves a user (but root) 16 connections at most. A process that
# asked from 16 threads at once keeps few of them (4) and closes one idle
# for 5 s, so the user's other processes are still served. The burst asks
# the silent KME (hang), so that its 16 connections are open together.
section() { awk -v s="[$1]" '/^\[/ { on = $0 == s } on' "$2"; }
{ section static "$W"; echo; section hang "$work/reload.conf"; } |
	sed '/^\[.*\]$/a allow-users = nobody' >"$work/quota.conf"
chmod 600 "$work/quota.conf"
SQ=$work/quota.sock
kmstored_start "$SQ" "$work/quota.conf"
client_start "$SQ" as_nobody
expect_eq ready "$ANSWER" "a long-lived client of user nobody"
client_ask "burst hang 16" 30
expect_eq "ok 0 16 8" "$ANSWER" \
	"16 of its threads ask at once, from a KME that does not answer: each told so (8, unreachable)"
client_ask sockets
expect_eq "ok 4" "$ANSWER" "... and the process keeps 4 of the 16 connections, not all"
run as_nobody "$KMSTORE" --daemon "$SQ" key static
expect_rc 0 "... so another process of the same user is served meanwhile"
expect_not_in "too many connections" "$(cat "$SQ.log")" "... and kmstored refused no connection of nobody's"
sleep 5.5
client_ask "key static"
expect_match "^ok STATIC_PPK_1 " "$ANSWER" "5 s later the client asks again"
client_ask sockets
expect_eq "ok 1" "$ANSWER" "... and has closed the connections idle since the burst, keeping the one it used"
client_stop
kmstored_stop "$SQ"

# --- fork() in a client ---------------------------------------------------------
SF=$work/fork.sock
kmstored_start "$SF" "$W"
# The child starts without its parent's idle connections. Before, its
# first request closed the descriptors that had their numbers.
run timeout 60 "$DAEMON_CLIENT" "$SF" <<<"fork-fd static"
expect_eq "ok kept" "$(tail -n 1 <<<"$RUN_OUT")" \
	"a child that closed what it inherited and reused the numbers: opening kmstored's store leaves its own descriptors alone"
# Forks while 8 threads take and give back connections: before, a child
# could inherit the lock of the idle connections held by a thread it does
# not have, and hang in its first request (here 1 fork in 50 to 400; 2000
# forks take 2 to 10 s, but 30 s under ASan, which gets 400).
forks=2000
[ "${KMSTORE_SANITIZED:-0}" != 1 ] || forks=400
run timeout 200 "$DAEMON_CLIENT" "$SF" <<<"fork-lock static $forks"
expect_eq "ok forks=$forks hung=0 failed=0" "$(tail -n 1 <<<"$RUN_OUT")" \
	"$forks forks while 8 threads ask for keys: every child opens kmstored's store"
kmstored_stop "$SF"

# --- the protocol -----------------------------------------------------------
# raw HEX|TEXT: sends bytes, prints the reply's kind and message, and
# "closed" when kmstored then closes the connection.
raw() {
	python3 - "$SW" "$1" <<'EOF'
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(8)
data = bytes.fromhex(sys.argv[2])
s.sendall(data)
buf = b""
try:
    while True:
        b = s.recv(65536)
        if not b: break
        buf += b
except socket.timeout:
    pass
if len(buf) >= 12:
    kind = buf[5]
    body = buf[12:]
    msg = b""
    while len(body) >= 5:
        tag, n = body[0], struct.unpack(">I", body[1:5])[0]
        if tag == 9: msg = body[5:5+n]
        body = body[5+n:]
    print("kind=0x%02x" % kind, msg.decode(errors="replace"))
print("closed" if len(buf) == 0 or True else "")
EOF
}
hdr() { printf '4b4d5344%02x%02x0000%08x' "$1" "$2" "$3"; }
run raw "$(printf 'GARBAGE!1234' | od -An -v -tx1 | tr -d ' \n')"
expect_in "kind=0x81 kmstored: bad request: not a kmstored message" "$RUN_OUT" "garbage: an error reply"
run raw "$(hdr 2 1 0)"
expect_in "protocol version 2, but this end speaks version 1" "$RUN_OUT" "another protocol version: named in the error"
run raw "$(hdr 1 2 1048576)"
expect_in "a body of 1048576 bytes; at most 4096 are allowed" "$RUN_OUT" "an oversized request: refused before it is read"
run raw "$(hdr 1 2 8)6300000003$(printf 'abc' | od -An -tx1 | tr -d ' \n')"
expect_in "field 99 is not part of request 2" "$RUN_OUT" "an unknown field: refused"
run raw "$(hdr 1 2 22)0100000006$(printf 'static' | od -An -tx1 | tr -d ' \n')0100000006$(printf 'static' | od -An -tx1 | tr -d ' \n')"
expect_in "field 1 given twice" "$RUN_OUT" "a repeated field: refused"
run raw "$(hdr 1 2 11)0100000007$(printf 'static' | od -An -tx1 | tr -d ' \n')"
expect_in "a field runs past the end" "$RUN_OUT" "a field longer than the body: refused"
run raw "$(hdr 1 77 0)"
expect_in "unknown request 77" "$RUN_OUT" "an unknown request: refused"
# A key for a made-up profile name (nobody's get no further): no series of
# the metrics of its own, or a client could fill their table.
run raw "$(hdr 1 2 14)0100000009$(printf 'made-up-2' | od -An -tx1 | tr -d ' \n')"
expect_in "no such profile 'made-up-2'" "$RUN_OUT" "a key of a profile that does not exist: not found"
expect_not_in "made-up" "$("$KMSTORE" --daemon "$SW" metrics)" "... and the made-up name is not in the metrics"
t0=$SECONDS
run raw "4b4d5344"
expect_eq "closed" "$(tail -n 1 <<<"$RUN_OUT")" "half a header, then silence: kmstored closes the connection"
# A request trickled in, its header over 3.6 s and its body over 3.3 s:
# a request has 5 s from its first byte, the header's and the body's
# together, not 5 s each (a thread held twice as long).
run python3 - "$SW" "$(hdr 1 2 11)0100000006$(printf 'static' | od -An -tx1 | tr -d ' \n')" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
try:
    for b in bytes.fromhex(sys.argv[2]):
        s.send(bytes([b])); time.sleep(0.3)
    print("kind=0x%02x" % s.recv(65536)[5])
except (OSError, IndexError):
    print("closed")
EOF
expect_eq "closed" "$RUN_OUT" "a request trickled in over 7 s: closed 5 s after its first byte"
run "$KMSTORE" --daemon "$SW" key static
expect_rc 0 "kmstored serves on after all of them"

# --- floods and limits --------------------------------------------------------
# A profile for root only, in kmstored instances of their own.
printf '[secret]\ntype   = static\nkey-id = SECRET_1\nkey    = hex:%s\n' \
	"$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >"$work/flood.conf"
chmod 600 "$work/flood.conf"
SF=$work/flood.sock
# Refusals that a user causes are logged 10 times in 10 s, then counted.
kmstored_start "$SF" "$work/flood.conf"
for _ in $(seq 30); do as_nobody "$KMSTORE" --daemon "$SF" profiles >/dev/null 2>&1 || true; done
"$KMSTORE" --daemon "$SF" key secret >/dev/null
kmstored_stop "$SF"
n=$(grep -c "refused nobody (uid 65534, pid [0-9]*): no profile is open to it" "$SF.log" || true)
m=$(sed -n 's/.*uid 65534: \([0-9]*\) more lines like those above not logged in [0-9]* s.*/\1/p' "$SF.log" | awk '{ s += $1 } END { print s + 0 }')
[[ $n -ge 10 && $n -lt 30 && $((n + m)) -eq 30 ]] &&
	tap_ok "30 refusals of one user in a row: $n logged (10 in 10 s), a line with the count of the $m others" ||
	tap_not_ok "30 refusals of one user in a row: 10 in 10 s logged, a line with the count of the others" "$n logged, $m counted"
# A connection over the cap: refused, logged by uid, and counted among the
# clients refused. nobody holds 16 idle connections and makes a 17th (a
# python3 that becomes nobody: the one on PATH may be root's own); root's
# request comes after them in kmstored's queue, so after the refusal.
kmstored_start "$SF" "$work/flood.conf"
python3 - "$SF" >"$work/cap.out" <<'EOF' &
import os, socket, sys, time
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
held = []
for _ in range(17):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
print("holding", flush=True)
time.sleep(60)
EOF
hold_pid=$!
wait_for 10 grep -q '^holding' "$work/cap.out" || true
run "$KMSTORE" --daemon "$SF" metrics
kill "$hold_pid" 2>/dev/null || true
wait "$hold_pid" 2>/dev/null || true
hold_pid=
expect_in "kmstore_clients_refused_total 1" "$RUN_OUT" "a 17th connection of nobody's: counted in kmstore_clients_refused_total"
expect_match "refused uid 65534 \(pid [0-9]+\): too many connections \(at most 16 per user\)" "$(cat "$SF.log")" "... and logged, by uid"
kmstored_stop "$SF"
# A user at its cap of 16 connections that keeps connecting and closing,
# as fast as it can: it is refused at little cost and logged little, and
# root, connecting meanwhile, waits for room in kmstored's queue (within
# its deadline) instead of failing.
kmstored_start "$SF" "$work/flood.conf"
setpriv --reuid=65534 --regid=65534 --clear-groups "$DAEMON_CLIENT" --flood "$SF" 20 16 >"$work/flood.out" 2>&1 &
flood_pid=$!
wait_for 10 grep -q '^holding' "$work/flood.out" || true
sleep 0.5 # the queue fills
ok=0 errs=
for _ in $(seq 20); do
	run "$KMSTORE" --daemon "$SF" key secret
	if [ "$RUN_RC" -eq 0 ]; then ok=$((ok + 1)); else errs=$RUN_ERR; fi
done
kill "$flood_pid" 2>/dev/null || true
wait "$flood_pid" 2>/dev/null || true
flood_pid=
expect_eq "20" "$ok" "a flood of connections by a user at its cap: root's 20 requests meanwhile all served${errs:+ (last error: $errs)}"
n=$(grep -c "uid 65534" "$SF.log" || true)
[[ $n -ge 1 && $n -lt 50 ]] && tap_ok "... and $n lines about that user logged, refusals and their count (fewer than 50)" ||
	tap_not_ok "... fewer than 50 lines about that user logged" "$n lines" "$(tail -n 3 "$SF.log")"
kmstored_stop "$SF"
expect_eq "20" "$(grep -c "root (uid 0, pid [0-9]*): profile 'secret': key SECRET_1 for use now" "$SF.log" || true)" \
	"... each of root's keys logged, none left out"
expect_match "^uid 65534: [0-9]+ more lines like those above not logged" "$(grep -m 1 -o "uid 65534: [0-9]* more lines like those above not logged.*" "$SF.log")" \
	"... the refusals left out counted (at the latest when kmstored stops)"
# Out of descriptors: with 24 (ulimit -n) and 40 connections waiting,
# accept fails with EMFILE while they wait; kmstored must not spin on
# them, nor log each try, and serves again once descriptors are free.
kmstored_start "$SF" "$work/flood.conf" bash -c 'ulimit -n 24 && exec "$0" "$@"'
python3 - "$SF" >"$work/hold.out" <<'EOF' &
import socket, sys, time
held = []
for _ in range(40):
    s = socket.socket(socket.AF_UNIX); s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        pass
    held.append(s)
print("holding", flush=True)
time.sleep(60)
EOF
hold_pid=$!
wait_for 10 grep -q "accept: Too many open files" "$SF.log" || true
spid=$(kmstored_pid "$SF")
ticks() { awk '{ print $14 + $15 }' "/proc/$spid/stat"; }
t0=$(ticks)
sleep 2
t1=$(ticks)
kill "$hold_pid" 2>/dev/null || true
wait "$hold_pid" 2>/dev/null || true
hold_pid=
hz=$(getconf CLK_TCK)
# It wakes 10 times a second then, for next to nothing: 0.1 s of CPU in
# 2 s is a bound with room (spinning, it takes a core, 2 s).
awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { exit !(t < 0.1 * hz) }' &&
	tap_ok "out of descriptors (EMFILE), 40 connections waiting: kmstored does not spin ($((t1 - t0)) ticks of CPU in 2 s)" ||
	tap_not_ok "out of descriptors (EMFILE): kmstored does not spin" "$((t1 - t0)) ticks of CPU in 2 s, fewer than $(awk -v hz="$hz" 'BEGIN { print 0.1 * hz }') wanted"
n=$(grep -c "accept:" "$SF.log" || true)
[[ $n -ge 1 && $n -le 3 ]] && tap_ok "... and says so once ($n line)" ||
	tap_not_ok "... and says so once" "$n lines" "$(grep -m 3 "accept:" "$SF.log")"
run "$KMSTORE" --daemon "$SF" key secret
expect_rc 0 "... and serves again once the connections are gone"
kmstored_stop "$SF"

# --- start-up ---------------------------------------------------------------
run "$KMSTORED" --config "$W" --socket "$SW" --foreground
expect_rc 78 "a second kmstored on a live socket: refused (78, EX_CONFIG: not restarted by its unit)"
expect_in "another kmstored is listening on $SW" "$RUN_ERR" "... saying so"
run "$KMSTORED" --config "$work/client.conf" --socket "$work/c.sock"
expect_rc 78 "kmstored with a client configuration: refused (78)"
expect_in "is a client configuration (daemon = $SW)" "$RUN_ERR" "... saying so, from the starting command"
echo "[broken" >"$work/broken.conf"
chmod 600 "$work/broken.conf"
run "$KMSTORED" --config "$work/broken.conf" --socket "$work/b.sock"
expect_rc 78 "kmstored with a broken file: the starting command fails (78, as the detached kmstored did)"
expect_in "broken.conf:1: a section header must be" "$RUN_ERR" "... with the file's error"
run "$KMSTORED" --config "$W" --socket "$work/detached.sock"
expect_rc 0 "kmstored without --foreground returns once it serves"
run "$KMSTORE" --daemon "$work/detached.sock" key static
expect_rc 0 "... at once, with no wait"
dpid=$(ss -xlpn 2>/dev/null | grep -F "$work/detached.sock" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
if [ -n "$dpid" ]; then
	expect_eq 1 "$(awk '$1 == "PPid:" { print ($2 == 1 || $2 != '"$$"') }' "/proc/$dpid/status")" "... detached (not our child)"
	kill "$dpid"
	for _ in $(seq 50); do [ -e "$work/detached.sock" ] || break; sleep 0.1; done
	expect_eq "" "$(ls "$work/detached.sock" 2>/dev/null)" "SIGTERM: it stops and removes its socket"
else
	tap_not_ok "the detached kmstored is found by its socket (ss -xlp)"
fi
# Relative paths, from the directory it was started in: a detached
# kmstored moves to /, and still reloads its file and removes its socket.
cp "$W" "$work/rel.conf"
chmod 600 "$work/rel.conf"
cd "$work"
run "$KMSTORED" --config rel.conf --socket rel.sock
cd - >/dev/null
expect_rc 0 "kmstored detached with a relative --config and --socket"
run "$KMSTORE" --daemon "$work/rel.sock" reload
expect_rc 0 "... reloads its file by that path"
dpid=$(ss -xlpn 2>/dev/null | grep -F "$work/rel.sock" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
if [ -n "$dpid" ]; then
	kill "$dpid"
	for _ in $(seq 50); do [ -e "$work/rel.sock" ] || break; sleep 0.1; done
	expect_eq "" "$(ls "$work/rel.sock" 2>/dev/null)" "... and removes its socket when it stops"
else
	tap_not_ok "... and removes its socket when it stops" "no kmstored listens on $work/rel.sock"
fi
# A detached start interrupted while kmstored waits for a lookup (Ctrl-C;
# here SIGTERM: a background job ignores SIGINT) leaves no kmstored
# behind, though setsid() took it out of the terminal's reach: its caller
# saw the start fail.
printf '[gone]\ntype = static\nkey-id = G\nkey = hex:%s\nallow-users = no-such-user-kms\n' \
	00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff >"$work/gone.conf"
chmod 600 "$work/gone.conf"
env SYSLOG_CAPTURE="$work/gone.log" LD_PRELOAD="${KMSTORE_TEST_PRELOAD:+$KMSTORE_TEST_PRELOAD }${SYSLOG_CAPTURE_LIB:?}" \
	"$KMSTORED" --config "$work/gone.conf" --socket "$work/gone.sock" 2>/dev/null &
starter=$!
for _ in $(seq 100); do grep -q "trying again" "$work/gone.log" 2>/dev/null && break; sleep 0.1; done
expect_in "no user 'no-such-user-kms' on this system; trying again" "$(cat "$work/gone.log" 2>/dev/null)" \
	"a detached start waits for a lookup (syslog)"
kill -TERM "$starter"
wait "$starter" 2>/dev/null || true
for _ in $(seq 50); do pgrep -f -- "--socket $work/gone.sock" >/dev/null || break; sleep 0.1; done
expect_eq "" "$(pgrep -f -- "--socket $work/gone.sock")" \
	"... its starting command interrupted: the detached kmstored stops too (not after the 60 s wait)"
expect_in "the starting command is gone (interrupted?): stopped before it served" "$(cat "$work/gone.log")" \
	"... and says why"
pkill -f -- "--socket $work/gone.sock" || true
# A certificate that expired breaks its profile, not the others': time,
# not an edit, broke it. kmstored starts, serves the rest and says so;
# check through it fails as kmstore check does.
sed "s|^certificate .*|certificate = $work/expired.crt|" "$W" >"$work/expired.conf"
chmod 600 "$work/expired.conf"
kmstored_start "$work/exp.sock" "$work/expired.conf"
run "$KMSTORE" --daemon "$work/exp.sock" key static
expect_rc 0 "kmstored with an expired SAE certificate in one profile serves the others"
expect_in "expired.crt expired on Jan  1 00:00:00 2021 GMT: the KME refuses it; renew it (the other profiles are served)" \
	"$(cat "$work/exp.sock.log")" "... and its log says which certificate expired when"
run "$KMSTORE" --daemon "$work/exp.sock" check
expect_rc 1 "kmstore --daemon check fails on it"
expect_match "(^|\n)FAILED +qkd " "$RUN_OUT" "... on the QKD profile"
kmstored_stop "$work/exp.sock"
if ldd "$KMSTORED" | grep -q libsystemd; then
	python3 - "$work/notify" >"$work/notify.out" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(20)
try:
    while True:
        m = s.recv(4096).decode()
        print(m.replace("\n", " "), flush=True)
        if "STOPPING=1" in m: break
except socket.timeout:
    pass
EOF
	npid=$!
	for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
	NOTIFY_SOCKET=$work/notify kmstored_start "$work/n.sock" "$W"
	kill -HUP "$(kmstored_pid "$work/n.sock")"
	wait_for 10 grep -q "(SIGHUP)" "$work/n.sock.log" || true
	kmstored_stop "$work/n.sock"
	wait "$npid" || true
	expect_eq "READY=1 STATUS=serving 2 profiles of $W on $work/n.sock|RELOADING=1|READY=1|STOPPING=1" \
		"$(paste -sd'|' "$work/notify.out")" "Type=notify: READY (with STATUS), RELOADING and READY on SIGHUP, STOPPING"
else
	tap_ok "# SKIP Type=notify: kmstored built without libsystemd"
fi
# A dedicated user, as kmstored.service runs it: the files are its own.
mkdir -p "$work/own"
cp -a "$work/lab/pki" "$work/lab/static.key" "$work/own/"
sed "s|$work/lab/|$work/own/|g" "$W" >"$work/own/kmstore.conf"
chmod 600 "$work/own/kmstore.conf"
chown -R nobody:nogroup "$work/own"
chmod 700 "$work/own"
# its RuntimeDirectory
mkdir -p "$work/run"
chown nobody:nogroup "$work/run"
kmstored_start "$work/run/own.sock" "$work/own/kmstore.conf" setpriv --reuid=65534 --regid=65534 --clear-groups
run "$KMSTORE" --daemon "$work/run/own.sock" key qkd
expect_rc 0 "kmstored as a dedicated user (nobody) serves root a QKD key (its TLS key is nobody's)"
run as_nobody "$KMSTORE" --daemon "$work/run/own.sock" key static
expect_rc 0 "... and its own user, every profile"
# A key rotated as root, the new file left root's: the reload is refused,
# not accepted to fail every key after it.
head -c 32 /dev/urandom >"$work/own/static-2.key"
chmod 600 "$work/own/static-2.key"
cp -p "$work/own/kmstore.conf" "$work/own/kmstore.conf.good"
sed -i "s|^key .*static.key$|key    = file:$work/own/static-2.key|; s|^key-id = STATIC_PPK_1|key-id = STATIC_PPK_2|" "$work/own/kmstore.conf"
run "$KMSTORE" --daemon "$work/run/own.sock" reload
expect_rc 4 "a reload whose new key file kmstored's user cannot read: refused (exit 4, permission)"
expect_match "kmstore.conf:[0-9]+: profile 'static': .*static-2.key: Permission denied" "$RUN_ERR" "... naming the profile, the file and why"
run as_nobody "$KMSTORE" --daemon "$work/run/own.sock" key static
expect_match $'(^|\n)key-id +STATIC_PPK_1\n' "$RUN_OUT" "... and the key in force is still served"
chown nobody "$work/own/static-2.key"
run "$KMSTORE" --daemon "$work/run/own.sock" reload
expect_rc 0 "... once the file is kmstored's user's, the reload is taken"
run as_nobody "$KMSTORE" --daemon "$work/run/own.sock" key static
expect_match $'(^|\n)key-id +STATIC_PPK_2\n' "$RUN_OUT" "... and the new key served"
mv "$work/own/kmstore.conf.good" "$work/own/kmstore.conf"
kmstored_stop "$work/run/own.sock"
chown root "$work/own/kmstore.conf"
run setpriv --reuid=65534 --regid=65534 --clear-groups "$KMSTORED" --config "$work/own/kmstore.conf" --socket "$work/run/own.sock"
expect_rc 78 "kmstored as nobody with root's 0600 file: refused (78)"
expect_in "cannot open configuration file $work/own/kmstore.conf: Permission denied" "$RUN_ERR" "... naming the file and why"

# --- the other faces through kmstored ------------------------------------
tool() {
	if [[ -n ${KMSTORE_TEST_PRELOAD:-} ]]; then
		LD_PRELOAD=$KMSTORE_TEST_PRELOAD ASAN_OPTIONS=detect_leaks=0 "$@"
	else
		"$@"
	fi
}
kcv=$("$KMSTORE" -c "$W" key static | awk '$1 == "check-value" { print $2 }')
if [[ -x ${OPENSSL:-} && -d ${KMSTORE_PROVIDER_DIR:-} ]]; then
	cat >"$work/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
kmstore = kmstore_sect
[default_sect]
activate = 1
[kmstore_sect]
module = $KMSTORE_PROVIDER_DIR/kmstore.so
kmstore-daemon = $SW
activate = 1
CNF
	OPENSSL_CONF=$work/openssl.cnf KMSTORE_CONF=$work/nowhere.conf run tool "$OPENSSL" storeutl -text kmstore:profile=static
	expect_in "check-value: $kcv" "$RUN_OUT" "the OpenSSL provider with kmstore-daemon in openssl.cnf: the static key"
	n=$("$KMSTORE" --daemon "$SW" profiles | tail -n +2 | wc -l)
	OPENSSL_CONF=$work/openssl.cnf run tool "$OPENSSL" storeutl kmstore:
	expect_in "Total found: $n" "$RUN_OUT$RUN_ERR" "... and kmstored's $n profiles listed"
	sed -i "s|^kmstore-daemon = .*|kmstore-daemon = $work/none.sock|" "$work/openssl.cnf"
	OPENSSL_CONF=$work/openssl.cnf run tool "$OPENSSL" storeutl kmstore:profile=static
	expect_match "KME unreachable:.*kmstored at $work/none.sock: cannot connect" "$RUN_OUT$RUN_ERR" "... kmstored down: the provider's error says so"
else
	tap_ok "# SKIP the provider: no openssl or provider"
fi
if [[ -x ${OPENSSL:-} && -f ${KMSTORE_ENGINE_DIR:-}/kmstore.so ]]; then
	cat >"$work/engine.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
kmstore = kmstore_section
[kmstore_section]
dynamic_path = $KMSTORE_ENGINE_DIR/kmstore.so
DAEMON = $SW
init = 1
CNF
	before=$(grep -c "profile 'static': key STATIC_PPK_1" "$SW.log" || true)
	OPENSSL_CONF=$work/engine.cnf KMSTORE_CONF=$work/nowhere.conf OPENSSL_ENGINES=$KMSTORE_ENGINE_DIR \
		run tool "$OPENSSL" pkey -engine kmstore -inform ENGINE -in static -noout
	expect_rc 0 "the engine with DAEMON in openssl.cnf loads the static key"
	# kmstored logs a key once its reply is written: openssl may be first.
	for _ in $(seq 50); do
		[ "$(grep -c "profile 'static': key STATIC_PPK_1" "$SW.log" || true)" -gt "$before" ] && break
		sleep 0.1
	done
	expect_eq $((before + 1)) "$(grep -c "profile 'static': key STATIC_PPK_1" "$SW.log" || true)" "... from kmstored (its log)"
else
	tap_ok "# SKIP the engine: not built"
fi
if [[ -x ${NSS_CLIENT:-} && -f ${P11_MODULE:-} ]] && command -v modutil >/dev/null; then
	mkdir -p "$work/nss"
	tool certutil -N -d "sql:$work/nss" --empty-password
	echo | tool modutil -dbdir "sql:$work/nss" -add kmstore -libfile "$(realpath "$P11_MODULE")" \
		-string "daemon=$SW log=stderr" -force >/dev/null 2>&1
	run "$NSS_CLIENT" "$work/nss" tokens kmstore
	expect_match "qkd.*static|static.*qkd" "$(tr '\n' ' ' <<<"$RUN_OUT")" "the PKCS#11 module with daemon=: kmstored's profiles are its tokens"
	run "$NSS_CLIENT" "$work/nss" key pkcs11:token=qkd
	expect_rc 0 "... NSS generates a QKD key through kmstored"
	qid=$(sed -n 's/^id=//p' <<<"$RUN_OUT" | head -n 1)
	run "$KMSTORE" -c "$E" key qkd --key-id "$qid"
	expect_rc 0 "... and east finds that key by the ID NSS read"
	if command -v pkcs11-tool >/dev/null; then
		KMSTORE_CONF=$work/client.conf run tool pkcs11-tool --module "$P11_MODULE" --token-label static -M
		expect_in "mechtype-0xCB4D5301" "$RUN_OUT" "... kmstored's static token: CKM_KMSTORE_KEY_BY_ID"
		expect_eq 0 "$(grep -c "0xCB4D5302" <<<"$RUN_OUT" || true)" "... but not CKM_KMSTORE_LOCAL_KEYS: asking waits on kmstored"
	fi
	# Tokens that come after NSS loaded the module: kmstored down as the
	# application starts, then a profile added by a reload. The client
	# looks its token up every 0.1 s, as pluto does at each IKE SA.
	SL=$work/late.sock
	cp "$W" "$work/late.conf"
	mkdir -p "$work/nss-late"
	tool certutil -N -d "sql:$work/nss-late" --empty-password
	echo | tool modutil -dbdir "sql:$work/nss-late" -add kmstore -libfile "$(realpath "$P11_MODULE")" \
		-string "daemon=$SL log=stderr" -force >/dev/null 2>&1
	wait_token() { # TOKEN: in the background, output in $work/late.out
		: >"$work/late.out"
		"$NSS_CLIENT" "$work/nss-late" wait-token "pkcs11:token=$1" 40 >"$work/late.out" 2>"$work/late.err" &
		token_pid=$!
		for _ in $(seq 100); do grep -q '^missed' "$work/late.out" && break; sleep 0.1; done
	}
	waited() { # WHAT: the client's exit and output
		local rc=0
		wait "$token_pid" || rc=$?
		token_pid=
		RUN_RC=$rc RUN_OUT=$(cat "$work/late.out") RUN_ERR=$(cat "$work/late.err")
	}
	static_hex=$(od -An -tx1 -v "$work/lab/static.key" | tr -d ' \n')
	wait_token static
	expect_in "missed" "$(cat "$work/late.out")" "kmstored down as NSS loads the module: no token 'static' yet"
	kmstored_start "$SL" "$work/late.conf"
	waited
	expect_rc 0 "... kmstored started: the token comes to the running application"
	expect_eq "$static_hex" "$(sed -n 's/^key=//p' <<<"$RUN_OUT")" "... and gives kmstored's static key"
	expect_in "kmstored at $SL: cannot connect" "$RUN_ERR" "... the module said why it had no tokens"
	expect_in "profile 'static' is new in kmstored at $SL: its token is in slot" "$RUN_ERR" "... and where the token came"
	wait_token added
	printf '\n[added]\ntype = static\nkey-id = ADDED_1\nkey = file:%s\n' "$work/lab/static.key" >>"$work/late.conf"
	run "$KMSTORE" --daemon "$SL" reload
	expect_rc 0 "a profile added by a reload"
	waited
	expect_rc 0 "... is a token of the running application"
	expect_eq "$static_hex" "$(sed -n 's/^key=//p' <<<"$RUN_OUT")" "... with its key"
	# kmstored stopped (SIGSTOP) as the application starts: its start is
	# held 0.5 s, not 5, and the token comes soon after kmstored goes on.
	kill -STOP "$(kmstored_pid "$SL")"
	wait_token qkd
	kill -CONT "$(kmstored_pid "$SL")"
	waited
	expect_rc 0 "kmstored stopped as NSS loads the module, then going on: the token comes"
	expect_in "did not answer within 0.5 s" "$RUN_ERR" "... the module gave it 0.5 s at its start"
	kmstored_stop "$SL"
	echo | tool modutil -dbdir "sql:$work/nss" -delete kmstore -force >/dev/null 2>&1 || true
	echo | tool modutil -dbdir "sql:$work/nss" -add kmstore -libfile "$(realpath "$P11_MODULE")" \
		-string "daemon=$SW config=$W log=stderr" -force >/dev/null 2>&1
	run "$NSS_CLIENT" "$work/nss" tokens kmstore
	expect_in "config= and daemon= both given" "$RUN_ERR$RUN_OUT" "config= with daemon=: the module says which to choose"
else
	tap_ok "# SKIP the PKCS#11 module: not built"
fi

# --- the systemd unit -------------------------------------------------------
if [[ -f ${KMSTORED_UNIT:-} ]] && command -v systemd-analyze >/dev/null; then
	mkdir -p "$work/unit"
	sed "s|^ExecStart=[^ ]*|ExecStart=$(realpath "$KMSTORED")|" "$KMSTORED_UNIT" >"$work/unit/kmstored.service"
	run systemd-analyze verify "$work/unit/kmstored.service"
	# the man pages are not installed here: their check is tests/docs'
	expect_eq "" "$(grep -v -e "Command 'man " -e '^$' <<<"$RUN_ERR" || true)" "systemd-analyze verify: the unit is sound"
	# (systemd is not PID 1 here to restart it: the setting itself)
	expect_match $'(^|\n)StartLimitIntervalSec=0(\n|$)' "$(sed -n '/^\[Unit\]/,/^\[/p' "$work/unit/kmstored.service")" \
		"the unit restarts kmstored for as long as it fails (sssd down at boot), no start limit"
	expect_match $'(^|\n)RestartPreventExitStatus=2 78(\n|$)' "$(sed -n '/^\[Service\]/,/^\[/p' "$work/unit/kmstored.service")" \
		"... but not when its configuration (exit 78) or an option (2) is wrong"
	run systemd-analyze security --offline=true --no-pager "$work/unit/kmstored.service"
	score=$(sed -n 's/.*Overall exposure level for kmstored.service: \([0-9.]*\).*/\1/p' <<<"$RUN_OUT")
	if [[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		tap_ok "systemd-analyze security: exposure $score (2.0 or less)"
	else
		tap_not_ok "systemd-analyze security: exposure 2.0 or less" "score: ${score:-none}" "$(tail -n 20 <<<"$RUN_OUT$RUN_ERR")"
	fi
else
	tap_ok "# SKIP the unit: no systemd-analyze"
fi

tap_done
