#!/usr/bin/env bash
# The provider from openssl.cnf: autoloaded with its kmstore-config
# parameter, which wins over $KMSTORE_CONF; without it $KMSTORE_CONF counts.
source "$(dirname "$0")/lib.sh"
make_store
kcv=$(kcv_of "$work/west-east.key")
mkdir "$work/other"
cat >"$work/other/kmstore.conf" <<CONF
[other-profile]
type = static
key-id = OTHER
key = hex:$(od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n')
CONF
chmod 600 "$work/other/kmstore.conf"

write_cnf() { # FILE [PARAM-LINE]
	cat >"$1" <<-CNF
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
	${2:-}
	activate = 1
	CNF
}
write_cnf "$work/openssl.cnf" "kmstore-config = $work/kmstore.conf"
write_cnf "$work/openssl-noparam.cnf"

# with_cnf OPENSSL_CNF KMSTORE_CONF openssl-arguments...
with_cnf() {
	local cnf=$1 conf=$2
	shift 2
	OPENSSL_CONF=$cnf KMSTORE_CONF=$conf ossl "$@"
}

run out with_cnf "$work/openssl.cnf" "$work/other/kmstore.conf" list -providers
check "openssl.cnf: provider active" has "$out" "kmstore key store"

run out with_cnf "$work/openssl.cnf" "$work/other/kmstore.conf" storeutl kmstore:
check "openssl.cnf: storeutl with no -provider options" has "$out" "Total found: 2"
check "kmstore-config wins over KMSTORE_CONF" has "$out" "kmstore:profile=west-east-static"

run out with_cnf "$work/openssl.cnf" "" storeutl -text kmstore:profile=west-east-static
check "openssl.cnf: key and check value" has "$out" "check-value: $kcv"

run out with_cnf "$work/openssl-noparam.cnf" "$work/other/kmstore.conf" storeutl kmstore:
check "no parameter: KMSTORE_CONF is read" has "$out" "kmstore:profile=other-profile"
check "no parameter: one profile" has "$out" "Total found: 1"

finish
