# the PPK_IDs both ends used: a new key for each IKE SA of qkd
grep -e "ppk-uri=" -e "PPK AUTH calculated" /tmp/pluto.log | grep '^"qkd"'
# and the same key for each IKE SA of static
grep -e "ppk-uri=" -e "PPK AUTH calculated" /tmp/pluto.log | grep '^"static"'
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
