"""Run untrusted Python in a separate, limited process.

Each :meth:`PythonSandbox.run` starts a fresh interpreter (``python -I -S``: no user
site, no environment variables read, standard library only) in a new temporary
directory, with layered limits:

1. **rlimits** set in the child before it execs: CPU seconds, address space, size of
   any file written (which also bounds the captured output), open files, and
   processes.
2. **A wall-clock kill**: the child leads its own session; when the deadline passes
   the whole process group gets SIGKILL.
3. **No network**: when the kernel allows it (root, or unprivileged user namespaces)
   the child gets a network namespace of its own with no interfaces, so nothing is
   reachable even through raw syscalls; independently, socket creation is refused.
4. **An audit hook** (PEP 578) installed before the code runs refuses: opening or
   listing paths outside the working directory (the standard library stays readable,
   so imports work), forking and starting processes (``os.fork``, ``subprocess``,
   ``os.system``, ``exec*``, ``posix_spawn``), sockets, ``ctypes`` (which could undo
   the rest), and changing rlimits.
5. **Privileges dropped**: started as root, the child switches to ``nobody`` after
   the namespace is made, so file permissions apply and rlimits cannot be raised.

What happened is reported in :class:`SandboxResult` (``status`` one of ``ok``,
``error``, ``blocked``, ``timeout``, ``cpu_limit``, ``memory_limit``,
``output_limit``, ``crashed``), never raised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from typing import Any

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_NOBODY = 65534

# Runs in the child before the agent's code. Kept free of imports beyond the stdlib.
_PRELUDE = r"""
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

import io
sys.addaudithook(_hook)
del _hook
_code = sys.stdin.read()
sys.stdin = io.StringIO("")
exec(compile(_code, "<agent>", "exec"), {{"__name__": "__main__", "__builtins__": __builtins__}})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one run. Memory is address space, so it includes the interpreter (~30 MB)."""

    cpu_seconds: int = 2
    wall_seconds: float = 5.0
    memory_mb: int = 256
    output_chars: int = 4000
    file_mb: int = 4
    processes: int = 64
    open_files: int = 64

    def __post_init__(self) -> None:
        for name in (
            "cpu_seconds",
            "wall_seconds",
            "memory_mb",
            "output_chars",
            "file_mb",
            "processes",
            "open_files",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"sandbox limit {name} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class SandboxResult:
    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    seconds: float

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


def _probe_isolation() -> tuple[str, bool]:
    """How children can be isolated here: ``(user_mode, network_namespace)``.

    ``user_mode`` is ``"nobody"`` (started as root and the interpreter is usable by
    ``nobody``: switch to it), ``"userns"`` (started as root but the interpreter lies
    where ``nobody`` cannot read, as under /root: enter a new user namespace instead,
    which sheds root's capabilities over everything outside it) or ``"none"`` (not
    root: nothing to drop). Probed once per process in a forked child.
    """
    if not sys.platform.startswith("linux"):
        return "none", False
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None  # loaded before the fork

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
                ok = os.access(sys.executable, os.X_OK) and os.access(os.__file__, os.R_OK)
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


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 1, 2, 4, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000
_JAIL_OK: bool | None = None


class PythonSandbox:
    """Runs code strings in fresh limited interpreters; see the module docstring.

    ``mode`` says how the child is confined, strongest first:

    - ``"jail"`` (started as root where mount namespaces work, as on these machines):
      a private mount namespace whose root is a small size-capped tmpfs holding only
      read-only binds of ``/usr`` and the interpreter's prefix and a writable
      ``/work``; no ``/etc``, ``/proc``, ``/home`` or ``/root`` exist in it. Then the
      empty network namespace, and the switch to ``nobody``: the code cannot signal or
      write anything of root's even with the audit hook undone.
    - ``"nobody"``, ``"userns"`` or ``"none"``: the older layers only (see
      :func:`_probe_isolation`); the audit hook is then the main guard of the file
      system, which in-process code can undo. Used where the jail cannot be built.
    """

    def __init__(self, limits: SandboxLimits | None = None, isolate_network: bool | None = None):
        global _ISOLATION, _JAIL_OK
        self.limits = limits or SandboxLimits()
        if _ISOLATION is None:
            _ISOLATION = _probe_isolation()
        self.user_mode = _ISOLATION[0]
        #: Whether children get an empty network namespace (else sockets are only refused by the hook).
        self.network_namespace = _ISOLATION[1] if isolate_network is None else (bool(isolate_network) and _ISOLATION[1])
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True) if name else None
        if self._libc is not None:
            self._libc.mount.argtypes = [
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_ulong,
                ctypes.c_char_p,
            ]
        self._jail_root = ""
        self.mode = self.user_mode
        readable = [
            sysconfig.get_paths()["stdlib"],
            sysconfig.get_paths()["platstdlib"],
            os.path.dirname(os.__file__),
        ]
        readable = sorted({os.path.realpath(p) for p in readable if p})
        self._prelude = _PRELUDE.format(readable=", ".join(repr(p) for p in readable) + ",")
        self.runs = 0
        self.failures: dict[str, int] = {}
        if os.geteuid() == 0 and self._libc is not None and _JAIL_OK is not False:
            self._jail_root = tempfile.mkdtemp(prefix="agentgym-jail-")
            self.mode = "jail"
            self._set_flags()
            if _JAIL_OK is None:  # build one jail and run a line in it, once per process
                probe = self.run("import os\nprint(os.getcwd(), os.getuid(), os.path.exists('/etc'))")
                _JAIL_OK = probe.ok and probe.stdout.split() == ["/work", str(_NOBODY), "False"]
                self.runs, self.failures = 0, {}
            if not _JAIL_OK:
                self.mode, self._jail_root = self.user_mode, ""
        self._set_flags()

    def _set_flags(self) -> None:
        self._unshare_flags = (
            (_CLONE_NEWNET if self.network_namespace else 0)
            | (_CLONE_NEWUSER if self.mode == "userns" else 0)
            | (_CLONE_NEWNS if self.mode == "jail" else 0)
        )

    def __del__(self) -> None:
        if getattr(self, "_jail_root", ""):
            shutil.rmtree(self._jail_root, ignore_errors=True)

    def _mount(self, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        enc = lambda x: None if x is None else x.encode()  # noqa: E731
        assert self._libc is not None
        if self._libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
            raise OSError(ctypes.get_errno(), f"mount {src} on {dst} failed")

    def _build_jail(self) -> None:
        """In the child, after unshare(CLONE_NEWNS): the new root, then chroot into it."""
        root = self._jail_root
        self._mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing propagates back out
        size_mb = max(8, int(self.limits.file_mb) * 4)
        self._mount("agentgym", root, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size_mb}m,mode=755")
        prefix = os.path.realpath(sys.base_prefix)
        for top in ("bin", "lib", "lib64", "sbin"):
            src = "/" + top
            if os.path.islink(src):
                os.symlink(os.readlink(src), os.path.join(root, top))
        binds = ["/usr"] + ([prefix] if not prefix.startswith("/usr/") else [])
        binds += [f"/{t}" for t in ("bin", "lib", "lib64") if os.path.isdir(f"/{t}") and not os.path.islink(f"/{t}")]
        for src in binds:
            dst = root + src
            os.makedirs(dst, mode=0o755, exist_ok=True)
            self._mount(src, dst, None, _MS_BIND | _MS_REC)
            self._mount(None, dst, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        work = os.path.join(root, "work")
        os.mkdir(work, 0o700)
        os.chown(work, _NOBODY, _NOBODY)
        os.chroot(root)
        os.chdir("/work")

    def _preexec(self) -> None:  # runs in the child between fork and exec
        lim = self.limits
        cpu = int(max(1, lim.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = int(lim.file_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self._unshare_flags and (self._libc is None or self._libc.unshare(self._unshare_flags) != 0):
            raise OSError("unshare failed")  # never run the code with less isolation than was probed
        if self.mode == "jail":
            self._build_jail()
        if self.mode in ("jail", "nobody"):
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        mem = int(lim.memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        # Counted per user, so set after the switch (root ignores it).
        resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))

    def run(self, code: str) -> SandboxResult:
        """Run ``code``; its printed output comes back in ``stdout``. Never raises for bad code."""
        if not isinstance(code, str):
            return SandboxResult(
                "error",
                "",
                f"TypeError: code must be a string, got {type(code).__name__}",
                None,
                0.0,
            )
        self.runs += 1
        start = time.perf_counter()
        jail = self.mode == "jail"
        workdir = "/work" if jail else tempfile.mkdtemp(prefix="agentgym-sandbox-")
        try:
            if self.mode == "nobody":
                os.chown(workdir, _NOBODY, _NOBODY)
            # Output goes to unlinked files read back through the parent's own handles:
            # the child cannot swap them for a FIFO or a link.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", self._prelude],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=None if jail else workdir,
                    env={
                        "PATH": "/usr/bin:/bin",
                        "HOME": workdir,
                        "TMPDIR": workdir,
                        "LANG": "C.UTF-8",
                    },
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
            if status != "ok":
                self.failures[status] = self.failures.get(status, 0) + 1
            return SandboxResult(status, stdout, stderr, proc.returncode, time.perf_counter() - start)
        except (
            OSError,
            subprocess.SubprocessError,
        ) as e:  # could not start: report it, the env carries on
            self.failures["crashed"] = self.failures.get("crashed", 0) + 1
            return SandboxResult(
                "crashed",
                "",
                f"could not start the sandbox: {e}",
                None,
                time.perf_counter() - start,
            )
        finally:
            if not jail:
                shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_head(f: Any, n_chars: int) -> str:
    f.seek(0)
    data = f.read(n_chars * 4 + 4)
    text = data.decode("utf-8", "replace")
    return text if len(text) <= n_chars else text[:n_chars] + "\n[output truncated]"


def _classify(code: int | None, timed_out: bool, stderr: str, out_size: int, lim: SandboxLimits) -> str:
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
