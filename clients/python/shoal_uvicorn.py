"""Serve an ASGI app under shoal with Debian's uvicorn: `python3 shoal_uvicorn.py module:app`.

What uvicorn's own `--fd 3` leaves out, in one small file with no dependency but uvicorn:
  - READY=1 once the socket is served (after the app's lifespan start-up), STATUS= lines;
  - the drain that the seeds' articles describe, on SHOAL_DRAIN_SIGNAL (SIGTERM by default):
    the readiness path (SHOAL_READINESS_PATH, /readyz) answers 503 at once (not when a new
    generation takes over the sockets: the instance stays ready), the app keeps serving
    for the drain delay (the "drain_delay_ms=N" line shoal writes on SHOAL_CONTROL_FD before the
    signal: 0 when a new generation takes over the sockets; else SHOAL_DRAIN_DELAY_MS) with
    Connection: close on every response, then the listener closes, in-flight requests finish,
    a keep-alive connection idle for SHOAL_IDLE_GRACE_MS closes (one that has not sent its first
    request yet gets 2 s to send it), the lifespan shutdown runs (the app's cleanups), and the
    process exits 0;
  - without LISTEN_FDS (not under shoal), it listens on 127.0.0.1:$PORT (8000) for development.
"""
import asyncio
import os
import re
import signal
import sys

import uvicorn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_notify  # noqa: E402

READINESS_PATH = os.environ.get("SHOAL_READINESS_PATH", "/readyz")
DRAIN_DELAY_S = int(os.environ.get("SHOAL_DRAIN_DELAY_MS", "0")) / 1000
DRAIN_SIGNAL = getattr(signal, os.environ.get("SHOAL_DRAIN_SIGNAL", "SIGTERM"))
FIRST_REQUEST_S = 2.0  # a connection that has sent nothing yet gets this long to send its request
IDLE_GRACE_S = int(os.environ.get("SHOAL_IDLE_GRACE_MS", "250")) / 1000


def drain_delay_now():
    """What shoal said just before the signal, or (no line: the master is gone, or someone else
    sent the signal) the shutdown's drain delay."""
    fd = os.environ.get("SHOAL_CONTROL_FD")
    if fd:
        try:
            said = re.findall(rb"drain_delay_ms=(\d+)", os.read(int(fd), 4096))
            if said:
                return int(said[-1]) / 1000
        except OSError:  # BlockingIOError: nothing written
            pass
    return DRAIN_DELAY_S


class Readiness:
    """ASGI middleware: answers the readiness path itself, 200 or 503 once draining."""

    def __init__(self, app):
        self.app = app
        self.draining = False  # every response ends its connection
        self.unready = False   # the readiness path answers 503: draining for a shutdown, not a hand-over

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def closing_send(message):
            # While draining, every response ends its connection: keep-alive clients move on at once.
            if message["type"] == "http.response.start" and self.draining:
                message = dict(message, headers=[*message.get("headers", []), (b"connection", b"close")])
            await send(message)

        if scope["path"] == READINESS_PATH:
            status, body = (503, b"draining\n") if self.unready else (200, b"ready\n")
            await closing_send({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, closing_send)


class Server(uvicorn.Server):
    def __init__(self, config, readiness):
        super().__init__(config)
        self.readiness = readiness

    def install_signal_handlers(self):
        loop = asyncio.get_event_loop()
        loop.add_signal_handler(DRAIN_SIGNAL, self.drain)
        if DRAIN_SIGNAL != signal.SIGINT:
            loop.add_signal_handler(signal.SIGINT, self.drain)

    def drain(self):
        if self.readiness.draining:
            self.force_exit = True  # a second signal: stop now
            return
        delay = drain_delay_now()
        self.readiness.draining = True
        self.readiness.unready = delay > 0
        asyncio.get_event_loop().call_later(delay, setattr, self, "should_exit", True)
        shoal_notify.status("draining")

    async def shutdown(self, sockets=None):
        # uvicorn would close every connection without a request in progress at once, racing a
        # keep-alive client's next request. Instead, as shoal's own workers do: no new connection;
        # in-flight requests finish (their response says Connection: close); a connection idle
        # for SHOAL_IDLE_GRACE_MS closes; one that has sent nothing yet gets FIRST_REQUEST_S.
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + FIRST_REQUEST_S
        while self.server_state.connections:
            now, waiting = loop.time(), False
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is None:  # accepted, nothing asked yet
                    waiting = waiting or now < first_deadline
                    if now >= first_deadline:
                        connection.shutdown()
                elif not cycle.response_complete:  # in flight
                    waiting = True
                else:  # idle keep-alive: since its keep-alive timer started
                    timer = getattr(connection, "timeout_keep_alive_task", None)
                    idle_since = timer.when() - self.config.timeout_keep_alive if timer else now - IDLE_GRACE_S
                    if now - idle_since >= IDLE_GRACE_S:
                        connection.shutdown()
                    else:
                        waiting = True
            if not waiting:
                break
            await asyncio.sleep(0.01)
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if not self.should_exit:
            shoal_notify.ready()
            shoal_notify.status("serving")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: shoal_uvicorn.py module:app")
    sys.path.insert(0, os.getcwd())
    module, _, name = sys.argv[1].partition(":")
    app = getattr(__import__(module), name or "app")
    readiness = Readiness(app)
    if os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") == str(os.getpid()):
        config = uvicorn.Config(readiness, fd=3, access_log=False, lifespan="auto")
    else:
        config = uvicorn.Config(readiness, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), access_log=False)
    Server(config, readiness).run()


if __name__ == "__main__":
    main()
