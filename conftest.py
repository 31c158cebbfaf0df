"""Test-session set-up shared by tests/ and the nbval notebook runs (see tests/README section in README.md)."""
import socket

import nbval.plugin as _nbval
import pytest

# nbval compares every output stream; stderr carries warnings and progress bars, which are not results.
_orig_init = _nbval.IPyNbFile.__init__


def _init(self, *args, **kwargs):
    _orig_init(self, *args, **kwargs)
    self.skip_compare = tuple(self.skip_compare) + ("stderr",)


_nbval.IPyNbFile.__init__ = _init


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Offline, always: any test that opens a non-loopback connection fails."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1", "")) \
                and self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"test tried to reach the network ({address}); tests must run offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
