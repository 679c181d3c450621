#!/bin/sh
# kmstore-prep.sh: after swan-prep, this host's kmstore configuration in
# /etc/kmstore and the kmstore PKCS#11 module in pluto's NSS database
# (kmstore-nss-register), so that ppk-uri=pkcs11:token=PROFILE finds:
#
#   qkd       (when kme-sim.sh runs on east) this host's SAE at its KME:
#             west is SAE_A at KME_A, east SAE_B at KME_B; 3 s a request
#   static    PPK_ID_1 and a fixed 256-bit test key (the same as
#             @west @east : PPKS "PPK_ID_1" 0x84f40aff...84ef)
#   static-2  PPK_ID_2 and another fixed key
#
# Prints what kmstore check says of the configuration.  Needs kmstore,
# kmstore-nss-register and the module installed (kmstore's
# cmake --install, /usr/local).
set -e
umask 077
host=$(hostname)
kme=$PWD/OUTPUT/kme
case $host in
west) sae=SAE_A peer=SAE_B port=8443 cert=sae-a ;;
east) sae=SAE_B peer=SAE_A port=8444 cert=sae-b ;;
*) echo "kmstore-prep.sh: west or east, not $host" >&2; exit 1 ;;
esac

# one /etc/kmstore per host: in a namespace (nsrun) /etc is the host's,
# so give it one as swan-prep does /etc/ipsec.d
if [ -n "$SWAN_PLUTOTEST" ]; then
	mkdir -p $PWD/NS/$host/etc/kmstore /etc/kmstore
	mount --bind $PWD/NS/$host/etc/kmstore /etc/kmstore
fi
rm -rf /etc/kmstore/*
mkdir -p /etc/kmstore
if [ -f $kme/pki/ca.crt ]; then
	cp $kme/pki/ca.crt $kme/pki/$cert.crt $kme/pki/$cert.key /etc/kmstore/
	chmod 600 /etc/kmstore/$cert.key
	cat > /etc/kmstore/kmstore.conf <<CONF
[qkd]
type         = qkd
url          = https://192.1.2.23:$port
local-sae-id = $sae
peer-sae-id  = $peer
certificate  = /etc/kmstore/$cert.crt
private-key  = /etc/kmstore/$cert.key
ca           = /etc/kmstore/ca.crt
key-size     = 256
timeout      = 3

CONF
fi
cat >> /etc/kmstore/kmstore.conf <<CONF
[static]
type   = static
key-id = PPK_ID_1
key    = hex:84f40aff132b05ea6249b9257251f11d301287e296e9e7603633d5c859c084ef

[static-2]
type   = static
key-id = PPK_ID_2
key    = hex:f6ccf4ea16b00eb98b40e51d8523c61e9023eb2a7b7ff3a86715953099610fb3
CONF
chmod 600 /etc/kmstore/kmstore.conf
kmstore --config /etc/kmstore/kmstore.conf check
# pluto's NSS database: 5.4 prints the one setting asked for (and its
# --configsetup without a name frees a strndup()ed name with pfree(), an
# ASSERTION FAILED under the leak detective); 5.2 prints them all
nssdir=$(ipsec addconn --configsetup=nssdir 2>/dev/null) ||
	nssdir=$(ipsec addconn --configsetup | sed -n "s/^export nssdir='\(.*\)'$/\1/p")
[ -n "$nssdir" ] || { echo "kmstore-prep.sh: ipsec addconn names no nssdir" >&2; exit 1; }
kmstore-nss-register --dbdir $nssdir --config /etc/kmstore/kmstore.conf > /dev/null
