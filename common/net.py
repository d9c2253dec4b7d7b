"""A free local TCP port for a server started in another process (bench, e2e, the demo).

In-process servers bind port 0 and read the port back (``create_server``); a server in a child
process or a container needs its port before it starts. The port is free when this returns and
is very unlikely to be taken before the child binds it (the kernel hands out ephemeral ports in
turn). Shell scripts use it as ``python -m common.net``, which prints one port.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
