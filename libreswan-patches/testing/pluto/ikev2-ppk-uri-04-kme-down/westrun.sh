# east's KME is silent: east gives up after 3 s, insist fails
start=$(date +%s)
ipsec up qkd
test $(($(date +%s) - start)) -lt 10 && echo "answered in less than 10 s"
# the KMEs saw west's enc_keys, and east's dec_keys went unanswered
sed -e 's/^[^ ]* //' OUTPUT/kme/kme-sim.log
# east still serves
ipsec up static
echo done
