"""Chromium in a network namespace of its own: only loopback exists for it.

:func:`prepare` writes a small launcher that Playwright starts in place of the browser.
The launcher unshares a new network namespace (with a user namespace first when not
root), brings its loopback up, listens there on 127.0.0.1 at the site server's port,
hands that listening socket to the pool over a Unix socket (file-system sockets cross
network namespaces) and then execs the real browser. The pool serves the generated
sites on the handed socket, so the browser reaches them on *its own* loopback, and
nothing else: there is no other interface and no route, so no protocol (HTTP, WebRTC
and STUN over UDP, mDNS multicast, DNS) can leave, whatever the page does. Chromium's
own network flags and the request router stay as the second layer.
"""

from __future__ import annotations

import array
import os
import socket
import stat
import sys
import tempfile

#: Environment keys the launcher reads (and removes before the browser starts).
HANDOFF, REAL, PORT = "AGENTGYM_NETNS_HANDOFF", "AGENTGYM_NETNS_EXEC", "AGENTGYM_NETNS_PORT"

_LAUNCHER = r"""#!{python} -I
import ctypes, fcntl, os, socket, struct, sys
handoff, real, port = os.environ.pop("{handoff}"), os.environ.pop("{real}"), int(os.environ.pop("{port}"))

def tell(message, fd=None):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(handoff)
    socket.send_fds(c, [message.encode()], [fd] if fd is not None else [])
    c.close()

try:
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = 0x40000000 if uid == 0 else 0x10000000 | 0x40000000  # CLONE_NEWNET (| CLONE_NEWUSER)
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET): " + os.strerror(ctypes.get_errno()))
    if uid != 0:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{{uid}} {{uid}} 1"), ("gid_map", f"{{gid}} {{gid}} 1")):
            with open(f"/proc/self/{{name}}", "w") as f:
                f.write(text)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fcntl.ioctl(probe, 0x8914, struct.pack("16sH14s", b"lo", 0x1 | 0x8 | 0x40, b""))  # SIOCSIFFLAGS: lo up
    probe.close()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    tell("ok", listener.fileno())
    listener.close()
except Exception as e:
    try:
        tell("error: " + str(e))
    finally:
        sys.exit("agentgym: could not isolate the browser's network: " + str(e))
os.execv(real, [real, *sys.argv[1:]])
"""


class Isolation:
    """The launcher and handoff socket of one pool; ``receive()`` takes each launch's listener."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="agentgym-netns-")
        os.chmod(self.folder, 0o700)
        self.launcher = os.path.join(self.folder, "chromium-netns")
        with open(self.launcher, "w") as f:
            f.write(_LAUNCHER.format(python=os.path.realpath(sys.executable), handoff=HANDOFF, real=REAL, port=PORT))
        os.chmod(self.launcher, stat.S_IRWXU)
        self.handoff_path = os.path.join(self.folder, "handoff.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.handoff_path)
        self.server.listen(4)
        self.port = _free_port()

    def env(self, real_browser: str) -> dict[str, str]:
        return {**os.environ, HANDOFF: self.handoff_path, REAL: real_browser, PORT: str(self.port)}

    def receive(self, timeout: float = 10.0) -> socket.socket:
        """The listening socket the launcher made inside the browser's namespace."""
        self.server.settimeout(timeout)
        try:
            conn, _ = self.server.accept()
        except TimeoutError:
            raise OSError("the browser's launcher never reported (did Playwright start it?)") from None
        with conn:
            fds = array.array("i")
            msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        text = msg.decode("utf-8", "replace")
        if text != "ok" or not fds:
            for fd in fds:
                os.close(fd)
            raise OSError(text.removeprefix("error: ") or "the launcher sent no socket")
        return socket.socket(fileno=fds[0])

    def close(self) -> None:
        try:
            self.server.close()
        finally:
            for name in (self.handoff_path, self.launcher):
                try:
                    os.unlink(name)
                except OSError:
                    pass
            try:
                os.rmdir(self.folder)
            except OSError:
                pass


def _free_port() -> int:
    # Any port: the browser's namespace is new, so nothing else listens there. One that is
    # free here too keeps a host-network fallback simple.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def namespace_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")
