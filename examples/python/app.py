"""A plain ASGI app under shoal, served by Debian's uvicorn on the socket shoal hands it (fd 3).

shoal starts it with `python3 ../../clients/python/shoal_uvicorn.py app:app`, which says READY=1
once the socket is served and drains on SIGTERM (readiness 503, the drain delay, then uvicorn's
graceful shutdown); the lifespan shutdown below is where the app's own cleanups go. An app that
never becomes ready (APP_NEVER_READY=1) or starts slowly (APP_START_DELAY_S) is there to try
shoal's reload on.
"""
import asyncio
import os
import sys
from urllib.parse import parse_qs

GENERATION = os.environ.get("SHOAL_GENERATION", "0")
START_DELAY_S = float(os.environ.get("APP_START_DELAY_S", "0"))  # a slow start-up, to try a reload on
NEVER_READY = os.environ.get("APP_NEVER_READY") == "1"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(START_DELAY_S)
                while NEVER_READY:  # a start-up that never ends: shoal stops it at ready_timeout
                    await asyncio.sleep(3600)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("cleanup: nothing to close in this example", file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/slow"):
        await asyncio.sleep(float(parse_qs(scope["query_string"].decode()).get("s", ["1"])[0]))
    body = f"pid={os.getpid()} generation={GENERATION} path={path}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
