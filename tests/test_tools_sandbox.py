"""The Python tool's sandbox: ordinary code runs, limits and escapes are reported, the env keeps working.

The kernel-level confinement (audit hook undone or off) is replayed attack by attack in
tests/security/test_sandbox_escapes.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import warnings

import pytest

pytest.importorskip("agentgym_tools")

from agentgym_tools.sandbox import PythonSandbox, SandboxLimits  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=2.0, memory_mb=256, output_chars=2000, file_mb=1)


@pytest.fixture(scope="module", params=["namespaces", "hook"])
def sandbox(request):
    """Every behaviour below holds in both modes: the kernel-confined default and the opt-in hook mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        box = PythonSandbox(LIMITS, mode=request.param)
    yield box
    box.close()


def test_ordinary_code_runs(sandbox):
    r = sandbox.run(
        "import math, json, fractions\nprint(math.factorial(10), json.dumps([1]), fractions.Fraction(1, 3) * 3)"
    )
    assert (r.status, r.stdout) == ("ok", "3628800 [1] 1\n")
    assert sandbox.run("x = 1").message() == "(no output; use print() to show a value)"


def test_files_inside_the_working_directory_are_fine(sandbox):
    r = sandbox.run(
        "open('notes.txt', 'w').write('hi')\nimport os\nprint(open('notes.txt').read(), sorted(os.listdir('.')))"
    )
    assert r.status == "ok" and r.stdout.startswith("hi [")


def test_each_run_gets_a_fresh_directory(sandbox):
    sandbox.run("open('left_behind.txt', 'w').write('x')")
    r = sandbox.run("import os\nprint('left_behind.txt' in os.listdir('.'))")
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize(
    "code",
    [
        "print(open('/etc/passwd').read())",
        "print(open('../../../../etc/hostname').read())",
        "import os\nfd = os.open('/etc/passwd', os.O_RDONLY)\nprint(os.read(fd, 100))",
        "import pathlib\nprint(pathlib.Path('/root').exists(), list(pathlib.Path('/').iterdir()))",
        "import os\nprint(os.listdir('/'))",
        "open('/tmp/agentgym-sandbox-escape', 'w').write('x')",
        "import os\nos.symlink('/etc/passwd', 'p')\nprint(open('p').read())",
    ],
)
def test_reading_or_writing_outside_is_blocked(sandbox, code):
    r = sandbox.run(code)
    assert r.status == "blocked", r
    assert "not allowed" in r.message()
    assert not os.path.exists("/tmp/agentgym-sandbox-escape")


def test_network_is_blocked(sandbox):
    # A local listener the code would reach if it could open a socket at all.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[bool] = []

    def accept():
        try:
            server.accept()
            accepted.append(True)
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    r = sandbox.run(
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
    )
    t.join()
    server.close()
    assert r.status == "blocked" and "socket" in r.message() and not accepted
    r = sandbox.run("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)")
    assert r.status in ("blocked", "error") and "connected" not in r.stdout


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess\nsubprocess.run(['sh', '-c', 'echo escaped'])",
        "import os\nos.system('echo escaped')",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo escaped'])",
        "import os\nos.posix_spawn('/bin/sh', ['sh'], {})",
        "import ctypes\nctypes.CDLL(None).fork()",
        "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1000, 1000))",
    ],
)
def test_processes_and_escape_hatches_are_blocked(sandbox, code):
    r = sandbox.run(code)
    assert r.status == "blocked", r
    assert "escaped" not in r.stdout


def test_unbounded_memory_is_stopped(sandbox):
    r = sandbox.run("x = bytearray(10 ** 10)")
    assert r.status == "memory_limit"
    # The growing loop gets CPU and wall time to spare: on a loaded machine page faults
    # can cost over a second of CPU before 256 MB are reached (seen once in the full
    # suite beside a training run: the CPU limit fired first), and this test is about memory.
    roomy = SandboxLimits(cpu_seconds=10, wall_seconds=20.0, memory_mb=256, output_chars=2000, file_mb=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        box = PythonSandbox(roomy, mode=sandbox.mode)
    try:
        r = box.run("chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 6))")
    finally:
        box.close()
    assert r.status == "memory_limit" and "memory" in r.message()


def test_busy_loop_hits_the_cpu_limit(sandbox):
    r = sandbox.run("while True:\n    pass")
    assert r.status == "cpu_limit" and r.exit_code in (-signal.SIGXCPU, -signal.SIGKILL)


def test_sleeping_hits_the_wall_clock(sandbox):
    r = sandbox.run("import time\nprint('before', flush=True)\ntime.sleep(60)")
    assert r.status == "timeout" and r.stdout == "before\n"
    assert r.exit_code == -signal.SIGKILL  # the process group was killed, not left running


def test_output_flood_is_cut(sandbox):
    r = sandbox.run("while True:\n    print('x' * 1000)")
    assert r.status == "output_limit"
    assert len(r.stdout) <= LIMITS.output_chars + len("\n[output truncated]")


def test_errors_are_reported_not_raised(sandbox):
    assert sandbox.run("1 / 0").message() == "the code raised an error: ZeroDivisionError: division by zero"
    assert sandbox.run("def (").status == "error"
    assert sandbox.run(b"print(1)").status == "error"  # type: ignore[arg-type]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="memory_mb must be a positive number"):
        SandboxLimits(memory_mb=0)


def test_the_env_keeps_working_after_hostile_code():
    env = agentgym.make("tools/python-v0", sandbox_limits={"cpu_seconds": 1, "wall_seconds": 2.0})
    task = TaskSpec({"depth": 2, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 4)
    env.reset(options={"task": task})
    hostile = [
        "import os\nwhile True: os.fork()",
        "print(open('/etc/shadow').read())",
        "x = [0] * 10**10",
        "while True: pass",
        "import socket; socket.socket().connect(('10.0.0.1', 80))",
    ]
    calls = "".join(
        f"<tool_call>{json.dumps({'name': 'run_python', 'arguments': {'code': c}})}</tool_call>" for c in hostile
    )
    obs, reward, term, trunc, info = env.step(calls)
    assert not term and obs[0]["content"].count("<tool_response>") == len(hostile)
    assert obs[0]["content"].count("stopped:") == len(hostile)
    failures = env.unwrapped.sandbox.failures
    assert failures.get("blocked", 0) >= 3 and failures.get("memory_limit") == 1 and failures.get("cpu_limit") == 1
    while True:
        obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
        if term or trunc:
            break
    assert info["success"]
