ipsec auto --up westnet-eastnet-ppk-uri
# a second IKE SA takes the next key
ipsec auto --down westnet-eastnet-ppk-uri
ipsec auto --up westnet-eastnet-ppk-uri
echo done
