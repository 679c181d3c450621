# one PPK per connection: the rekeyed IKE SAs took none
grep -e "ppk-uri=" -e "PPK AUTH calculated" /tmp/pluto.log | grep -v "^|"
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
