"""sd_notify(3) for an app under shoal (or systemd), with the standard library only.

    import shoal_notify
    shoal_notify.ready()              # READY=1: shoal may now drain the previous generation
    shoal_notify.status("warm cache") # STATUS=...: shown by `shoal status`
    shoal_notify.watchdog()           # WATCHDOG=1: call at least every WATCHDOG_USEC / 2

Each call is one datagram to NOTIFY_SOCKET ("@name" is Linux's abstract namespace) and returns
False when there is no NOTIFY_SOCKET (not under a supervisor) or nobody receives it any more (the
supervisor is gone), so the same app runs anywhere and a notification never raises.
"""
import os
import socket


def notify(text: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(text.encode(), address)
        return True
    except OSError:
        return False


def ready() -> bool:
    return notify("READY=1")


def status(text: str) -> bool:
    return notify("STATUS=" + text.replace("\n", " "))


def watchdog() -> bool:
    return notify("WATCHDOG=1")
