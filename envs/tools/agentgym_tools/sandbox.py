"""Run untrusted Python confined by the kernel, in a fresh process per call.

Two modes, named in ``PythonSandbox(mode=...)``, the env's ``sandbox_mode`` and every
result:

``"namespaces"`` (the default, and the only strong one)
    One worker process per sandbox lives in new user, mount, network, IPC, UTS and PID
    namespaces (see :mod:`agentgym_tools._sandbox_worker`). Its uid 0 is an
    unprivileged uid (``nobody``) for the kernel outside; its root holds read-only
    ``/usr`` and the interpreter's prefix and an empty size-capped ``/work``, nothing
    else; it has no network interface, not even loopback; it is PID 1 of its own PID
    namespace, so no host process can be seen or signalled and every process the code
    starts dies when the call ends. Each call is a fork of that worker that has dropped
    every capability and carries rlimits (CPU seconds, address space, file size, open
    files, processes) and a wall-clock kill. Forking a ready interpreter instead of
    starting one is what makes a call cost a few milliseconds.
    A call as a whole (every process it starts, its files in ``/work``, its shared
    memory) lives in one cgroup of ``memory_mb`` and ``processes`` (:class:`CallBudget`,
    made by the host where the kernel gives one; otherwise a call may not fork, so the
    per-process rlimits are the whole budget: :attr:`PythonSandbox.budget` says which).
    Each call has a fresh IPC namespace, and a seccomp filter refuses the system calls
    tool code never needs (io_uring, userfaultfd, keyrings, SysV and POSIX IPC, ptrace,
    bpf, perf, mounts, namespaces, modules). Its status comes from what PID 1 and the
    host measured, never from its output. A kernel or machine that cannot give all of
    this gets :class:`SandboxUnavailable` at start, as before.
    When the kernel does not allow it (no user namespaces, a seccomp profile that
    refuses ``unshare``), the sandbox **refuses** with :class:`SandboxUnavailable`,
    naming what failed, rather than run with less.

``"hook"`` (opt in by name only)
    The older layers: a fresh ``python -I -S`` per call with the same rlimits, its own
    session killed at the deadline, an empty network namespace where the kernel
    allows it, ``nobody`` where started as root and the interpreter is readable, and an
    audit hook (PEP 578) that refuses paths outside the work folder, processes,
    sockets and ``ctypes``. In-process code can undo an audit hook, so this mode is
    for machines where namespaces are unavailable and the code is trusted enough.

In both modes the audit hook is installed as a second layer (``audit_hook=False`` turns
it off, which the security tests use to show the kernel alone holds). What happened is
reported in :class:`SandboxResult` (``status`` one of ``ok``, ``error``, ``blocked``,
``timeout``, ``cpu_limit``, ``memory_limit``, ``output_limit``, ``crashed``), never raised.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import json
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_NOBODY = 65534
MODES = ("namespaces", "hook")
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_worker.py")

# The audit hook: the second layer, installed in the call's process before the agent's code.
_HOOK = r"""
import os, sys
sys.dont_write_bytecode = True
_root = os.path.realpath(os.getcwd())
_read_ok = tuple(p for p in ({readable}) if p)
_blocked = {{
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.sendto", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.cdata", "ctypes.addressof", "ctypes.call_function",
    "resource.setrlimit", "resource.prlimit", "os.setuid", "os.setgid",
    "sys.remote_exec", "os.chroot", "os.unshare", "os.setns",
}}
_bad_modules = {{"ctypes", "_ctypes", "_posixsubprocess", "cffi"}}
_path_events = {{
    "os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir",
    "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown",
    "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.chflags",
}}

def _inside(path):
    try:
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.path.join(_root, os.fspath(path)))
    except Exception:
        return False
    return real == _root or real.startswith(_root + os.sep)

def _readable(path):
    try:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.fspath(path))
    except Exception:
        return False
    return any(real == p or real.startswith(p + os.sep) for p in _read_ok)

def _hook(event, args):
    if event in _blocked:
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "import" and args and str(args[0]).split(".")[0] in _bad_modules:
        raise PermissionError(f"sandbox: importing {{args[0]}} is not allowed")
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if path is None or _inside(path):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        )
        if not writing and _readable(path):
            return
        raise PermissionError(f"sandbox: opening {{path!r}} is not allowed (only files in the working directory)")
    if event in ("os.listdir", "os.scandir") and args and args[0] is not None and _readable(args[0]):
        return  # the import system lists standard-library folders
    if event in _path_events:
        for p in args[:2]:
            if isinstance(p, (str, bytes, os.PathLike)) and not _inside(p):
                raise PermissionError(f"sandbox: {{event}} outside the working directory is not allowed")

sys.addaudithook(_hook)
del _hook
"""

# Hook mode only: the fresh interpreter reads the code from stdin and runs it.
_RUN_STDIN = r"""
import io, sys
_code = sys.stdin.read()
sys.stdin = io.StringIO("")
exec(compile(_code, "<agent>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one call. Memory is address space per process, so it includes the interpreter (~30 MB).

    ``disk_mb`` caps the work folder (a tmpfs of that size in ``namespaces`` mode, a
    file-size limit of ``file_mb`` per file in both); ``processes`` counts every process
    the call may run at once, itself included.
    """

    cpu_seconds: int = 2
    wall_seconds: float = 5.0
    memory_mb: int = 256
    output_chars: int = 4000
    file_mb: int = 4
    disk_mb: int = 16
    processes: int = 32
    open_files: int = 64

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"sandbox limit {name} must be a positive number, got {v!r}")

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class SandboxResult:
    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    seconds: float
    #: The confinement the call ran under (see the module docstring).
    mode: str = field(default="", compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def message(self) -> str:
        """What to tell the agent: the output, or why there is none."""
        if self.status == "ok":
            return self.stdout if self.stdout else "(no output; use print() to show a value)"
        reason = {
            "timeout": "stopped: the wall-clock time limit was reached",
            "cpu_limit": "stopped: the CPU time limit was reached",
            "memory_limit": "stopped: the memory limit was reached",
            "output_limit": "stopped: the output limit was reached",
            "blocked": "stopped: the code tried something the sandbox forbids",
            "crashed": "the interpreter crashed",
            "error": "the code raised an error",
        }[self.status]
        tail = self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""
        out = f"\nOutput before that:\n{self.stdout}" if self.stdout else ""
        return f"{reason}" + (f": {tail}" if tail else "") + out


class SandboxUnavailable(RuntimeError):
    """The kernel does not give the isolation the chosen mode needs; nothing was run."""


def _stdlib_paths() -> list[str]:
    paths = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], os.path.dirname(os.__file__)]
    return sorted({os.path.realpath(p) for p in paths if p})


def _hook_source() -> str:
    return _HOOK.format(readable=", ".join(repr(p) for p in _stdlib_paths()) + ",")


def _jail_layout() -> tuple[list[str], dict[str, str]]:
    """What the namespace root holds: read-only binds, and the top-level symlinks of a merged /usr."""
    binds, links = ["/usr"], {}
    prefix = os.path.realpath(sys.base_prefix)
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        binds.append(prefix)
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            links[top] = os.readlink(top)
        elif os.path.isdir(top) and top != "/sbin":
            binds.append(top)
    return binds, links


class CallBudget:
    """One call's memory and process budget as a cgroup (v1 ``memory`` + ``pids`` or v2), made
    by the host for one worker; every process a call starts joins it, and the host reads
    what happened (peak memory, refused charges, OOM kills) from files the code cannot reach.

    :meth:`create` returns None where the kernel or the user gives none (not root, no
    writable cgroup hierarchy); the sandbox then states the weaker budget it enforces.
    """

    _seq = 0
    #: Cgroup folders of closed sandboxes that were still busy (see :meth:`remove`).
    _pending: list[str] = []

    def __init__(self, paths: dict[str, str], memory_bytes: int, processes: int):
        self.paths = paths  # controller ("memory", "pids", "unified") -> folder
        self.memory_bytes, self.processes = memory_bytes, processes
        self.fds: list[int] = []
        try:
            if "unified" in paths:
                self._write("unified", "memory.max", str(memory_bytes))
                self._write("unified", "memory.swap.max", "0", optional=True)
                self._write("unified", "pids.max", str(processes))
            else:
                self._write("memory", "memory.limit_in_bytes", str(memory_bytes))
                self._write("memory", "memory.memsw.limit_in_bytes", str(memory_bytes), optional=True)
                self._write("pids", "pids.max", str(processes))
            for folder in paths.values():
                self.fds.append(os.open(os.path.join(folder, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            self.remove()
            raise

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> CallBudget | None:
        cls._remove_stale()
        cls.retry_pending()
        cls._seq += 1
        name = f"agentgym-sandbox-{os.getpid()}-{cls._seq}"
        v1 = {c: f"/sys/fs/cgroup/{c}" for c in ("memory", "pids")}
        candidates = []
        if all(os.access(os.path.join(d, "cgroup.procs"), os.W_OK) for d in v1.values()):
            candidates.append({c: os.path.join(d, name) for c, d in v1.items()})
        v2 = "/sys/fs/cgroup"
        if os.path.exists(os.path.join(v2, "cgroup.controllers")) and os.access(v2, os.W_OK):
            with open(os.path.join(v2, "cgroup.subtree_control")) as f:
                if {"memory", "pids"} <= set(f.read().split()):
                    candidates.append({"unified": os.path.join(v2, name)})
        for paths in candidates:
            made = []
            try:
                for folder in paths.values():
                    os.mkdir(folder, 0o700)
                    made.append(folder)
                return cls(paths, memory_bytes, processes)
            except OSError:
                for folder in made:
                    _rmdir_quietly(folder)
        return None

    @staticmethod
    def _remove_stale() -> None:
        """Empty cgroups left by sandbox hosts that exited without closing (a killed trainer)."""
        import glob

        for folder in glob.glob("/sys/fs/cgroup/*/agentgym-sandbox-*-*") + glob.glob(
            "/sys/fs/cgroup/agentgym-sandbox-*-*"
        ):
            pid = os.path.basename(folder).split("-")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    os.rmdir(folder)  # refused while processes are in it: then it is not stale
                except OSError:
                    pass

    def _write(self, controller: str, name: str, value: str, optional: bool = False) -> None:
        path = os.path.join(self.paths[controller], name)
        if optional and not os.path.exists(path):
            return
        with open(path, "w") as f:
            f.write(value)

    def _read(self, controller: str, name: str) -> str:
        try:
            with open(os.path.join(self.paths[controller], name)) as f:
                return f.read()
        except OSError:
            return ""

    def begin(self) -> None:
        """Before a call: the peak is measured afresh."""
        if "memory" in self.paths:
            try:
                self._write("memory", "memory.max_usage_in_bytes", "0")
            except OSError:
                pass
        self._before = self.events()

    def events(self) -> tuple[int, int]:
        """(charges refused at the limit, OOM kills) so far."""
        if "unified" in self.paths:
            ev = dict(line.split() for line in self._read("unified", "memory.events").splitlines() if line.strip())
            return int(ev.get("max", 0)), int(ev.get("oom_kill", 0))
        oom = dict(line.split() for line in self._read("memory", "memory.oom_control").splitlines() if line.strip())
        return int(self._read("memory", "memory.failcnt") or 0), int(oom.get("oom_kill", 0))

    def end(self) -> tuple[bool, int]:
        """After a call: (whether it ran into the memory limit, its peak memory in bytes)."""
        refused, killed = (a - b for a, b in zip(self.events(), self._before, strict=True))
        if "unified" in self.paths:
            peak = int(self._read("unified", "memory.peak").strip() or 0)
        else:
            peak = int(self._read("memory", "memory.max_usage_in_bytes") or 0)
        return refused > 0 or killed > 0, peak

    def remove(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        for folder in self.paths.values():
            if not _rmdir_quietly(folder):
                # Still busy after the deadline (a loaded machine reaps slowly): retried when
                # the next sandbox starts and when this process exits.
                CallBudget._pending.append(folder)

    @classmethod
    def retry_pending(cls) -> None:
        """Remove this process's cgroups that were still busy when their sandbox closed."""
        still = []
        for folder in cls._pending:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:
                still.append(folder)
        cls._pending[:] = still


atexit.register(CallBudget.retry_pending)


def _rmdir_quietly(folder: str, wait: float = 5.0) -> bool:
    """Remove a call's cgroup: it is removable once its last process has been reaped, which
    on a busy machine can take well over the half second this once waited (a test run
    beside training left cgroups behind). A process still in it is killed first."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.rmdir(folder)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
        try:
            with open(os.path.join(folder, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
        except OSError:
            pass
        time.sleep(0.02)


class _Worker:
    """Host side of one namespaced worker (see :mod:`agentgym_tools._sandbox_worker`)."""

    def __init__(self, limits: SandboxLimits, budget: str = "auto") -> None:
        binds, links = _jail_layout()
        self._log = tempfile.TemporaryFile()
        self.budget = None if budget == "rlimit" else CallBudget.create(limits.memory_mb << 20, limits.processes)
        if budget == "cgroup" and self.budget is None:
            raise SandboxUnavailable("no cgroup to hold a call's memory and processes (budget='cgroup')")
        fds = self.budget.fds if self.budget is not None else []
        self.proc = subprocess.Popen(
            [os.path.realpath(sys.executable), "-I", "-S", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={"PATH": "/usr/bin:/bin", "HOME": "/work", "TMPDIR": "/work", "LANG": "C.UTF-8"},
            start_new_session=True,
            close_fds=True,
            pass_fds=fds,
        )
        root = os.geteuid() == 0
        try:
            self._send({"parent": os.getpid(), "parent_maps": root, "binds": binds, "links": links, "cgroup_fds": fds})
            reply = self._recv(15.0)
            if reply.get("map"):
                for name in ("uid_map", "gid_map"):
                    with open(f"/proc/{self.proc.pid}/{name}", "w") as f:
                        f.write(f"0 {_NOBODY} 1")
                self._send({"mapped": True})
                reply = self._recv(15.0)
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            reply = {"error": f"{type(e).__name__}: {e}. {self._stderr()}".strip()}
        if "error" in reply:
            self.close()
            raise SandboxUnavailable(reply["error"])

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read(2000).decode("utf-8", "replace").strip()

    def _send(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd, buf = self.proc.stdout.fileno(), b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("the sandbox worker did not answer")
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError("the sandbox worker exited")
            buf += chunk
        return buf

    def _recv(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack("<I", self._read(4, deadline))
        return json.loads(self._read(n, deadline))

    def call(self, code: str, limits: SandboxLimits, hook: str) -> dict:
        lim = {**limits.as_dict(), "work_mb": limits.disk_mb}
        if self.budget is None:  # no cgroup: one process, so the rlimits are the whole budget
            lim["processes"] = lim["nproc"] = 1
        else:  # the cgroup counts the call's processes; the rlimit also counts the worker and PID 1
            lim["nproc"] = limits.processes + 2
        req = {"code": code, "hook": hook, "limits": lim}
        if self.budget is not None:
            self.budget.begin()
        self._send(req)
        reply = self._recv(limits.wall_seconds + 10.0)
        if self.budget is not None:
            reply["memory_limit"], reply["peak_bytes"] = self.budget.end()
        return reply

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            _kill_group(self.proc.pid)  # the worker, and with it PID 1 of the namespace and everything in it
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()
        if self.budget is not None:
            self.budget.remove()
            self.budget = None


def _probe_isolation() -> tuple[str, bool]:
    """Hook mode only: ``(user_mode, network_namespace)`` this process can give a child.

    ``user_mode`` is ``"nobody"`` (root, and the interpreter is usable by ``nobody``),
    ``"userns"`` (root, interpreter unreadable by ``nobody``: a user namespace sheds
    root's capabilities, though the kernel uid stays 0) or ``"none"`` (not root).
    Probed once per process in forked children, with the interpreter's real path
    (in a virtualenv ``sys.executable`` is a symlink).
    """
    if not sys.platform.startswith("linux"):
        return "none", False
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None  # loaded before the fork
    exe = os.path.realpath(sys.executable)

    def attempt(flags: int, drop: bool) -> bool:
        try:
            pid = os.fork()
        except OSError:
            return False
        if pid == 0:  # pragma: no cover - child
            ok = False
            try:
                if flags and (libc is None or libc.unshare(flags) != 0):
                    os._exit(1)
                if drop:
                    os.setgroups([])
                    os.setgid(_NOBODY)
                    os.setuid(_NOBODY)
                ok = os.access(exe, os.X_OK) and os.access(os.__file__, os.R_OK)
            except Exception:
                ok = False
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0

    netns = attempt(_CLONE_NEWNET, False)
    if os.geteuid() != 0:
        return "none", netns
    if attempt(_CLONE_NEWNET if netns else 0, True):
        return "nobody", netns
    if attempt(_CLONE_NEWUSER | _CLONE_NEWNET, False):
        return "userns", True
    return "none", netns


_ISOLATION: tuple[str, bool] | None = None
_hook_warned = False


class PythonSandbox:
    """Runs code strings in fresh, limited, confined processes; see the module docstring.

    ``mode="namespaces"`` (default) starts the sandbox's worker now and raises
    :class:`SandboxUnavailable` if the kernel refuses the namespaces; ``mode="hook"`` is
    the weaker fallback, only when asked for by name. Thread-safe: calls on one sandbox
    run one at a time. ``close()`` (or garbage collection) ends the worker.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        mode: str = "namespaces",
        audit_hook: bool = True,
        budget: str = "auto",
    ):
        global _ISOLATION, _hook_warned
        if mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
        if budget not in ("auto", "cgroup", "rlimit"):
            raise ValueError(f"sandbox budget must be auto, cgroup or rlimit, got {budget!r}")
        self.budget_kind = budget
        #: The peak memory of the last call's cgroup (bytes; None without one).
        self.last_peak_bytes: int | None = None
        self.limits = limits or SandboxLimits()
        self.mode = mode
        self.audit_hook = bool(audit_hook)
        self.runs = 0
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._hook = _hook_source() if self.audit_hook else ""
        if mode == "namespaces":
            if not sys.platform.startswith("linux"):
                raise SandboxUnavailable(_unavailable("Linux namespaces do not exist on " + sys.platform))
            try:
                self._worker = _Worker(self.limits, budget)
            except SandboxUnavailable as e:
                raise SandboxUnavailable(_unavailable(str(e))) from None
            self.network_namespace = True
            return
        if not _hook_warned:
            warnings.warn(
                "sandbox mode 'hook': the Python tool runs with rlimits and an in-process audit hook, "
                "which code can undo; use it only where namespaces are unavailable",
                RuntimeWarning,
                stacklevel=2,
            )
            _hook_warned = True
        if _ISOLATION is None:
            _ISOLATION = _probe_isolation()
        self.user_mode, self.network_namespace = _ISOLATION
        self._unshare_flags = (_CLONE_NEWNET if self.network_namespace else 0) | (
            _CLONE_NEWUSER if self.user_mode == "userns" else 0
        )
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True) if name else None

    # ----- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.close()

    @property
    def budget(self) -> str:
        """What bounds one call's memory and processes, in words (``namespaces`` mode)."""
        if self._worker is None:
            return "none (hook mode: per-process rlimits only)"
        if self._worker.budget is not None:
            return (
                f"cgroup {'/'.join(self._worker.budget.paths)}: {self.limits.memory_mb} MB and "
                f"{self.limits.processes} processes for everything a call starts"
            )
        return f"rlimits: one process (no fork), {self.limits.memory_mb} MB of address space"

    @property
    def worker_pid(self) -> int | None:
        """The host pid of the namespaced worker (``namespaces`` mode), for inspection."""
        return self._worker.proc.pid if self._worker is not None else None

    # ----- running ---------------------------------------------------------------------

    def run(self, code: str) -> SandboxResult:
        """Run ``code``; its printed output comes back in ``stdout``. Never raises for bad code."""
        if not isinstance(code, str):
            return SandboxResult(
                "error", "", f"TypeError: code must be a string, got {type(code).__name__}", None, 0.0, self.mode
            )
        start = time.perf_counter()
        with self._lock:
            self.runs += 1
            if self.mode == "namespaces":
                result = self._run_in_worker(code, start)
            else:
                result = self._run_with_hook(code, start)
        if result.status != "ok":
            self.failures[result.status] = self.failures.get(result.status, 0) + 1
        return result

    def _run_in_worker(self, code: str, start: float) -> SandboxResult:
        if self._worker is None or not self._worker.alive:
            if self._worker is not None:
                self._worker.close()
            try:
                self._worker = _Worker(self.limits, self.budget_kind)
            except SandboxUnavailable as e:
                return SandboxResult("crashed", "", f"could not restart the sandbox: {e}", None, 0.0, self.mode)
        try:
            reply = self._worker.call(code, self.limits, self._hook)
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            self._worker.close()  # the next call starts a fresh worker
            self._worker = None
            status = "timeout" if isinstance(e, TimeoutError) else "crashed"
            return SandboxResult(
                status, "", f"the sandbox worker failed: {e}", None, time.perf_counter() - start, self.mode
            )
        stdout = _cut(reply["stdout"], self.limits.output_chars)
        status = _classify_facts(reply, self.limits)
        self.last_peak_bytes = reply.get("peak_bytes")
        return SandboxResult(
            status, stdout, reply["stderr"][:2000], reply["returncode"], time.perf_counter() - start, self.mode
        )

    def _preexec(self) -> None:  # hook mode: runs in the child between fork and exec
        lim = self.limits
        cpu = int(max(1, lim.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = int(lim.file_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self._unshare_flags and (self._libc is None or self._libc.unshare(self._unshare_flags) != 0):
            raise OSError("unshare failed")  # never run the code with less isolation than was probed
        if self.user_mode == "nobody":
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        mem = int(lim.memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))  # per user; root ignores it

    def _run_with_hook(self, code: str, start: float) -> SandboxResult:
        workdir = tempfile.mkdtemp(prefix="agentgym-sandbox-")
        try:
            if self.user_mode == "nobody":
                os.chown(workdir, _NOBODY, _NOBODY)
            # Output goes to unlinked files read back through the parent's own handles:
            # the child cannot swap them for a FIFO or a link.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(
                    [os.path.realpath(sys.executable), "-I", "-S", "-c", self._hook + _RUN_STDIN],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env={"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"},
                    start_new_session=True,
                    preexec_fn=self._preexec,
                    close_fds=True,
                )
                timed_out = False
                try:
                    proc.stdin.write(code.encode("utf-8", "replace"))  # type: ignore[union-attr]
                    proc.stdin.close()  # type: ignore[union-attr]
                except (BrokenPipeError, OSError):
                    pass
                try:
                    proc.wait(timeout=self.limits.wall_seconds)
                except subprocess.TimeoutExpired:
                    timed_out = True
                _kill_group(proc.pid)
                proc.wait()
                out_size = os.fstat(out.fileno()).st_size
                stdout = _read_head(out, self.limits.output_chars)
                stderr = _read_head(err, 2000)
            status = _classify(proc.returncode, timed_out, stderr, out_size, self.limits)
            return SandboxResult(status, stdout, stderr, proc.returncode, time.perf_counter() - start, self.mode)
        except (OSError, subprocess.SubprocessError) as e:  # could not start: report it, the env carries on
            return SandboxResult(
                "crashed", "", f"could not start the sandbox: {e}", None, time.perf_counter() - start, self.mode
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _unavailable(reason: str) -> str:
    return (
        f"the Python tool's sandbox needs new user, mount, network and PID namespaces, and the kernel refused: "
        f"{reason}. Nothing was run. Allow user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
        f"user.max_user_namespaces > 0, or a container with them), or opt into the weaker in-process audit hook "
        f"by name: sandbox_mode='hook' (env kwarg) / PythonSandbox(mode='hook')."
    )


def _cut(text: str, n_chars: int) -> str:
    return text if len(text) <= n_chars else text[:n_chars] + "\n[output truncated]"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_head(f: Any, n_chars: int) -> str:
    f.seek(0)
    return _cut(f.read(n_chars * 4 + 4).decode("utf-8", "replace"), n_chars)


def _classify_facts(reply: dict, lim: SandboxLimits) -> str:
    """``namespaces`` mode: the status from what the worker's PID 1 and the host measured
    (wall clock, the call's CPU time, exit signal, output size, the cgroup's memory events),
    never from the call's stdout or stderr. Only ``blocked`` and an address-space
    ``MemoryError`` come from the call's own process (its note, see the worker), and they
    rank below every measured fact."""
    code = reply["returncode"]
    if reply["timed_out"]:
        return "timeout"
    if reply.get("memory_limit"):
        return "memory_limit"
    # The kernel's own CPU accounting runs ahead of what rusage reports (3.93-3.99 s measured
    # for a 4 s limit on a busy machine): a call that used 90% of its CPU time and died of
    # SIGXCPU/SIGKILL hit the limit; one that signals itself early is "crashed".
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and reply.get("cpu_seconds", 0.0) >= 0.9 * lim.cpu_seconds:
        return "cpu_limit"
    note = reply.get("note", "")
    if code == -signal.SIGXFSZ or reply["out_size"] > lim.output_chars * 4 or "file_size" in note:
        return "output_limit"
    if "memory" in note:
        return "memory_limit"
    if "blocked" in note or code == -signal.SIGSYS:
        return "blocked"
    if code == 0:
        return "ok"
    if code is not None and code < 0:
        return "crashed"
    return "error"


def _classify(code: int | None, timed_out: bool, stderr: str, out_size: int, lim: SandboxLimits) -> str:
    """``hook`` mode (the weaker one): its status is read from the process's exit and stderr."""
    if timed_out:
        return "timeout"
    if code == -signal.SIGXCPU or code == -signal.SIGKILL and "MemoryError" not in stderr:
        return "cpu_limit"
    if code == -signal.SIGXFSZ or "File too large" in stderr:
        return "output_limit"
    if out_size > lim.output_chars * 4:
        return "output_limit"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory_limit"
    if "PermissionError: sandbox:" in stderr:
        return "blocked"
    if code == 0:
        return "ok"
    if code is not None and code < 0:
        return "crashed"
    return "error"
