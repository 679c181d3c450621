ipsec auto --up westnet-eastnet-ppk-uri
echo done
