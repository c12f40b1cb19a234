"""Chromium in network, user, mount and PID namespaces of its own, as an unprivileged user.

:func:`prepare` writes a small launcher that Playwright starts in place of the browser.
The launcher unshares a new network namespace (with a user namespace first when not
root), brings its loopback up, listens there on 127.0.0.1 at the site server's port,
hands that listening socket to the pool over a Unix socket (file-system sockets cross
network namespaces) and then execs the real browser. The pool serves the generated
sites on the handed socket, so the browser reaches them on *its own* loopback, and
nothing else: there is no other interface and no route, so no protocol (HTTP, WebRTC
and STUN over UDP, mDNS multicast, DNS) can leave, whatever the page does. Chromium's
own network flags and the request router stay as the second layer.

The launcher then starts the browser as an unprivileged user (``nobody`` when the pool
runs as root, after handing it the profile folder; the pool's own uid otherwise) in new
user, mount and PID namespaces, as PID 1 of its PID namespace (dying with the launcher),
and without ``--no-sandbox``: Chromium's own sandbox (namespaces, seccomp-bpf) is on. Any
step that fails fails the launch, with the reason, as the network namespace does.
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
NOBODY = 65534
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000

# Connected now, while the launcher may still open the pool's private folder.
channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
channel.connect(handoff)

def tell(message, fd=None):
    socket.send_fds(channel, [message.encode()], [fd] if fd is not None else [])
    channel.close()

def unshare(flags, what):
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare(" + what + "): " + os.strerror(ctypes.get_errno()))

def map_self(uid, gid):
    for name, text in (("setgroups", "deny"), ("uid_map", f"{{uid}} {{uid}} 1"), ("gid_map", f"{{gid}} {{gid}} 1")):
        with open(f"/proc/self/{{name}}", "w") as f:
            f.write(text)

try:
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        unshare(CLONE_NEWNET, "network")
    else:
        unshare(CLONE_NEWUSER | CLONE_NEWNET, "user and network")
        map_self(uid, gid)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fcntl.ioctl(probe, 0x8914, struct.pack("16sH14s", b"lo", 0x1 | 0x8 | 0x40, b""))  # SIOCSIFFLAGS: lo up
    probe.close()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    args = [a for a in sys.argv[1:] if a != "--no-sandbox"]  # Chromium's own sandbox stays on
    if uid == 0:
        # Root never runs the browser: its profile becomes nobody's, then nobody it is.
        for a in args:
            if a.startswith("--user-data-dir="):
                top = a.split("=", 1)[1]
                for folder, dirs, files in os.walk(top):
                    for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                        os.lchown(name, NOBODY, NOBODY)
                os.environ["HOME"] = top
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/uid_map is then ours to write
        uid = gid = NOBODY
    # Its own user, mount and PID namespaces: no capability outside, its own view of the
    # mounts, and no host process to see or signal.
    unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID, "user, mount and PID")
    map_self(uid, gid)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise OSError("the browser would run as uid 0")
    tell("ok", listener.fileno())
    listener.close()
except Exception as e:
    try:
        tell("error: " + str(e))
    finally:
        sys.exit("agentgym: could not isolate the browser: " + str(e))
pid = os.fork()  # the child is PID 1 of the new PID namespace
if pid == 0:
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL when the launcher goes
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    # A /proc of this PID namespace (Chromium reads its renderers there; host processes
    # vanish from its view). Where the kernel refuses it, the host's stays, read-only to nobody.
    if libc.mount(None, b"/", None, 0x4000 | 0x40000, None) == 0:  # MS_REC | MS_PRIVATE
        libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, None)  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    os.execv(real, [real, *args])
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
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
