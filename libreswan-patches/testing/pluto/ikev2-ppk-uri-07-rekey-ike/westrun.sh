ipsec up qkd
ipsec up static
ipsec whack --rekey-ike --name qkd
ipsec whack --rekey-ike --name static
# the rekeyed IKE SAs are up
ipsec whack --showstates
echo done
