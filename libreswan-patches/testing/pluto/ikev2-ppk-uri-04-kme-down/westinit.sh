/testing/guestbin/swan-prep --nokeys
../../guestbin/kmstore-prep.sh
ipsec pluto --config /etc/ipsec.conf --leak-detective
../../guestbin/wait-until-pluto-started
ipsec add qkd
ipsec add static
# IKE SAs only: the same with or without ESP in the kernel
ipsec whack --impair omit_v2_ike_auth_child
ipsec whack --impair suppress_retransmits
ipsec whack --impair revival
echo "initdone"
