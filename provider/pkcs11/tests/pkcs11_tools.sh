#!/usr/bin/env bash
# The module through the usual PKCS#11 tools: pkcs11-tool (OpenSC),
# p11tool (GnuTLS), and p11-kit with the installed kmstore.module file.
# Tools that are not installed are skipped with a note.
# Usage: pkcs11_tools.sh MODULE MODULE_FILE
MODULE=$1
MODULE_FILE=$2
. "$(dirname "$0")/lib.sh"

write_static_conf
export KMSTORE_CONF=$WORK/static.conf
key_hex=$(hex_of "$WORK/static.key")
id_hex=$(printf PPK_ID_1 | od -An -v -tx1 | tr -d ' \n')

if command -v pkcs11-tool >/dev/null; then
	p() { tool pkcs11-tool --module "$MODULE" "$@" 2>&1; }
	out=$(p -L)
	has "pkcs11-tool -L: a slot per profile" "$out" "kmstore profile west-static"
	has "pkcs11-tool -L: label, model" "$out" "token model *: static"
	has "pkcs11-tool -L: no login" "$out" "token flags *: token initialized$"
	out=$(p -M)
	has "pkcs11-tool -M: GENERIC-SECRET-KEY-GEN" "$out" \
		"^ *GENERIC-SECRET-KEY-GEN, keySize=\{256,256\}, generate$"
	has "pkcs11-tool -M: CKM_KMSTORE_KEY_BY_ID (vendor)" "$out" \
		"^ *mechtype-0xCB4D5301, keySize=\{256,256\}, generate$"
	has "pkcs11-tool -M: CKM_KMSTORE_LOCAL_KEYS (vendor), a static token's marker" "$out" \
		"^ *mechtype-0xCB4D5302"
	same "... and nothing else" "$(printf '%s\n' "$out" | grep -c '^ ')" 3
	out=$(p -O)
	has "pkcs11-tool -O lists the static key" "$out" "Secret Key Object; Generic secret length 32"
	has "... with its ID" "$out" "ID: *$id_hex"
	out=$(tool pkcs11-tool --module "$MODULE" --read-object --type secrkey \
		--id "$id_hex" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
	same "pkcs11-tool --read-object reads the key" "$out" "$key_hex"
	out=$(p --slot-index 1 -O)
	has "the second token's key" "$out" "Generic secret length 48"
	out=$(p --keygen --key-type GENERIC:32 --extractable --label fresh)
	has "pkcs11-tool --keygen: a key for use now" "$out" \
		"label: *fresh"
	out=$(p --keygen --key-type GENERIC:16 --extractable --label short)
	has "... refused when CKA_VALUE_LEN is not the key size" "$out" \
		"CKR_TEMPLATE_INCONSISTENT"
	out=$(p --keygen --key-type GENERIC:32 --label locked)
	has "... refused when the key may not be read (CKA_EXTRACTABLE false)" \
		"$out" "CKR_ATTRIBUTE_VALUE_INVALID"
else
	echo "# pkcs11-tool (opensc) not installed: skipped"
fi

if command -v p11tool >/dev/null; then
	out=$(tool p11tool --provider "$MODULE" --list-tokens 2>&1)
	has "p11tool --list-tokens" "$out" \
		"URL: pkcs11:model=static;manufacturer=kmstore;serial=[0-9a-f]{16};token=west-static"
	out=$(tool p11tool --provider "$MODULE" --list-all pkcs11:token=west-static 2>&1)
	has "p11tool --list-all: the static key" "$out" "Type: Secret key"
	has "... addressed by id" "$out" "token=west-static;id=%50%50%4B%5F%49%44%5F%31;object=PPK_ID_1;type=secret-key"
	out=$(tool p11tool --provider "$MODULE" --list-mechanisms pkcs11:token=west-static 2>&1)
	has "p11tool --list-mechanisms" "$out" "CKM_GENERIC_SECRET_KEY_GEN"
else
	echo "# p11tool (gnutls-bin) not installed: skipped"
fi

# p11-kit reads user module files only for users other than root, so the
# check runs as nobody, with the configuration given by x-init-reserved.
p11kit_as_nobody() {
	local home=$WORK/home conf=$WORK/nobody.conf
	mkdir -p "$home/.config/pkcs11/modules"
	sed -e "s#^module:.*#module: $MODULE#" \
		-e "s%^#x-init-reserved:.*%x-init-reserved: config=$conf log=stderr%" \
		"$MODULE_FILE" >"$home/.config/pkcs11/modules/kmstore.module"
	sed "s#$WORK/#$home/#" "$WORK/static.conf" >"$conf"
	cp "$WORK/static.key" "$WORK/second.key" "$home/"
	chmod 600 "$conf"
	chown -R nobody "$home" "$conf"
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env -u KMSTORE_CONF HOME="$home" "$@" 2>&1
}

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$MODULE" &&
	[ -z "${P11_PRELOAD:-}" ]; then
	chmod 711 "$WORK"
	if command -v p11-kit >/dev/null; then
		out=$(p11kit_as_nobody p11-kit list-modules)
		has "p11-kit list-modules: kmstore.module, x-init-reserved" "$out" \
			"token: west-static"
	else
		echo "# p11-kit (package p11-kit) not installed: skipped"
	fi
	proxy=$(find /usr/lib /usr/lib64 -name p11-kit-proxy.so 2>/dev/null | head -1)
	if [ -n "$proxy" ] && command -v pkcs11-tool >/dev/null; then
		out=$(p11kit_as_nobody pkcs11-tool --module "$proxy" -L)
		has "pkcs11-tool through p11-kit-proxy" "$out" "token label *: west-static"
	else
		echo "# p11-kit-proxy (package p11-kit-modules) not installed: skipped"
	fi
else
	echo "# p11-kit module file: needs root and setpriv (to run as nobody)" \
		"and no sanitizer build: skipped"
fi

finish
