/testing/guestbin/swan-prep --nokeys
../../guestbin/kme-sim.sh start
../../guestbin/kmstore-prep.sh
ipsec pluto --config /etc/ipsec.conf --leak-detective
../../guestbin/wait-until-pluto-started
ipsec add qkd
ipsec add static
echo "initdone"
