#!/usr/bin/python3
"""slow_dns.py - a DNS server that answers late, for the fault matrix.

  slow_dns.py ADDR NAME=IPV4 DELAY_MS READY_FILE [TTL]

Listens on ADDR port 53 (UDP) and answers every query after DELAY_MS
milliseconds: an A query for NAME with IPV4 (TTL seconds, 60 by default),
an AAAA query for NAME with no data, anything else with NXDOMAIN. Each
query is logged to stderr ("query NAME TYPE"), so a test can count them,
and waits in its own thread, so retries pile up as at a slow server;
'never' as DELAY_MS answers nothing (a silent server). READY_FILE is written once the socket is bound. Stops on
SIGTERM. Queries are parsed and answers built with dnspython (Debian:
python3-dnspython): /usr/bin/python3, not whatever python3 is first on PATH.
"""
import signal
import socket
import sys
import threading
import time

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def answer(query, name, ip, ttl):
    reply = dns.message.make_response(query)
    q = query.question[0] if query.question else None
    if q is None or q.name != name:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif q.rdtype == dns.rdatatype.A:
        reply.answer.append(dns.rrset.from_text(name, ttl, dns.rdataclass.IN,
                                                dns.rdatatype.A, ip))
    return reply.to_wire()


def serve(sock, name, ip, delay, ttl):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: ignored, as a server would
            continue
        if query.question:
            q = query.question[0]
            print(f"query {q.name} {dns.rdatatype.to_text(q.rdtype)}",
                  file=sys.stderr, flush=True)
        if delay is None:
            continue

        def later(q=query, p=peer):
            time.sleep(delay)
            sock.sendto(answer(q, name, ip, ttl), p)
        threading.Thread(target=later, daemon=True).start()


def main(argv):
    if len(argv) not in (5, 6) or "=" not in argv[2]:
        print(__doc__, file=sys.stderr)
        return 2
    addr, (name, ip), delay_ms, ready = argv[1], argv[2].split("=", 1), argv[3], argv[4]
    delay = None if delay_ms == "never" else int(delay_ms) / 1000.0
    ttl = int(argv[5]) if len(argv) == 6 else 60
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(ready, "w") as f:
        f.write(f"{addr}\n")
    serve(sock, dns.name.from_text(name), ip, delay, ttl)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
