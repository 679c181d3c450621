# east (ipsec.secrets) initiates; west answers from its token
ipsec auto --up westnet-eastnet-ppk
ipsec auto --down westnet-eastnet-ppk
