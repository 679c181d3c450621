# east insists on a PPK it does not have: fails
ipsec auto --up insist
# east proposes one: on without a PPK
ipsec auto --up propose
echo done
