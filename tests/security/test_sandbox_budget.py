"""Issue 33's attacks on the Python tool's sandbox at the edges of its kernel confinement:
one call's memory and processes as a whole, nothing left for the next call or episode,
a syscall filter, a status the code cannot forge, and failing closed.

The audit hook is off in these (``audit_hook=False``): what holds is the kernel's.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("agentgym_tools")
if not sys.platform.startswith("linux"):  # pragma: no cover
    pytest.skip("the kernel confinement is Linux namespaces", allow_module_level=True)

from agentgym_tools import sandbox as sandbox_mod  # noqa: E402
from agentgym_tools.sandbox import PythonSandbox, SandboxLimits, SandboxUnavailable  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

LIMITS = SandboxLimits(cpu_seconds=4, wall_seconds=15.0, memory_mb=256, output_chars=4000)

FORK_SIX = """
import os, time
kids = []
for i in range(6):
    pid = os.fork()
    if pid == 0:
        b = bytearray(200 << 20)
        for j in range(0, len(b), 4096):
            b[j] = 1
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids])
"""

SYSCALLS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, nr in {names}:
    ctypes.set_errno(0)
    r = libc.syscall(nr, 0, 0, 0, 0, 0)
    print(name, r, ctypes.get_errno())
"""


@pytest.fixture(scope="module")
def bare():
    with PythonSandbox(LIMITS, audit_hook=False) as box:
        yield box


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_cgroups():
    """The sandboxes of this module leave no cgroup behind. Only the cgroups made while the
    module ran count: under pytest-xdist a sandbox another module's test left open (its
    worker alive, so its cgroup busy) is not this module's."""
    import glob
    import os
    import time

    from agentgym_tools.sandbox import CallBudget

    pattern = f"/sys/fs/cgroup/*/agentgym-sandbox-{os.getpid()}-*"
    before = set(glob.glob(pattern))
    yield
    # A cgroup still busy when its sandbox closed (slow reaping on a loaded machine) is
    # retried later; within a few seconds none of this module's may be left.
    deadline = time.monotonic() + 15
    while set(glob.glob(pattern)) - before and time.monotonic() < deadline:
        CallBudget.retry_pending()
        time.sleep(0.2)
    assert not set(glob.glob(pattern)) - before


def test_one_call_forking_children_shares_one_memory_budget(bare):
    if bare._worker.budget is None:
        pytest.skip("no writable cgroup here: the rlimit budget is tested below")
    r = bare.run(FORK_SIX)
    assert r.status == "memory_limit", r
    # 6 x 200 MB were 1,280 MB resident at once before; now the call as a whole stays at 256 MB.
    assert bare.last_peak_bytes <= (LIMITS.memory_mb << 20)
    assert "cgroup" in bare.budget
    assert bare.run("print('next call')").stdout == "next call\n"  # the budget is whole again


def test_the_process_budget_counts_every_process_of_the_call():
    limits = SandboxLimits(cpu_seconds=4, wall_seconds=15.0, memory_mb=256, processes=4)
    with PythonSandbox(limits, audit_hook=False) as box:
        if box._worker.budget is None:
            pytest.skip("no writable cgroup here")
        code = (
            "import os, time\nn = 0\ntry:\n    for i in range(20):\n        if os.fork() == 0:\n"
            "            time.sleep(3); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused', n)"
        )
        r = box.run(code)
    assert r.stdout.strip() == "refused 3", r  # 4 processes: the call and three children


def test_without_a_cgroup_a_call_cannot_fork_and_says_so():
    with PythonSandbox(LIMITS, audit_hook=False, budget="rlimit") as box:
        assert box.budget.startswith("rlimits: one process")
        r = box.run(
            "import os\ntry:\n    os.fork()\n    print('forked')\nexcept OSError as e:\n    print('no', e.errno)"
        )
    assert r.stdout.startswith("no ") and "forked" not in r.stdout


def test_budget_cgroup_fails_closed_where_there_is_none(monkeypatch):
    monkeypatch.setattr(sandbox_mod.CallBudget, "create", classmethod(lambda cls, m, p: None))
    with pytest.raises(SandboxUnavailable, match="no cgroup"):
        PythonSandbox(LIMITS, budget="cgroup")


def test_the_syscall_filter_refuses_what_tool_code_never_needs(bare):
    names = [("io_uring_setup", 425), ("userfaultfd", 323), ("add_key", 248), ("keyctl", 250),
             ("request_key", 249), ("shmget", 29), ("msgget", 68), ("semget", 64), ("ptrace", 101),
             ("process_vm_readv", 310), ("bpf", 321), ("perf_event_open", 298), ("unshare", 272),
             ("setns", 308), ("mount", 165), ("kexec_load", 246), ("init_module", 175)]  # fmt: skip
    r = bare.run(SYSCALLS.format(names=names + [("getpid", 39)]))
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()}
    for name, _ in names:
        assert rows[name] == ["-1", "1"], (name, rows.get(name))  # EPERM
    assert rows["getpid"][0] != "-1"  # what code needs still works
    r = bare.run(SYSCALLS.format(names=[("x32-getpid", 39 | 0x40000000)]))
    assert r.status == "blocked" and r.exit_code == -31  # another ABI: killed (SIGSYS)


def test_nothing_one_episode_leaves_reaches_the_next():
    """Episode A tries to leave SysV IPC, a keyring key, files and processes; episode B looks."""
    env = agentgym.make("tools/python-v0", sandbox_limits={"cpu_seconds": 2, "wall_seconds": 4.0})
    task = TaskSpec({"depth": 2, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 4)
    leave = (
        "import ctypes, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print('shm', libc.shmget(4242, 1 << 20, 0o1666))\nprint('msg', libc.msgget(4243, 0o1666))\n"
        "print('key', libc.syscall(248, b'user', b'agentgym', b'secret', 6, -4))\n"
        "open('/work/left.txt', 'w').write('x')\n"
    )
    look = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print('shm', libc.shmget(4242, 0, 0))\nprint('msg', libc.msgget(4243, 0))\n"
        "print('key', libc.syscall(249, b'user', b'agentgym', None, 0))\n"
        "print('file', os.path.exists('/work/left.txt'))"
    )
    box = env.unwrapped.sandbox
    box.audit_hook, box._hook = False, ""  # the kernel's layers only
    env.reset(options={"task": task})
    left = box.run(leave)
    assert left.stdout.split() == ["shm", "-1", "msg", "-1", "key", "-1"], left
    env.reset(options={"task": task})
    seen = box.run(look).stdout.split()
    assert seen == ["shm", "-1", "msg", "-1", "key", "-1", "file", "False"], seen
    env.close()


@pytest.mark.parametrize(
    "code, want",
    [
        ("import sys\nprint('MemoryError', file=sys.stderr)\nprint('PermissionError: sandbox: no', file=sys.stderr)",
         "ok"),
        ("import sys\nprint('Traceback ...\\nMemoryError', file=sys.stderr)\nsys.exit(1)", "error"),
        ("import sys\nprint('PermissionError: sandbox: os.fork is not allowed', file=sys.stderr)\nsys.exit(1)",
         "error"),
        ("import sys\nprint('File too large', file=sys.stderr)\nsys.exit(1)", "error"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "crashed"),  # not cpu_limit: no CPU was spent
    ],
)  # fmt: skip
def test_the_status_cannot_be_forged_from_stderr(bare, code, want):
    assert bare.run(code).status == want


def test_real_limits_still_have_their_status(bare):
    assert bare.run("x = bytearray(10 ** 10)").status == "memory_limit"
    assert bare.run("while True:\n    pass").status == "cpu_limit"
    assert bare.run("import time\ntime.sleep(60)").status == "timeout"


def test_a_kernel_without_the_filter_is_refused(monkeypatch, tmp_path):
    """Fail closed: a worker whose calls cannot get the filter never runs a call."""
    worker = tmp_path / "worker.py"
    source = (
        open(sandbox_mod._WORKER)
        .read()
        .replace('if platform.machine() != "x86_64":', "if True:  # as on a machine the filter does not know")
    )
    worker.write_text(source)
    monkeypatch.setattr(sandbox_mod, "_WORKER", str(worker))
    with pytest.raises(SandboxUnavailable, match="x86_64 system call numbers only"):
        PythonSandbox(LIMITS)


def _ipc_namespaces_of_a_call(box, keep):
    """From the host: the IPC namespaces of the worker and of the processes of a running call."""
    import os
    import threading
    import time

    worker = box.worker_pid
    seen: dict[str, set[str]] = {"worker": set(), "code": set()}

    def descendants(root):
        kids: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [root]
        while todo:
            p = todo.pop()
            out.append((p, not kids.get(p)))
            todo.extend(kids.get(p, []))
        return out

    call = threading.Thread(target=box.run, args=("import time\ntime.sleep(2)",))
    call.start()
    time.sleep(1.0)
    for pid, leaf in descendants(worker):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/ipc")
        except OSError:
            continue
        if pid == worker:
            seen["worker"].add(ns)
        elif leaf:  # the process running the call's code
            seen["code"].add(ns)
            # Held open, the namespace outlives the call, so its number is not reused by the next.
            keep.append(os.open(f"/proc/{pid}/ns/ipc", os.O_RDONLY))
    call.join()
    return seen


def test_every_call_gets_a_fresh_ipc_namespace(bare):
    """SysV objects a call could make die with its call: each call runs in an IPC namespace
    of its own, not the worker's (which lives as long as the env, so across episodes). The
    filter refusing shmget/msgget is the second layer; this checks the first, from the host
    (a call has no /proc)."""
    import os

    keep: list[int] = []
    try:
        first, second = _ipc_namespaces_of_a_call(bare, keep), _ipc_namespaces_of_a_call(bare, keep)
    finally:
        for fd in keep:
            os.close(fd)
    assert first["worker"] == second["worker"] and len(first["worker"]) == 1
    assert len(first["code"]) == 1 and len(second["code"]) == 1, (first, second)
    assert not first["code"] & first["worker"]  # not the worker's namespace
    assert not first["code"] & second["code"]  # and not the previous call's


MEMFDS = """
import os
fds = []
for i in range(56):  # 56 memfds of 4 MB less a page (under RLIMIT_FSIZE; 64 descriptors): 220 MB
    fd = os.memfd_create(f"m{i}")
    chunk = b"x" * 4096
    for _ in range(1023):
        os.write(fd, chunk)
    fds.append(fd)
print("held", len(fds))
"""


def test_memfd_pages_count_against_the_calls_memory():
    """RLIMIT_AS does not count memfd pages; the call's cgroup does. 220 MB of memfds in a
    96 MB call must not be held."""
    with PythonSandbox(SandboxLimits(cpu_seconds=4, wall_seconds=15.0, memory_mb=96), audit_hook=False) as box:
        if not box.budget.startswith("cgroup"):
            pytest.skip(f"no cgroup here ({box.budget}): memfds are bounded by RLIMIT_FSIZE x RLIMIT_NOFILE only")
        r = box.run(MEMFDS)
        assert "held 56" not in r.stdout, r
        assert r.status == "memory_limit", r
        assert box.run("print(1)").stdout == "1\n"  # the next call is unaffected


def test_cgroups_left_by_a_killed_host_are_removed_by_the_next_sandbox(tmp_path, monkeypatch):
    """A trainer killed with its sandboxes open leaves their (empty) cgroups; the next
    sandbox host removes those whose pid is gone, and only those."""
    import glob
    import os

    from agentgym_tools.sandbox import CallBudget

    roots = [d for d in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup") if os.access(d, os.W_OK)]
    if not roots:
        pytest.skip("no writable cgroup folder here")
    dead = 4_000_000  # above pid_max's ceiling (2**22): never a live process
    stale = [os.path.join(r, f"agentgym-sandbox-{dead}-7") for r in roots]
    live = [os.path.join(r, "agentgym-sandbox-1-7") for r in roots]  # pid 1 is alive
    made = []
    try:
        for folder in stale + live:
            try:
                os.mkdir(folder)
                made.append(folder)
            except OSError:
                pass
        if not set(stale) & set(made):
            pytest.skip("cannot make a cgroup folder here")
        budget = CallBudget.create(64 << 20, 8)
        if budget is not None:
            budget.remove()
        assert not [f for f in stale if os.path.exists(f)]
        assert all(os.path.exists(f) for f in live if f in made)  # a live host's cgroups stay
        assert not glob.glob(f"/sys/fs/cgroup/*/agentgym-sandbox-{dead}-*")
    finally:
        for folder in made:
            if os.path.exists(folder):
                os.rmdir(folder)
