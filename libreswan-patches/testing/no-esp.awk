# no-esp.awk: drops the lines of a sanitized console that need ESP in the
# kernel.
#
# libreswan-patches/testing/run.sh runs it over the expected and the
# actual console of a stock case that failed (both already through
# libreswan's sanitizers), on a kernel with XFRM but no ESP: there pluto
# negotiates the IKE SA and the Child SA, but the kernel refuses the Child
# SA's ESP state, so the Child SA, the pings through it and its traffic
# status differ while every IKE SA and PPK line still matches.
#
# Lines of the Child SA are dropped; two IKE SA lines name it and are
# cut instead: the Child SA's payloads in the IKE_AUTH response's list
# (SA, TSi, TSr as expected; 5.4's N(TEMPORARY_FAILURE) here), and
# "(and Child SA #N)" when the IKE SA is deleted. Everything else of
# those lines, the PPK notifies among them, is compared.

# the output of a command that needs the tunnel, up to the next prompt
skip && /^[a-z]+ #$/ { skip = 0 }
skip { next }
/^ (\.\.\/\.\.\/guestbin\/ping-once\.sh --up|ipsec whack --trafficstatus|ipsec trafficstatus)/ {
	print
	skip = 1
	next
}

# the Child SA's payloads in the IKE_AUTH response, and in a delete
/ IKE_AUTH response from .* containing SK\{/ {
	sub(/,SA,TSi,TSr\}$/, "}")
	sub(/,N\(TEMPORARY_FAILURE\)\}$/, "}")
}
/: initiating delete of connection's IKE SA #[0-9]+ \(and Child SA #[0-9]+\)$/ {
	sub(/ \(and Child SA #[0-9]+\)$/, "")
}

# the Child SA as it is established, or refused after IKE_AUTH (5.2,
# then 5.4)
/^"[^"]*"( \[[0-9]+\])? #[0-9]+: (initiator|responder) established Child SA using #[0-9]+; / { next }
/: IKE_AUTH response missing v2SA, v2TSi or v2TSr: not attempting to setup CHILD SA$/ { next }
/: IKE SA established but initiator rejected Child SA response$/ { next }
/^ERROR: "[^"]*".* #[0-9]+: netlink response for (Add|Del) SA / { next }
/^"[^"]*".* #[0-9]+: connection is supposed to remain up; revival attempt [0-9]+ scheduled in 0 seconds$/ { next }
/^"[^"]*".* #[0-9]+: IMPAIR: revival: skip scheduling revival event$/ { next }
/^"[^"]*".* #[0-9]+: IKE_AUTH response rejected Child SA with TEMPORARY_FAILURE$/ { next }
/^IMPAIR: "[^"]*".* #[0-9]+: revival: skip scheduling CONNECTION_REVIVAL event in 0 seconds$/ { next }
/^"[^"]*".* #[0-9]+: ESP traffic information: / { next }

{ print }
