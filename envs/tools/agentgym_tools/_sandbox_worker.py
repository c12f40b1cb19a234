"""The sandbox worker: one process per sandbox, confined by the kernel, that runs each call in a fresh fork.

Started by :class:`agentgym_tools.sandbox.PythonSandbox` as ``python -I -S this_file`` and
driven over its stdin/stdout with length-prefixed JSON frames. Standard library only, and
nothing here trusts the code it runs.

Set-up, once per worker:

1. ``unshare`` of new user, mount, network, IPC, UTS and PID namespaces. The user
   namespace maps its uid 0 to one unprivileged host uid (``nobody``): written by the
   parent when the parent is root, by the worker itself otherwise. Every file, signal
   and process outside is then owned by a uid the code does not have, whatever it
   undoes inside the interpreter.
2. A new root: a small tmpfs holding read-only binds of ``/usr`` and the interpreter's
   prefix, nothing else (no ``/etc``, ``/proc``, ``/home``, ``/root`` or ``/dev``), and an
   empty ``/work``; ``pivot_root`` into it and the old root detached, so no path leads out.
   Nested user namespaces are capped at 0 so the code cannot mint itself new privileges.
3. The worker forks its server, which is PID 1 of the new PID namespace: when it dies
   the kernel kills every process in the namespace, and it dies with the worker
   (``PR_SET_PDEATHSIG``), which dies with its host.

Per call the server mounts a fresh size-capped tmpfs on ``/work`` and forks the call's
process, which joins the call's cgroups (descriptors the host opened), unshares a fresh
IPC namespace, drops every capability, loads the seccomp filter, sets
``PR_SET_NO_NEW_PRIVS`` and its rlimits
(CPU, address space, file size, open files, processes), installs the audit hook (a second
layer only) and runs the code with output into memory files. Afterwards the server kills
every other process of the namespace (orphans, daemons, fork bombs) and reaps them.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import select
import signal
import struct
import sys
import time
import traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
O_PATH = getattr(os, "O_PATH", 0o10000000)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}.get(platform.machine())
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
# System calls tool code never needs, refused with EPERM (x86_64 numbers). Kernel attack
# surface (io_uring, userfaultfd, bpf, perf), state that outlives a call (keyrings, SysV IPC),
# other processes' memory (ptrace, process_vm_*), namespaces and mounts, modules, the clock.
DENIED_X86_64 = {
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "ptrace": 101, "syslog": 103,
    "uselib": 134, "personality": 135, "ustat": 136, "sysfs": 139, "vhangup": 153,
    "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "nfsservctl": 180, "lookup_dcookie": 212,
    "semtimedop": 220, "clock_settime": 227, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242,
    "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245, "kexec_load": 246,
    "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "move_pages": 279, "perf_event_open": 298, "fanotify_init": 300,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438,
    "mount_setattr": 442, "memfd_secret": 447,
}  # fmt: skip
# clone3 answers ENOSYS: its flags live in memory a filter cannot read, and libc falls
# back to clone(), whose namespace flags the kernel refuses here anyway (no capabilities).
ENOSYS_X86_64 = {"clone3": 435}

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.unshare.argtypes = [ctypes.c_int]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda x: None if x is None else x.encode()  # noqa: E731
    if libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
        raise _err(f"mount {src or fstype} on {dst}")


def send(obj: dict) -> None:
    data = json.dumps(obj).encode()
    os.write(1, struct.pack("<I", len(data)) + data)


def _read_exact(n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def recv() -> dict:
    (n,) = struct.unpack("<I", _read_exact(4))
    return json.loads(_read_exact(n))


def set_up(cfg: dict) -> None:
    """Namespaces, the uid map and the new root; raises OSError naming what failed."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["parent"]:
        raise OSError("the host exited during set-up")
    host_uid, host_gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    if libc.unshare(flags) != 0:
        raise _err("unshare(user, mount, network, IPC, UTS and PID namespaces)")
    if cfg["parent_maps"]:
        send({"map": True})  # the root parent writes 0 -> nobody into our uid_map and gid_map
        if recv().get("mapped") is not True:
            raise OSError("the host could not write the uid map")
    else:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {host_uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {host_gid} 1")
    # Open the folders to bind while this process can still walk to them (as root it keeps
    # its host uid until setresuid), in the new mount namespace so they can be bound.
    sources = {p: os.open(p, O_PATH | os.O_DIRECTORY) for p in cfg["binds"]}
    if cfg["parent_maps"]:
        os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)  # uid 0 here, an unprivileged uid for the kernel outside
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")  # the code cannot create a user namespace to regain capabilities
    root = "/tmp"  # the mount point of the new root inside this mount namespace only
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("agentgym-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path, fd in sources.items():
        dst = root + path
        os.makedirs(dst, mode=0o755, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", dst, None, MS_BIND | MS_REC)
        mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    for name, target in cfg["links"].items():
        os.symlink(target, root + name)
    os.mkdir(root + "/work", 0o755)
    os.chdir(root)
    if SYS_PIVOT_ROOT is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise _err("pivot_root")
    if libc.umount2(b".", MNT_DETACH) != 0:  # the old root, stacked under the new one
        raise _err("detaching the old root")
    os.chdir("/")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges() -> None:
    """In the call's process: no capabilities, now or after any exec."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise _err("capset")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _err("no_new_privs")


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def seccomp_program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k): other architectures and the x32 ABI are killed,
    the denied calls answer EPERM (clone3 ENOSYS), everything else is allowed."""
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    checks = [(nr, "errno") for nr in sorted(DENIED_X86_64.values())] + [
        (nr, "enosys") for nr in ENOSYS_X86_64.values()
    ]
    n_head, n_checks = 4, len(checks)
    allow = n_head + n_checks
    errno_at, enosys_at, kill_at = allow + 1, allow + 2, allow + 3
    prog = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, kill_at - 2, AUDIT_ARCH_X86_64),
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jge, kill_at - 4, 0, 0x40000000),  # the x32 ABI: the same calls under other numbers
    ]
    for i, (nr, what) in enumerate(checks):
        at = n_head + i
        prog.append((jeq, (errno_at if what == "errno" else enosys_at) - at - 1, 0, nr))
    prog += [
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, SECCOMP_RET_ERRNO | 1),  # EPERM
        (ret, 0, 0, SECCOMP_RET_ERRNO | 38),  # ENOSYS
        (ret, 0, 0, SECCOMP_RET_KILL_PROCESS),
    ]
    return prog


def install_seccomp() -> None:
    """Load the filter (after PR_SET_NO_NEW_PRIVS); raises OSError when the kernel refuses."""
    if platform.machine() != "x86_64":
        raise OSError(f"the syscall filter knows x86_64 system call numbers only, not {platform.machine()}")
    prog = seccomp_program()
    table = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), table)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        raise _err("seccomp filter")


def fresh_work(mb: int) -> None:
    libc.umount2(b"/work", MNT_DETACH)  # the last call's files go with its tmpfs
    mount("agentgym-work", "/work", "tmpfs", MS_NOSUID | MS_NODEV, f"size={mb}m,mode=700")


def child(req: dict, out: int, err: int, note: int, cgroups: list[int]) -> None:
    """The call's process (never returns)."""
    code = 1
    try:
        for fd in cgroups:  # the call's own memory and process budget: it and all it starts
            os.write(fd, b"0")
        if libc.unshare(CLONE_NEWIPC) != 0:  # SysV IPC of this call only, gone when it ends
            raise _err("unshare(IPC namespace)")
        os.chdir("/work")
        r, w = os.pipe()
        os.close(w)
        os.dup2(r, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.dup2(note, 3)
        os.closerange(4, 1 << 16)
        lim = req["limits"]
        cpu = int(max(1, lim["cpu_seconds"]))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = int(lim["file_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
        nproc = int(lim.get("nproc", lim["processes"]))  # counts the worker and its PID 1 too
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        drop_privileges()
        install_seccomp()
        os.set_inheritable(3, False)  # the note channel does not pass to what the code starts
        mem = int(lim["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
        for name in [m for m in sys.modules if m.split(".")[0] in ("ctypes", "_ctypes")]:
            del sys.modules[name]
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        if req["hook"]:
            exec(req["hook"], {"__name__": "_agentgym_hook", "__builtins__": __builtins__})
        try:
            exec(compile(req["code"], "<agent>", "exec"), namespace)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:
            _note(e)
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(code & 0xFF)


def _note(exc: BaseException) -> None:
    """Tell the server what stopped the code (fd 3), beside the traceback a reader sees.
    The code runs in this process and could write here too; a note can only turn its own
    call into a failure, and never outranks what the server and the host measured."""
    kind = None
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == 12):  # ENOMEM
        kind = b"memory"
    elif isinstance(exc, PermissionError) and str(exc).startswith("sandbox:"):
        kind = b"blocked"
    elif isinstance(exc, OSError) and exc.errno == 27:  # EFBIG: the file size limit
        kind = b"file_size"
    if kind is not None:
        try:
            os.write(3, kind)
        except OSError:
            pass


def kill_the_rest() -> None:
    """As PID 1: SIGKILL every other process of the namespace and reap them all."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def read_head(fd: int, n: int) -> tuple[bytes, int]:
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, min(size, n)), size


def probe_call_confinement() -> str:
    """What a call's process could not set up (an IPC namespace, the syscall filter), or ''."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            if libc.unshare(CLONE_NEWIPC) != 0:
                raise _err("unshare(IPC namespace) per call")
            drop_privileges()
            install_seccomp()
            if libc.syscall(DENIED_X86_64["keyctl"], 0, 0, 0, 0, 0) != -1:
                raise OSError("the syscall filter did not refuse keyctl")
        except BaseException as e:
            os.write(w, f"{type(e).__name__}: {e}".encode()[:500])
            os._exit(1)
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    message = os.read(r, 600).decode("utf-8", "replace")
    os.close(r)
    if os.waitstatus_to_exitcode(status) != 0:
        return message or f"the call's set-up probe ended with status {status}"
    return ""


def serve(cfg: dict) -> None:
    """PID 1 of the namespace: one request in, one fork, one answer out."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)  # no handlers: signals from inside the namespace cannot reach PID 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    problem = probe_call_confinement()
    if problem:  # fail closed: no call runs with less than every layer
        send({"error": problem})
        return
    send({"ready": True, "pid": os.getpid()})
    while True:
        try:
            req = recv()
        except EOFError:
            return
        lim = req["limits"]
        start = time.perf_counter()
        fresh_work(int(lim["work_mb"]))
        out, err = os.memfd_create("stdout"), os.memfd_create("stderr")
        note_r, note_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(note_r)
            child(req, out, err, note_w, list(cfg.get("cgroup_fds", [])))
        os.close(note_w)
        pidfd = os.pidfd_open(pid)
        timed_out = not select.select([pidfd], [], [], float(lim["wall_seconds"]))[0]
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        kill_the_rest()
        os.set_blocking(note_r, False)
        try:
            note = os.read(note_r, 64).decode("ascii", "replace")
        except (BlockingIOError, OSError):
            note = ""
        os.close(note_r)
        stdout, out_size = read_head(out, int(lim["output_chars"]) * 4 + 4)
        stderr, _ = read_head(err, 8000)
        os.close(out)
        os.close(err)
        fresh_work(1)  # free the call's files now
        send(
            {
                "returncode": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status),
                "timed_out": timed_out,
                "stdout": stdout.decode("utf-8", "replace"),
                "stderr": stderr.decode("utf-8", "replace"),
                "out_size": out_size,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "note": note,
                "seconds": time.perf_counter() - start,
            }
        )


def main() -> None:
    cfg = recv()
    try:
        set_up(cfg)
    except Exception as e:
        send({"error": f"{type(e).__name__}: {e}"})
        return
    pid = os.fork()  # the first child is PID 1 of the new PID namespace
    if pid == 0:
        try:
            serve(cfg)
        finally:
            os._exit(0)
    os.close(0)
    os.close(1)
    _, status = os.waitpid(pid, 0)
    os._exit(0)


if __name__ == "__main__":
    main()
