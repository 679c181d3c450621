#!/bin/sh
# kme-sim.sh start [KME-SIM-OPTION...] | stop
#
# The KMEs of a QKD network for the ikev2-ppk-uri-* tests: kme-sim (from
# kmstore; with kme-sim-pki, installed in the test VMs) serving KME_A, for
# west's SAE_A, on 192.1.2.23:8443 and KME_B, for east's SAE_B, on
# 192.1.2.23:8444, joined by one simulated QKD link.  Runs on east (the
# first host a test prepares); its PKI, log and state go into OUTPUT/kme/,
# where west finds its SAE certificate.  Key IDs count up
# (--sequential-ids), so that the PPK_IDs in the console output are the
# same at every run; options (for instance a --fault) go to kme-sim.
#
# stop (from final.sh, on every host): only the host that started
# kme-sim stops it.
set -e
kme=$PWD/OUTPUT/kme
case $1 in
start)
	shift
	rm -rf $kme
	mkdir -p $kme
	kme-sim-pki $kme/pki --ip 192.1.2.23 > $kme/pki.log
	kme-sim --sequential-ids --ca $kme/pki/ca.crt \
		--kme id=KME_A,listen=192.1.2.23:8443,cert=$kme/pki/kme-a.crt,key=$kme/pki/kme-a.key,sae=SAE_A \
		--kme id=KME_B,listen=192.1.2.23:8444,cert=$kme/pki/kme-b.crt,key=$kme/pki/kme-b.key,sae=SAE_B \
		--ready-file $kme/ready "$@" > /dev/null 2> $kme/kme-sim.log &
	echo $! > $kme/pid
	hostname > $kme/host
	i=0
	while [ ! -s $kme/ready ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	cat $kme/ready
	;;
stop)
	if [ -f $kme/pid ] && [ "$(cat $kme/host)" = "$(hostname)" ]; then
		kill $(cat $kme/pid)
		rm $kme/pid
	fi
	;;
*)
	echo "usage: $0 start [kme-sim option...] | stop" >&2
	exit 2
	;;
esac
