ipsec up westnet-eastnet-ppk-uri
echo done
