ipsec up westnet-eastnet-ppk-uri
# a second IKE SA takes the next key
ipsec down westnet-eastnet-ppk-uri
ipsec up westnet-eastnet-ppk-uri
echo done
