# east (ipsec.secrets) initiates; west answers from its token
ipsec up westnet-eastnet-ppk
ipsec down westnet-eastnet-ppk
