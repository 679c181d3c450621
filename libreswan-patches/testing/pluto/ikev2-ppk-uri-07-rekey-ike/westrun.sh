ipsec auto --up qkd
ipsec auto --up static
ipsec whack --rekey-ike --name qkd
ipsec whack --rekey-ike --name static
# the rekeyed IKE SAs are up
ipsec whack --showstates
echo done
