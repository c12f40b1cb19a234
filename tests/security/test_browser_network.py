"""The browser reaches nothing but its own loopback: a network namespace the kernel enforces.

The pages below try every way out the attack review found (WebRTC with a STUN server on
another address, mDNS, names starting ``127.``, plain fetches and WebSockets to this
machine's other addresses) against listeners on the host that would see them arrive.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

pytest.importorskip("playwright")
pytest.importorskip("agentgym_web")

from agentgym_web.browser import BrowserFailure, BrowserPool, _closed_root, browser_available, launch_args  # noqa: E402
from agentgym_web.netns import namespace_of  # noqa: E402

if not browser_available():
    pytest.skip("no Chromium (bash envs/web/install-browser.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
def pool():
    p = BrowserPool()
    p.ensure_started()
    yield p
    p.close()


def _addresses() -> list[str]:
    import psutil

    out = ["127.0.0.1"]
    for addrs in psutil.net_if_addrs().values():
        out += [a.address for a in addrs if a.family == socket.AF_INET and not a.address.startswith("127.")]
    return out


class Listeners:
    """A TCP and a UDP listener on every address of the host, recording who arrives."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("0.0.0.0", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", 0))
        self.tcp.settimeout(0.2)
        self.udp.settimeout(0.2)
        self.seen: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            for sock, kind in ((self.tcp, "tcp"), (self.udp, "udp")):
                try:
                    if kind == "tcp":
                        conn, addr = sock.accept()
                        conn.close()
                    else:
                        _, addr = sock.recvfrom(2048)
                    self.seen.append(f"{kind} from {addr[0]}")
                except OSError:
                    pass

    def close(self) -> list[str]:
        self._stop = True
        self._thread.join()
        self.tcp.close()
        self.udp.close()
        return self.seen


def _run_page(pool: BrowserPool, html: str, wait_ms: int = 3000) -> str:
    async def go():
        ctx, _ = await pool.new_context()
        try:
            page = await ctx.new_page()
            await page.set_content(html)
            await page.wait_for_timeout(wait_ms)
            return await page.evaluate(
                "document.getElementById('log') ? document.getElementById('log').textContent : ''"
            )
        finally:
            await pool.close_context(ctx)

    return pool.run(go(), timeout=60)


def test_the_browser_has_only_its_own_loopback(pool):
    pid = pool.browser_pid
    assert pool.network == "isolated"
    assert namespace_of(pid) != namespace_of(os.getpid())
    with open(f"/proc/{pid}/net/dev") as f:
        interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert interfaces == ["lo"]  # no route anywhere: nothing to send mDNS, STUN or DNS on


def test_webrtc_stun_and_mdns_do_not_leave(pool):
    listeners = Listeners()
    port_u, port_t = listeners.udp.getsockname()[1], listeners.tcp.getsockname()[1]
    servers = [f"stun:{a}:{port_u}" for a in _addresses()] + [f"turn:{a}:{port_t}?transport=tcp" for a in _addresses()]
    html = textwrap.dedent(f"""
        <p id="log"></p><script>
        const log = m => document.getElementById('log').textContent += m + ';';
        const pc = new RTCPeerConnection({{iceServers: [{{urls: {servers!r}, username: 'u', credential: 'p'}}]}});
        pc.onicecandidate = e => log(e.candidate ? e.candidate.candidate : 'done');
        pc.createDataChannel('x');
        pc.createOffer().then(o => pc.setLocalDescription(o)).catch(e => log('err ' + e));
        for (const a of {_addresses()!r}) {{
            fetch('http://' + a + ':{port_t}/f').catch(() => log('fetch blocked'));
            try {{ new WebSocket('ws://' + a + ':{port_t}/w'); }} catch (e) {{}}
        }}
        fetch('http://127.evil.example:{port_t}/dns').catch(() => log('name blocked'));
        </script>""")
    text = _run_page(pool, html)
    seen = listeners.close()
    assert seen == [], f"packets reached the host: {seen}"
    assert "srflx" not in text and "relay" not in text  # no server answered any candidate request


def test_no_wildcard_for_names_that_start_with_127():
    rules = " ".join(launch_args())
    assert "127.*" not in rules and "EXCLUDE 127.0.0.1" in rules


@pytest.fixture()
def readable_tmp():
    """A folder the browser's unprivileged user can read (pytest's tmp_path is root's only)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="agentgym-web-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_file_roots_do_not_follow_symlinks_out(pool, readable_tmp):
    tmp_path = readable_tmp
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "secret.html").write_text("<p id='log'>TOPSECRET</p>")
    (root / "page.html").write_text("<p id='log'>own page</p>")
    (root / "link.html").symlink_to(outside / "secret.html")
    (root / "dir").symlink_to(outside)
    assert not _closed_root(str(root))
    blocked: list[str] = []

    async def go():
        ctx, _ = await pool.new_context(file_roots=(str(root),), on_blocked=blocked.append)
        texts = []
        try:
            for url in [
                (root / "page.html").as_uri(),
                (root / "link.html").as_uri(),
                (root / "dir/secret.html").as_uri(),
            ]:
                page = await ctx.new_page()
                try:
                    await page.goto(url, timeout=5000)
                    texts.append(await page.content())
                except Exception:
                    texts.append("refused")
                await page.close()
        finally:
            await pool.close_context(ctx)
        return texts

    texts = pool.run(go(), timeout=60)
    assert "own page" in texts[0]
    assert all("TOPSECRET" not in t for t in texts[1:]) and len(blocked) == 2


def test_isolated_launch_refuses_when_the_kernel_will_not(tmp_path):
    """Where no network namespace may be made, the launch fails saying so; 'host' must be named."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent("""
        from agentgym_web.browser import BrowserFailure, BrowserPool
        pool = BrowserPool()
        try:
            pool.ensure_started()
            print('LAUNCHED')
        except BrowserFailure as e:
            print('REFUSED', str(e).replace(chr(10), ' '))
        pool.close()
    """)
    )
    cmd = f"echo 0 > /proc/sys/user/max_net_namespaces && exec {sys.executable} {script}"
    p = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", cmd], capture_output=True, text=True, timeout=180
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("REFUSED") and "network namespace could not be made" in p.stdout, p.stdout
    assert "network='host'" in p.stdout
    assert issubclass(BrowserFailure, RuntimeError)


def test_no_browser_process_runs_as_root_and_chromium_sandboxes_its_renderers(pool):
    """Issue 33: every Chromium process ran as uid 0 with --no-sandbox in our namespaces."""
    import psutil

    seen: dict[int, dict] = {}

    async def go():
        ctx, _ = await pool.new_context()
        try:
            page = await ctx.new_page()
            await page.set_content("<p id='log'>hello</p>")
            for p in psutil.Process(pool.browser_pid).children(recursive=True):  # during the episode
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        status = dict(line.split(":", 1) for line in f if ":" in line)
                    seen[p.pid] = {
                        "uids": p.uids(),
                        "cmdline": p.cmdline(),
                        "seccomp": status.get("Seccomp", "").strip(),
                        "ns": {n: os.readlink(f"/proc/{p.pid}/ns/{n}") for n in ("user", "mnt", "pid", "net")},
                    }
                except (psutil.NoSuchProcess, FileNotFoundError):
                    pass
        finally:
            await pool.close_context(ctx)

    pool.run(go(), timeout=60)
    for pid, s in sorted(seen.items()):  # the process list, shown with pytest -s
        kind = next((a.split("=", 1)[1] for a in s["cmdline"] if a.startswith("--type=")), "browser")
        print(f"pid {pid} uid {s['uids'].real} seccomp {s['seccomp']} {kind}")
    launcher = psutil.Process(pool.browser_pid)
    assert 0 not in launcher.uids()
    chromium = {pid: s for pid, s in seen.items() if s["cmdline"] and "chromium" in s["cmdline"][0]}
    assert len(chromium) >= 3, seen  # the browser, its zygotes and at least one renderer
    ours = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("user", "mnt", "pid", "net")}
    for pid, s in chromium.items():
        assert 0 not in s["uids"], (pid, s["uids"])
        assert all(s["ns"][n] != ours[n] for n in ours), (pid, s["ns"])
        assert "--no-sandbox" not in s["cmdline"]
    renderers = [s for s in chromium.values() if "--type=renderer" in s["cmdline"]]
    assert renderers and all(s["seccomp"] == "2" for s in renderers)  # Chromium's own seccomp-bpf sandbox
