ipsec up qkd
sleep 1
ipsec up static
# each IKE SA is reauthenticated 15 s after it came up (and 15 s later again)
sleep 20
grep "initiate reauthentication" /tmp/pluto.log
# no more reauthentication: the logs stay as they are
ipsec delete qkd
ipsec delete static
echo done
