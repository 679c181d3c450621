/* resolve.h - a KME's host name to addresses, within a time budget;
 * internal (etsi014.c).
 *
 * getaddrinfo() cannot be bounded: a slow or silent DNS server held a
 * fetch for the resolver's own timeouts (seconds each, per attempt and
 * server), whatever the profile's timeout said. Names are therefore
 * looked up with c-ares, in the calling thread (the PKCS#11 module may not
 * create threads), as the system's resolver would for "hosts: files dns":
 * /etc/hosts, then the DNS servers of /etc/resolv.conf. */
#ifndef KMS_RESOLVE_H
#define KMS_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

enum kms_resolve_result {
	KMS_RESOLVED,
	KMS_RESOLVE_ADDRESS, /* host is an address: nothing to look up */
	KMS_RESOLVE_TIMEOUT, /* the budget ran out first */
	KMS_RESOLVE_FAILED,  /* no such name, no answer, ... */
};

/* Writes host's addresses to out as CURLOPT_RESOLVE's ADDRESS list
 * ("192.0.2.10,[2001:db8::1]", in the resolver's order of preference),
 * and to *ttl_s how long the answer holds: the shortest TTL of the DNS
 * records in it, 0 for addresses read from /etc/hosts. An address (a
 * numeric host, IPv4 or IPv6) is not looked up: KMS_RESOLVE_ADDRESS, and
 * out is empty. On failure, *why says what went wrong (a static
 * string). */
enum kms_resolve_result kms_resolve(const char *host, int64_t budget_ms,
				    char *out, size_t out_size, long *ttl_s,
				    const char **why);

#endif
