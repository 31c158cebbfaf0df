"""The offline guard: Python's socket API refuses every destination that is not this machine.

Installed at start-up in every Python process whose environment has GPTLIB_OFFLINE=1 and this folder
on PYTHONPATH (tools/offline/sitecustomize.py imports it): `make test`, `make execute`, the pytest
session (conftest.py sets both for itself and everything it starts), notebook kernels and
subprocesses that inherit that environment. What it blocks, by raising NetworkBlocked (a
RuntimeError, so `except OSError` fallbacks cannot swallow it):

* socket.socket.connect / connect_ex / sendto / sendmsg to an AF_INET/AF_INET6 address that is not
  loopback (127.0.0.0/8, ::1, IPv4-mapped loopback) or unspecified (0.0.0.0, ::); this covers TCP
  and UDP, and socket.create_connection, http.client, urllib, requests/urllib3, asyncio, ssl built
  on them;
* name resolution of any host other than localhost, this machine's own hostname and
  loopback/unspecified literals: socket.getaddrinfo, gethostbyname, gethostbyname_ex, gethostbyaddr
  (so no DNS query either).

Not covered: code that opens sockets outside Python's socket module (C/C++/Rust extensions such as
libzmq, hf-xet or libcurl, which make their own system calls), processes that do not inherit the
environment or ignore it (`python -I`/`-E`/`-S`), and non-Python programs (curl, git). AF_UNIX and
other families are left alone. For a guarantee at the operating-system level, .ci/run runs the suite
in a network namespace with only loopback (`unshare -n`)."""
from __future__ import annotations

import ipaddress
import os
import socket
import sys

ENV = "GPTLIB_OFFLINE"


class NetworkBlocked(RuntimeError):
    """A connection or lookup outside this machine, refused by the offline guard."""


def _local_names() -> set[str]:
    names = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
    try:
        names.add(_real["gethostname"]().lower())
    except OSError:
        pass
    return names


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    h = host.strip("[]").split("%")[0].lower()          # [::1], fe80::1%eth0
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return h in _local_names() or h.endswith(".localhost")
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or ip.is_unspecified or bool(mapped and mapped.is_loopback)


def _refuse(what: str, target) -> NetworkBlocked:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return NetworkBlocked(f"offline guard ({ENV}=1) blocked {what} {target!r} in process "
                          f"{os.getpid()} ({prog}): the course's tests and notebooks must run "
                          "without the network")


_real: dict = {"gethostname": socket.gethostname}


def _inet(sock) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def install() -> None:
    """Patch the socket module of this process (idempotent)."""
    if getattr(socket, "_gptlib_offline", False):
        return
    S = socket.socket
    _real.update(connect=S.connect, connect_ex=S.connect_ex, sendto=S.sendto, sendmsg=S.sendmsg,
                 getaddrinfo=socket.getaddrinfo, gethostbyname=socket.gethostbyname,
                 gethostbyname_ex=socket.gethostbyname_ex, gethostbyaddr=socket.gethostbyaddr)

    def connect(self, address):
        if _inet(self) and not _is_local(address[0]):
            raise _refuse("a connection to", address)
        return _real["connect"](self, address)

    def connect_ex(self, address):
        if _inet(self) and not _is_local(address[0]):
            raise _refuse("a connection to", address)
        return _real["connect_ex"](self, address)

    def sendto(self, data, *args):
        address = args[-1]  # sendto(data, address) / (data, flags, address)
        if _inet(self) and isinstance(address, tuple) and not _is_local(address[0]):
            raise _refuse("a datagram to", address)
        return _real["sendto"](self, data, *args)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if _inet(self) and address is not None and not _is_local(address[0]):
            raise _refuse("a message to", address)
        args = (buffers, ancdata, flags) + ((address,) if address is not None else ())
        return _real["sendmsg"](self, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            raise _refuse("a name lookup of", host)
        return _real["getaddrinfo"](host, *args, **kwargs)

    def lookup(name):
        def guarded(host):
            if not _is_local(host):
                raise _refuse("a name lookup of", host)
            return _real[name](host)
        guarded.__name__ = name
        return guarded

    S.connect, S.connect_ex, S.sendto, S.sendmsg = connect, connect_ex, sendto, sendmsg
    socket.getaddrinfo = getaddrinfo
    for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, lookup(name))
    socket._gptlib_offline = True  # type: ignore[attr-defined]


def activate_for_children() -> None:
    """Set the environment so that every Python process started from now on installs the guard
    too."""
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ[ENV] = "1"
    pythonpath = os.environ.get("PYTHONPATH")
    paths = pythonpath.split(os.pathsep) if pythonpath else []
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here] + paths)
