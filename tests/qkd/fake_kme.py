#!/usr/bin/env python3
"""fake_kme.py - a scripted ETSI GS QKD 014 KME (HTTPS, mutual TLS, HTTP/1.1
keep-alive) on 127.0.0.1, for what kme-sim does not do: answers as other
servers give them. Usage: fake_kme.py PKI_DIR PORT_FILE MODE
Writes its port to PORT_FILE and one log line per connection ("conn N"),
request ("req N PATH") and TLS/record error ("error N ...") to PORT_FILE.log.
MODE:
  ok         every request gets a new 256-bit key
  dec-lost   a key ID is delivered once: the first dec_keys for it gets half
             its answer and the connection closes; later ones get HTTP 400
  enc-lost   every enc_keys answer is cut off halfway, the connection closed
  redirect   HTTP 307 to another URL
  big-503    HTTP 503 with an HTML page larger than any answer kmstore reads
  no-tls     accepts TCP connections and never answers the TLS handshake
  unpadded   keys in base64 without its '=' padding (43 characters)
  url-unpadded  keys in base64url (RFC 4648 section 5), unpadded, with '-'
"""
import base64, itertools, json, os, socket, ssl, sys, threading, uuid

pki, port_file, mode = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(pki + '/kme-a.crt', pki + '/kme-a.key')
ctx.load_verify_locations(pki + '/ca.crt')
ctx.verify_mode = ssl.CERT_REQUIRED
listener = socket.create_server(('127.0.0.1', 0))
log = open(port_file + '.log', 'a', buffering=1)
lock = threading.Lock()
conns = itertools.count(1)
delivered = set()


def say(line):
    with lock:
        log.write(line + '\n')


def read_request(c):
    data = b''
    while b'\r\n\r\n' not in data:
        d = c.recv(4096)
        if not d:
            return None
        data += d
    head, body = data.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    length = 0
    for l in lines[1:]:
        if l.lower().startswith('content-length:'):
            length = int(l.split(':', 1)[1])
    while len(body) < length:
        body += c.recv(4096)
    return lines[0].split(' ')[1], body


def answer(c, status, body, ctype='application/json', headers=''):
    body = body.encode()
    c.sendall(('HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n'
               % (status, ctype, len(body), headers)).encode() + body)


def container(kid):
    key = base64.b64encode(os.urandom(32)).decode()
    if mode == 'unpadded':
        key = key.rstrip('=')
    elif mode == 'url-unpadded':
        # a '-' (62) at the start: an alphabet that cannot be read as base64
        key = base64.urlsafe_b64encode(b'\xf8' + os.urandom(31)).decode().rstrip('=')
    return json.dumps({'keys': [{'key_ID': kid, 'key': key}]})


def serve(raw):
    n = next(conns)
    if mode == 'no-tls':
        say('conn %d tcp' % n)
        while raw.recv(4096):
            pass
        raw.close()
        return
    try:
        c = ctx.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError) as e:
        say('error %d handshake %s' % (n, e))
        return
    say('conn %d' % n)
    try:
        while True:
            r = read_request(c)
            if r is None:
                break
            path, body = r
            say('req %d %s' % (n, path))
            req = json.loads(body) if body else {}
            kid = str(uuid.uuid4())
            if 'key_IDs' in req:
                kid = req['key_IDs'][0]['key_ID']
            if mode in ('ok', 'unpadded', 'url-unpadded'):
                answer(c, '200 OK', container(kid))
            elif mode == 'dec-lost' and kid in delivered:
                answer(c, '400 Bad Request', json.dumps(
                    {'message': 'key not found or already retrieved'}))
            elif mode == 'dec-lost':
                delivered.add(kid)
                body = container(kid).encode()
                c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                          b'Content-Length: %d\r\n\r\n' % len(body) + body[:len(body) // 2])
                break
            elif mode == 'enc-lost' and path.endswith('/enc_keys'):
                body = container(kid).encode()
                c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                          b'Content-Length: %d\r\n\r\n' % len(body) + body[:len(body) // 2])
                break
            elif mode == 'redirect':
                answer(c, '307 Temporary Redirect', '', headers=
                       'Location: https://kme-2.example:8443/api/v1/keys/SAE_B/enc_keys\r\n')
            elif mode == 'big-503':
                answer(c, '503 Service Unavailable',
                       '<html><body>' + 'busy ' * 5000 + '</body></html>', 'text/html')
    except (OSError, ssl.SSLError) as e:
        say('error %d %s' % (n, e))
    finally:
        c.close()


with open(port_file + '.tmp', 'w') as f:
    f.write(str(listener.getsockname()[1]))
os.rename(port_file + '.tmp', port_file)
while True:
    s, _ = listener.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
