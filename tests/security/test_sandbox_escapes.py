"""Attacks on the Python tool's sandbox, one per class the attack review found, replayed here.

Each runs in the mode this machine gives (it must be ``namespaces``, the strongest: none of
these tests skip on Linux) and most run with the audit hook *off* or *undone*, so what
stops them is the kernel: namespaces, the uid map, capabilities and rlimits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

pytest.importorskip("agentgym_tools")
if not sys.platform.startswith("linux"):  # pragma: no cover
    pytest.skip("the kernel confinement is Linux namespaces", allow_module_level=True)

from agentgym_tools.sandbox import PythonSandbox, SandboxLimits, SandboxUnavailable  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=4.0, memory_mb=256, output_chars=4000, file_mb=1, disk_mb=8)

# Routes by which code in the call's own interpreter can switch the audit hook off.
UNDO_HOOK_GC = """
import gc
for f in gc.get_objects():
    if type(f).__name__ == 'function' and f.__name__ == '_hook':
        g = f.__globals__
        g['_blocked'].clear(); g['_bad_modules'].clear(); g['_path_events'].clear()
        g['_inside'] = lambda p: True
        g['_readable'] = lambda p: True
"""
UNDO_HOOK_MAIN = """
import sys
m = vars(sys.modules['__main__'])
for name in ('_blocked', '_bad_modules', '_path_events'):
    if name in m:
        m[name].clear()
"""


@pytest.fixture(scope="module")
def bare():
    """The kernel layers alone: no audit hook at all."""
    with PythonSandbox(LIMITS, audit_hook=False) as box:
        yield box


@pytest.fixture(scope="module")
def hooked():
    with PythonSandbox(LIMITS) as box:
        yield box


@pytest.fixture()
def host_secret():
    """A root-only folder and file on the host, as /root and /etc/shadow are."""
    folder = tempfile.mkdtemp(prefix="agentgym-secret-")
    os.chmod(folder, 0o700)
    path = os.path.join(folder, "secret.txt")
    with open(path, "w") as f:
        f.write("TOPSECRET")
    os.chmod(path, 0o600)
    yield folder, path
    subprocess.run(["rm", "-rf", folder], check=False)


def test_the_strong_mode_is_on_here_even_from_a_virtualenv(tmp_path, monkeypatch):
    # A virtualenv's interpreter is a symlink that does not exist inside the jail.
    link = tmp_path / "venv-python"
    link.symlink_to(os.path.realpath(sys.executable))
    monkeypatch.setattr(sys, "executable", str(link))
    with PythonSandbox(LIMITS) as box:
        r = box.run("import os\nprint(os.getuid(), sorted(os.listdir('/')))")
    assert box.mode == "namespaces" and r.mode == "namespaces"
    assert r.status == "blocked"  # the hook refuses listing '/' ...
    with PythonSandbox(LIMITS, audit_hook=False) as box:
        r = box.run("import os\nprint(os.getuid(), sorted(os.listdir('/')))")
    uid, listing = r.stdout.split(" ", 1)
    assert r.status == "ok" and uid == "0"  # ... and without it the root holds only the binds and /work
    assert set(eval(listing)) <= {"usr", "bin", "lib", "lib64", "sbin", "root", "work", "opt", "home"}
    assert "etc" not in listing and "proc" not in listing and "dev" not in listing


@pytest.mark.parametrize("undo", [UNDO_HOOK_GC, UNDO_HOOK_MAIN, ""], ids=["gc-route", "main-vars-route", "no-hook"])
def test_host_files_are_out_of_reach_with_the_hook_undone(undo, host_secret, tmp_path):
    folder, secret = host_secret
    box = PythonSandbox(LIMITS, audit_hook=bool(undo))
    code = undo + textwrap.dedent(f"""
        import os
        seen = []
        for p in ('/etc/shadow', '/etc/passwd', {secret!r}, {folder!r}, '/root/.bashrc', '/proc/1/environ',
                  {str(tmp_path)!r}):
            seen.append((p, os.path.exists(p)))
        for p in ({secret!r}, '/etc/shadow'):
            try:
                seen.append((p, open(p).read()))
            except OSError as e:
                seen.append((p, type(e).__name__))
        for target in ('/usr/agentgym-planted', {folder + "/planted"!r}, '/root/.bashrc',
                       {str(tmp_path / "planted")!r}):
            try:
                with open(target, 'a') as f:
                    f.write('import os; os.system("echo pwned")')
                seen.append((target, 'wrote'))
            except OSError as e:
                seen.append((target, type(e).__name__))
        print(seen)
    """)
    r = box.run(code)
    box.close()
    assert r.ok, r
    assert "TOPSECRET" not in r.stdout and "root:" not in r.stdout and "'wrote'" not in r.stdout
    assert ", True)" not in r.stdout  # none of those host paths exists for the code
    assert not os.path.exists("/usr/agentgym-planted") and not os.path.exists(os.path.join(folder, "planted"))
    assert not (tmp_path / "planted").exists()


def test_dir_fd_fchdir_and_symlinks_stay_inside(bare, host_secret):
    folder, secret = host_secret
    r = bare.run(
        textwrap.dedent(f"""
        import os
        os.symlink('/', 'up')
        os.symlink({secret!r}, 'direct')
        out = []
        fd = os.open('up', os.O_RDONLY | os.O_DIRECTORY)
        out.append(sorted(os.listdir(fd)))
        for rel in ('etc/shadow', {secret.lstrip("/")!r}):
            try:
                out.append(os.read(os.open(rel, os.O_RDONLY, dir_fd=fd), 100))
            except OSError as e:
                out.append(type(e).__name__)
        os.fchdir(fd)
        os.chdir('..')
        out.append(sorted(os.listdir('.')))
        try:
            out.append(open('direct').read())
        except OSError as e:
            out.append(type(e).__name__)
        try:
            os.open('usr/planted', os.O_CREAT | os.O_WRONLY)
            out.append('created')
        except OSError as e:
            out.append(type(e).__name__)
        print(out)
    """)
    )
    assert r.ok, r
    assert "TOPSECRET" not in r.stdout and "'etc'" not in r.stdout and "created" not in r.stdout
    assert r.stdout.count("FileNotFoundError") == 3 and "'OSError'" in r.stdout, r.stdout  # the last: read-only


def _victim() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_no_signal_reaches_the_host_or_its_processes(bare):
    victim = _victim()
    try:
        r = bare.run(
            textwrap.dedent(f"""
            import os, signal
            out = []
            for pid in ({victim.pid}, {os.getpid()}, os.getppid(), 1):
                try:
                    signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)
                    out.append((pid, 'sent'))
                except OSError as e:
                    out.append((pid, type(e).__name__))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError as e:
                    out.append((pid, type(e).__name__))
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            print(out, os.getppid())
        """)
        )
        time.sleep(0.2)
        assert victim.poll() is None, "a host process was killed from the sandbox"
        assert bare.run("print('still serving')").stdout == "still serving\n"  # its own PID 1 survived too
        assert r.status in ("ok", "cpu_limit", "crashed")  # kill(-1) from inside may take the call itself down
    finally:
        victim.kill()
        victim.wait()


def test_the_trainer_survives_tool_code_that_signals_it():
    env = agentgym.make("tools/python-v0", sandbox_limits={"cpu_seconds": 1, "wall_seconds": 2.0})
    env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 3)})
    code = (
        UNDO_HOOK_GC + "import os, signal\n"
        "for pid in (os.getppid(), 1, " + str(os.getpid()) + "):\n"
        "    try:\n        signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)\n"
        "    except OSError as e:\n        print(pid, type(e).__name__)\n"
    )
    call = json.dumps({"name": "run_python", "arguments": {"code": code}})
    obs, reward, term, trunc, info = env.step(f"<tool_call>{call}</tool_call>")
    assert info["sandbox_mode"] == "namespaces" and not term  # we are alive to read the reply
    while not (term or trunc):
        obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
    assert info["success"]  # the same sandbox still works for the rest of the episode
    env.close()


def _processes_in_pid_namespace_of(pid: int) -> list[int]:
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _pid_one_of(box: PythonSandbox) -> int:
    worker = box.worker_pid
    assert worker is not None
    with open(f"/proc/{worker}/task/{worker}/children") as f:
        return int(f.read().split()[0])


def test_orphans_and_daemons_die_with_the_call(bare):
    marker_dir = tempfile.mkdtemp()
    r = bare.run(
        textwrap.dedent("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.5)
                open('/work/late', 'w').write('x')
                os._exit(0)
            os._exit(0)
        for _ in range(5):
            if os.fork() == 0:
                time.sleep(30)
        print('parent done')
    """)
    )
    assert r.status == "ok" and "parent done" in r.stdout
    pid_one = _pid_one_of(bare)
    assert _processes_in_pid_namespace_of(pid_one) == [pid_one]  # nothing but the server itself
    time.sleep(1.7)
    assert bare.run("import os\nprint(os.listdir('.'))").stdout == "[]\n"  # the orphan never wrote
    os.rmdir(marker_dir)


def test_an_orphan_cannot_touch_a_concurrent_sandbox(bare):
    other = PythonSandbox(LIMITS, audit_hook=False)
    results = {}

    def slow():
        results["other"] = other.run("import time\ntime.sleep(1.5)\nprint('other survived')")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    bare.run(
        "import os, signal\n"
        "for pid in range(1, 4000):\n"
        "    try:\n        signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)\n"
        "    except OSError:\n        pass\n"
    )
    t.join()
    other.close()
    assert results["other"].status == "ok" and results["other"].stdout == "other survived\n", results["other"]


def test_fork_bombs_hit_the_process_limit(bare):
    r = bare.run(
        textwrap.dedent("""
        import os, time
        n = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
                n += 1
        except OSError as e:
            print('refused after', n, e.errno)
    """)
    )
    assert r.status == "ok" and r.stdout.startswith("refused after"), r
    assert int(r.stdout.split()[2]) < LIMITS.processes
    assert bare.run("print(1)").stdout == "1\n"


def test_the_work_folder_is_size_capped(bare):
    r = bare.run(
        "import os\nn = 0\ntry:\n    for i in range(400):\n        open(f'f{i}', 'wb').write(b'x' * 1_000_000)\n"
        "        n += 1\nexcept OSError as e:\n    print(n, e.errno)\n"
    )
    written, errno = map(int, r.stdout.split())
    assert written <= LIMITS.disk_mb and errno == 28  # ENOSPC at the cap, not 400 MB later


def test_no_new_privileges_or_namespaces_inside(bare):
    r = bare.run(
        textwrap.dedent("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        out.append(('userns', libc.unshare(0x10000000), ctypes.get_errno()))
        out.append(('mountns', libc.unshare(0x00020000), ctypes.get_errno()))
        out.append(('remount', libc.mount(b'x', b'/work', b'tmpfs', 32, b'size=4g'), ctypes.get_errno()))
        out.append(('chroot', libc.chroot(b'/usr'), ctypes.get_errno()))
        out.append(('setuid', libc.setuid(1000), ctypes.get_errno()))
        print(out)
    """)
    )
    assert r.ok, r
    assert ", 0," not in r.stdout and r.stdout.count(", -1,") == 5, r.stdout


def test_no_network_at_all(bare):
    tcp = socket.socket()
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(4)
    tcp.settimeout(2.5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    udp.settimeout(2.5)
    got: list[str] = []

    def listen():
        try:
            tcp.accept()
            got.append("tcp")
        except OSError:
            pass
        try:
            udp.recvfrom(100)
            got.append("udp")
        except OSError:
            pass

    t = threading.Thread(target=listen)
    t.start()
    addresses = ["127.0.0.1"] + _host_addresses()
    r = bare.run(
        textwrap.dedent(f"""
        import socket
        out = []
        for host in {addresses!r}:
            try:
                socket.create_connection((host, {tcp.getsockname()[1]}), timeout=1)
                out.append('tcp ok')
            except OSError as e:
                out.append(e.errno)
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b'x', (host, {udp.getsockname()[1]}))
                out.append('udp sent')
            except OSError as e:
                out.append(e.errno)
        import os
        print(out, open('/proc/net/dev').read() if os.path.exists('/proc/net/dev') else 'no /proc')
    """)
    )
    t.join()
    tcp.close()
    udp.close()
    assert r.ok and "ok" not in r.stdout and "sent" not in r.stdout, r
    assert got == []


def _host_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
    return [a for a in out if ":" not in a][:2]


def test_refuses_when_namespaces_are_unavailable(tmp_path):
    """A kernel that refuses user namespaces: the default mode refuses by name, 'hook' must be asked for."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent("""
        import warnings
        import agentgym, agentgym_tools.sandbox as sb
        from agentgym import TaskSpec
        try:
            sb.PythonSandbox()
            print('RAN')
        except sb.SandboxUnavailable as e:
            print('REFUSED', e)
        env = agentgym.make('tools/python-v0')
        try:
            env.reset(options={'task': TaskSpec({'depth': 1, 'extra_calls': 0, 'distractors': 0, 'noise': 0.0}, 3)})
            print('ENV RAN')
        except sb.SandboxUnavailable:
            print('ENV REFUSED')
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            box = sb.PythonSandbox(mode='hook')
            print('HOOK', box.run('print(6 * 7)').stdout.strip(), box.mode, len(w))
    """)
    )
    # A user namespace in which no further user namespace may be made: what a locked-down host gives.
    cmd = f"echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} {script}"
    p = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0].startswith("REFUSED") and "unshare" in lines[0] and "sandbox_mode='hook'" in lines[0], lines
    assert "ENV REFUSED" in lines
    assert lines[-1] == "HOOK 42 hook 1"  # the weaker mode runs only when named, and warns


def test_sandbox_unavailable_is_an_error_type():
    assert issubclass(SandboxUnavailable, RuntimeError)
    with pytest.raises(ValueError, match="mode must be one of"):
        PythonSandbox(mode="jail")
    with pytest.raises(ValueError, match="unknown sandbox_limits"):
        agentgym.make("tools/python-v0", sandbox_limits={"cpu_secs": 1})


def test_killed_host_takes_its_sandbox_with_it(tmp_path):
    script = tmp_path / "host.py"
    script.write_text(
        "import os, sys, time\nfrom agentgym_tools.sandbox import PythonSandbox\n"
        "box = PythonSandbox()\nbox.run('print(1)')\nprint(box.worker_pid, flush=True)\ntime.sleep(60)\n"
    )
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(host.stdout.readline())
    host.send_signal(signal.SIGKILL)
    host.wait()
    for _ in range(50):
        if not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the sandbox worker outlived its host")
