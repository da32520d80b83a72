"""An ASGI app under shoal, served by Debian's uvicorn on the socket shoal hands it (fd 3).

shoal starts it with `uvicorn --fd 3 app:app`; it says READY=1 once its start-up is done (the
socket already queues connections, so none is lost in between). On SIGTERM uvicorn drains: it
stops accepting, finishes in-flight requests, closes idle keep-alive connections, then runs the
lifespan shutdown below, where the app's own cleanups go.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
import shoal_notify  # noqa: E402

GENERATION = os.environ.get("SHOAL_GENERATION", "0")
START_DELAY_S = float(os.environ.get("APP_START_DELAY_S", "0"))  # a slow start-up, to try a reload on
NEVER_READY = os.environ.get("APP_NEVER_READY") == "1"
draining = False


async def app(scope, receive, send):
    global draining
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(START_DELAY_S)
                if not NEVER_READY:
                    shoal_notify.ready()
                    shoal_notify.status("serving")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                shoal_notify.status("cleaning up")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/slow"):
        await asyncio.sleep(float(dict(p.split("=") for p in scope["query_string"].decode().split("&") if "=" in p).get("s", "1")))
    body = f"pid={os.getpid()} generation={GENERATION} path={path}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
