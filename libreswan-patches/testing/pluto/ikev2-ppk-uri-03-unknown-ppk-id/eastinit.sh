/testing/guestbin/swan-prep --nokeys
../../guestbin/kmstore-prep.sh
ipsec pluto --config /etc/ipsec.conf --leak-detective
../../guestbin/wait-until-pluto-started
ipsec auto --add insist
ipsec auto --add propose
echo "initdone"
