# what each end made of PPK_ID_2
grep -e "ppk-uri=" -e "PPK_ID" -e "PPK AUTH" -e "NO_PPK" -e "AUTHENTICATION_FAILED" -e "established IKE SA" /tmp/pluto.log | grep -v "^|"
ipsec whack --shutdown
