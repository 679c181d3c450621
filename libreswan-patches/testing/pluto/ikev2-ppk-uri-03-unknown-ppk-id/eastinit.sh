/testing/guestbin/swan-prep --nokeys
../../guestbin/kmstore-prep.sh
ipsec pluto --config /etc/ipsec.conf --leak-detective
../../guestbin/wait-until-pluto-started
ipsec add insist
ipsec add propose
echo "initdone"
