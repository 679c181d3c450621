# the PPK_ID both ends used, in IKE_INTERMEDIATE
grep -e "ppk-uri=" -e "PPK used in IKE_INTERMEDIATE" -e "PPK AUTH calculated" /tmp/pluto.log | grep -v "^|"
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
