# west (its token) initiates; east answers from ipsec.secrets
ipsec auto --up westnet-eastnet-ppk
echo done
