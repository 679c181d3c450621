grep -e "ppk-uri=" -e "PPK AUTH calculated" -e "AUTHENTICATION_FAILED" /tmp/pluto.log | grep -v "^|"
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
