# no-esp.awk: drops the lines of a sanitized console that need ESP in the
# kernel.
#
# libreswan-patches/testing/run.sh runs it over the expected and the
# actual console of a stock case that failed (both already through
# libreswan's sanitizers), on a kernel with XFRM but no ESP: there pluto
# negotiates the IKE SA and the Child SA, but the kernel refuses the Child
# SA's ESP state, so the Child SA, the pings through it and its traffic
# status differ while every IKE SA and PPK line still matches.

# the output of a command that needs the tunnel, up to the next prompt
skip && /^[a-z]+ #$/ { skip = 0 }
skip { next }
/^ (\.\.\/\.\.\/guestbin\/ping-once\.sh --up|ipsec whack --trafficstatus|ipsec trafficstatus)/ {
	print
	skip = 1
	next
}

# the Child SA as it is established, or refused after IKE_AUTH
/^"[^"]*"( \[[0-9]+\])? #[0-9]+: (initiator|responder) established Child SA using #[0-9]+; / { next }
/: IKE_AUTH response missing v2SA, v2TSi or v2TSr: not attempting to setup CHILD SA$/ { next }
/: IKE SA established but initiator rejected Child SA response$/ { next }
/^ERROR: "[^"]*".* #[0-9]+: netlink response for (Add|Del) SA / { next }
/^"[^"]*".* #[0-9]+: connection is supposed to remain up; revival attempt [0-9]+ scheduled in 0 seconds$/ { next }
/^"[^"]*".* #[0-9]+: IMPAIR: revival: skip scheduling revival event$/ { next }

{ print }
