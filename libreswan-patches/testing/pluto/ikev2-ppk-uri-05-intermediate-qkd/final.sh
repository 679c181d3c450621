# the PPK_ID both ends used, in IKE_INTERMEDIATE
grep -e "ppk-uri=" -e "used in IKE_INTERMEDIATE" -e "PPK AUTH calculated" /tmp/pluto.log | grep -v "^|"
# the notify numbers: RFC 9867's (USE_PPK_INT 16445, PPK_IDENTITY_KEY
# 16446) from 5.4 on, the draft's private-use 0xc421 and 0xc420 before
grep -e "Notify Message Type: v2N_USE_PPK_INT" -e "Notify Message Type: v2N_PPK_IDENTITY_KEY" /tmp/pluto.log | sed -e 's/^| *//' | sort -u
../../guestbin/kme-sim.sh stop
ipsec whack --shutdown
