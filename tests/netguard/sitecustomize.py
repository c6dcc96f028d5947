"""A network guard loaded at interpreter start (put this folder first on PYTHONPATH).

Every connection, datagram or name lookup that would leave the machine is refused the way an
offline machine refuses it (`OSError`), and one line is appended to the file named by
PALIMPSEST_NETGUARD_LOG: what was attempted, where, and the innermost frames that asked for it.
Loopback (127.0.0.0/8, ::1, localhost) and Unix sockets stay open, so a local server and its
browser still work. The guard changes nothing else: offline switches such as HF_HUB_OFFLINE are
left to the code under test.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import traceback

LOG_PATH = os.environ.get("PALIMPSEST_NETGUARD_LOG")
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_lock = threading.Lock()


def _is_local_host(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): a wildcard for binding, never a lookup
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()
    if name in LOCAL_NAMES or name == "":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a name that would need DNS
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _is_local_address(family: int, address: object) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if isinstance(address, tuple) and address:
        return _is_local_host(address[0])
    return False


def _refuse(what: str, target: object) -> OSError:
    frames = traceback.extract_stack()[:-2]
    stack = " <- ".join(
        f"{os.path.basename(frame.filename)}:{frame.lineno} {frame.name}"
        for frame in reversed(frames[-16:])
    )
    line = f"pid={os.getpid()} {what} {target!r} | {stack}\n"
    if LOG_PATH:
        with _lock, open(LOG_PATH, "a", encoding="utf-8") as log:
            log.write(line)
    # ENETUNREACH for connections, a failed lookup for names: what an offline machine answers.
    if what in {"getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"}:
        return socket.gaierror(socket.EAI_NONAME, f"network blocked by the test guard: {target}")
    return OSError(101, f"Network is unreachable (blocked by the test guard): {target}")


def install() -> None:
    base = socket.socket
    connect, connect_ex = base.connect, base.connect_ex
    sendto, sendmsg = base.sendto, getattr(base, "sendmsg", None)

    def guarded_connect(self, address):
        if not _is_local_address(self.family, address):
            raise _refuse("connect", address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if not _is_local_address(self.family, address):
            _refuse("connect_ex", address)
            return 101  # ENETUNREACH
        return connect_ex(self, address)

    def guarded_sendto(self, data, *args):
        address = args[-1]
        if not _is_local_address(self.family, address):
            raise _refuse("sendto", address)
        return sendto(self, data, *args)

    base.connect, base.connect_ex, base.sendto = guarded_connect, guarded_connect_ex, guarded_sendto

    if sendmsg is not None:

        def guarded_sendmsg(self, buffers, ancdata=(), flags=0, address=None):
            if address is not None and not _is_local_address(self.family, address):
                raise _refuse("sendmsg", address)
            if address is None:
                return sendmsg(self, buffers, ancdata, flags)
            return sendmsg(self, buffers, ancdata, flags, address)

        base.sendmsg = guarded_sendmsg

    create_connection = socket.create_connection

    def guarded_create_connection(address, *args, **kwargs):
        if not _is_local_host(address[0]):
            raise _refuse("create_connection", address)
        return create_connection(address, *args, **kwargs)

    socket.create_connection = guarded_create_connection

    def lookup(name: str, original):
        def guarded(host, *args, **kwargs):
            if not _is_local_host(host):
                raise _refuse(name, host)
            return original(host, *args, **kwargs)

        guarded.__name__ = name
        return guarded

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, lookup(name, getattr(socket, name)))


if LOG_PATH:
    install()
    # One line per guarded interpreter in `<log>.installed`, so a test can tell that the guard
    # really ran in the process it watched (an empty attempt log proves nothing otherwise).
    with _lock, open(f"{LOG_PATH}.installed", "a", encoding="utf-8") as installed:
        installed.write(f"pid={os.getpid()} argv={getattr(sys, 'orig_argv', sys.argv)!r}\n")
