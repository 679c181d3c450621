# east insists on a PPK it does not have: fails
ipsec up insist
# east proposes one: on without a PPK
ipsec up propose
echo done
