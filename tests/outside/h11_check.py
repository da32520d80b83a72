#!/usr/bin/python3
"""An outside, strict HTTP/1.1 client that none of us wrote: Debian's python3-h11, against a
running shoal on 127.0.0.1:PORT serving the demo config (server.toml's routes). Every response
shape shoal produces goes through h11's client state machine; any response h11 rejects, or an
answer other than the expected one, fails the run.

    /usr/bin/python3 tests/outside/h11_check.py PORT
Exit 0 and "N exchanges ok" when all pass; 1 and what failed otherwise; 2 when h11 is missing.
"""
import socket
import sys

try:
    import h11
except ImportError:
    print("h11_check: python3-h11 is missing (./build.sh test installs it)", file=sys.stderr)
    sys.exit(2)

PORT = int(sys.argv[1])
failures = []
exchanges = 0


def request_bytes(events):
    """The bytes h11 itself writes for one request (a throwaway client connection)."""
    writer = h11.Connection(h11.CLIENT)
    return b"".join(writer.send(event) or b"" for event in events)


def run(name, requests, expect, raw=None, close=False):
    """Sends `requests` (lists of h11 events), pipelined in one write, or `raw` bytes standing in
    for them, on one connection, and reads one response per request through h11's client state
    machine. `expect` is a list of (status, body or None, {header: value, or None for absent})."""
    global exchanges
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    try:
        sock.sendall(raw if raw is not None else b"".join(request_bytes(r) for r in requests))
        conn = h11.Connection(h11.CLIENT)
        got = []
        for index, events in enumerate(requests[:len(expect)]):
            if index:
                conn.start_next_cycle()
            for event in events:
                conn.send(event)  # only to tell h11 what was asked (HEAD has no body, ...)
            status, body, headers = None, b"", {}
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = sock.recv(65536)
                    if not chunk and status is None:
                        failures.append(f"{name}: closed after {len(got)} of {len(expect)} responses")
                        return
                    conn.receive_data(chunk)
                    continue
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            got.append((status, body, headers))
        for (status, body, headers), (want_status, want_body, want_headers) in zip(got, expect):
            exchanges += 1
            if status != want_status:
                failures.append(f"{name}: status {status}, expected {want_status}")
            if want_body is not None and body != want_body:
                failures.append(f"{name}: body {body!r}, expected {want_body!r}")
            for key, value in want_headers.items():
                if value is None and key in headers:
                    failures.append(f"{name}: has {key}: {headers[key]}")
                elif value is not None and headers.get(key) != value:
                    failures.append(f"{name}: {key} is {headers.get(key)!r}, expected {value!r}")
        if close:
            sock.settimeout(3)
            if sock.recv(1):
                failures.append(f"{name}: bytes after a Connection: close response")
    except h11.ProtocolError as e:
        failures.append(f"{name}: h11 rejected the response: {e!r}")
    except OSError as e:
        failures.append(f"{name}: {e!r}")
    finally:
        sock.close()


def get(path, method="GET", headers=(), body=None):
    hdrs = [("Host", "127.0.0.1")] + list(headers)
    events = []
    if body is not None:
        hdrs.append(("Content-Length", str(len(body))))
    events.append(h11.Request(method=method, target=path, headers=hdrs))
    if body is not None:
        events.append(h11.Data(data=body))
    events.append(h11.EndOfMessage())
    return events


HELLO = open("public/hello.txt", "rb").read()

# Every route of the demo config.
run("GET /hello", [get("/hello")], [(200, b"ok\n", {"content-type": "text/plain", "connection": "keep-alive"})])
run("GET /slow", [get("/slow")], [(200, b"slow ok\n", {})])
run("POST /echo", [get("/echo", "POST", [("Content-Type", "text/x-echo")], b"hello h11")],
    [(200, b"hello h11", {"content-type": "text/x-echo"})])
run("GET /static/hello.txt", [get("/static/hello.txt")], [(200, HELLO, {"accept-ranges": "bytes"})])
run("GET /static/ (index)", [get("/static/")], [(200, None, {"content-type": "text/html; charset=utf-8"})])
run("GET /info", [get("/info")], [(200, None, {})])
run("GET /healthz", [get("/healthz")], [(200, b"ok\n", {})])
run("GET /readyz", [get("/readyz")], [(200, b"ready\n", {})])
run("GET /nope", [get("/nope")], [(404, b"not found\n", {})])

# Every response shape.
run("HEAD", [get("/hello", "HEAD")], [(200, b"", {"content-length": "3"})])
run("HEAD static", [get("/static/hello.txt", "HEAD")], [(200, b"", {"content-length": str(len(HELLO))})])
run("pipelined", [get("/hello"), get("/echo", "POST", body=b"two"), get("/static/hello.txt")],
    [(200, b"ok\n", {}), (200, b"two", {}), (200, HELLO, {})])
run("Connection: close", [get("/hello", headers=[("Connection", "close")])],
    [(200, b"ok\n", {"connection": "close"})], close=True)
run("100-continue", [get("/echo", "POST", [("Expect", "100-continue")], b"after 100")], [(200, b"after 100", {})])
run("chunked request body", [[h11.Request(method="POST", target="/echo",
                                          headers=[("Host", "127.0.0.1"), ("Transfer-Encoding", "chunked")]),
                              h11.Data(data=b"abc"), h11.Data(data=b"def"), h11.EndOfMessage()]],
    [(200, b"abcdef", {})])
run("405 with Allow", [get("/static/hello.txt", "POST", body=b"")], [(405, None, {"allow": "GET, HEAD"})])

# Validators and ranges (304 has no content; 206 and 416 carry Content-Range).
first = socket.create_connection(("127.0.0.1", PORT), timeout=5)
first.sendall(b"HEAD /static/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
head = b""
while True:
    chunk = first.recv(4096)
    if not chunk:
        break
    head += chunk
first.close()
etag = next((line.split(b": ", 1)[1].decode() for line in head.split(b"\r\n") if line.lower().startswith(b"etag:")), "")
if not etag:
    failures.append("no ETag on a static file")
run("304 If-None-Match", [get("/static/hello.txt", headers=[("If-None-Match", etag)])], [(304, b"", {"etag": etag})])
run("304 then 200 on one connection", [get("/static/hello.txt", headers=[("If-None-Match", etag)]), get("/hello")],
    [(304, b"", {"content-length": None}), (200, b"ok\n", {})])
run("412 If-Match", [get("/static/hello.txt", headers=[("If-Match", '"other"')])], [(412, None, {})])
run("206 Range", [get("/static/hello.txt", headers=[("Range", "bytes=0-4")])],
    [(206, HELLO[:5], {"content-range": f"bytes 0-4/{len(HELLO)}"})])
run("416 Range", [get("/static/hello.txt", headers=[("Range", "bytes=9999-")])],
    [(416, None, {"content-range": f"bytes */{len(HELLO)}"})])

# Refusals: a 400 and a close that h11 reads as a complete response.
run("400 and close", [get("/hello")], [(400, None, {"connection": "close"})],
    raw=b"GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", close=True)
run("501 and close", [get("/hello")], [(501, None, {"connection": "close"})],
    raw=b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", close=True)

if failures:
    for f in failures:
        print("h11_check:", f, file=sys.stderr)
    sys.exit(1)
print(f"h11_check: {exchanges} exchanges ok")
