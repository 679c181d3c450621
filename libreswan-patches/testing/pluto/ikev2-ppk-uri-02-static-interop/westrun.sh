# west (its token) initiates; east answers from ipsec.secrets
ipsec up westnet-eastnet-ppk
echo done
