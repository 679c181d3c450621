# the PPK_IDs both ends used, one key per IKE SA
grep -e "ppk-uri=" -e "PPK AUTH calculated" /tmp/pluto.log | grep -v "^|"
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
