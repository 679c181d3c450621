# the PPKs each end used
grep -e "ppk-uri=" -e "PPK AUTH calculated" /tmp/pluto.log | grep -v "^|"
ipsec whack --shutdown
