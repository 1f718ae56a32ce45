"""Fixtures: a fake-clb subprocess per session (plus private ones on demand) and SDK client factories.

The control API (/_fake/*) is the only thing driven with plain urllib; the CLB API itself is always called
through the official Tencent Cloud Python SDK.
"""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import sdkutil
from sdkutil import ACCOUNT_A, ACCOUNT_B

# The SDK honours HTTP_PROXY for http endpoints unless the host is in NO_PROXY: never proxy loopback.
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"

# fake-clb/tests/sdk/conftest.py -> repository root
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent.parent
STARTUP_DEADLINE_S = 30.0

# Limits of the shared server. Quotas differ from the real defaults so that tests can tell config values apart.
DEFAULT_LIMITS = {
    "actionQps": 1000,
    "listenersPerLoadBalancer": 60,
    "rulesPerListener": 45,
    "targetsPerListener": 120,
    "loadBalancersPerRegion": 90,
    "createListenerMaxPorts": 49,
    "taskDuration": "100ms",
    "loadBalancerCreateDuration": "200ms",
    "batchBusyTail": "0ms",
    "maxBodyBytes": 10485760,
    "timestampSkew": "300s",
}


def base_config(limits=None):
    """Two accounts, four LBs of account A in two regions, one LB of account B."""
    merged = dict(DEFAULT_LIMITS)
    merged.update(limits or {})
    return {
        "seed": 42,
        "accounts": [
            {"secretId": ACCOUNT_A.secret_id, "secretKey": ACCOUNT_A.secret_key, "appId": ACCOUNT_A.app_id},
            {"secretId": ACCOUNT_B.secret_id, "secretKey": ACCOUNT_B.secret_key, "appId": ACCOUNT_B.app_id},
        ],
        "loadBalancers": [
            {"id": sdkutil.LB_A_OPEN, "secretId": ACCOUNT_A.secret_id, "region": sdkutil.REGION,
             "name": "alpha-open", "type": "OPEN", "vips": ["1.1.1.1"]},
            {"id": sdkutil.LB_A_INTERNAL, "secretId": ACCOUNT_A.secret_id, "region": sdkutil.REGION,
             "name": "alpha-internal", "type": "INTERNAL", "vips": ["10.0.0.100"]},
            {"id": sdkutil.LB_A_OPEN2, "secretId": ACCOUNT_A.secret_id, "region": sdkutil.REGION,
             "name": "beta-open", "type": "OPEN", "vips": ["1.1.1.3"]},
            {"id": sdkutil.LB_A_SH, "secretId": ACCOUNT_A.secret_id, "region": sdkutil.OTHER_REGION,
             "name": "sh-open", "type": "OPEN", "vips": ["2.2.2.2"]},
            {"id": sdkutil.LB_B_OPEN, "secretId": ACCOUNT_B.secret_id, "region": sdkutil.REGION,
             "name": "bravo-open", "type": "OPEN", "vips": ["3.3.3.3"]},
        ],
        "regions": [sdkutil.REGION, sdkutil.OTHER_REGION, "ap-beijing"],
        "limits": merged,
    }


def to_yaml(value, indent=0):
    """Block-style YAML for dicts, lists and scalars (strings are JSON-quoted, which YAML accepts)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append("%s%s:" % (pad, key))
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append("%s%s: %s" % (pad, key, scalar_yaml(item)))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2).splitlines()
                lines.append("%s- %s" % (pad, body[0].lstrip()))
                lines.extend(body[1:])
            else:
                lines.append("%s- %s" % (pad, scalar_yaml(item)))
    else:
        lines.append(pad + scalar_yaml(value))
    return "\n".join(lines)


def scalar_yaml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return json.dumps(str(value))


def redacted(config):
    """The config without secret keys, for failure messages."""
    copy = json.loads(json.dumps(config))
    for account in copy.get("accounts", []):
        account["secretKey"] = "<redacted>"
    return copy


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeClb:
    """A running fake-clb process and its control API."""

    def __init__(self, binary, config, workdir):
        self.binary = binary
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.proc = None
        self.api_port = None
        self.admin_port = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self):
        last_error = None
        for _attempt in range(3):  # a picked port may be taken by someone else before the server binds it
            try:
                self._start_once()
                return self
            except PortRace as err:
                last_error = err
        pytest.fail("fake-clb did not start: %s" % last_error)

    def _start_once(self):
        self.api_port, self.admin_port = free_port(), free_port()
        config = dict(self.config)
        config["listen"] = "127.0.0.1:%d" % self.api_port
        config["adminListen"] = "127.0.0.1:%d" % self.admin_port
        config_path = self.workdir / "fake-clb.yaml"
        config_path.write_text(to_yaml(config) + "\n")
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(config_path),
                 "--listen", config["listen"], "--admin-listen", config["adminListen"],
                 "--log-level", "warn"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=str(self.workdir))
        end = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            code = self.proc.poll()
            if code is not None:
                stderr = self.stderr_text()
                if "in use" in stderr.lower():
                    raise PortRace(stderr)
                pytest.fail("fake-clb exited with %s during startup.\nconfig (keys redacted):\n%s\nstderr:\n%s\n"
                            "stdout:\n%s" % (code, to_yaml(redacted(config)), stderr, self.stdout_text()))
            if self._healthy():
                return
            if time.monotonic() > end:
                self.stop()
                pytest.fail("fake-clb not healthy within %.0fs.\nstderr:\n%s" % (STARTUP_DEADLINE_S,
                                                                                 self.stderr_text()))
            time.sleep(0.02)

    def _healthy(self):
        try:
            status, body = self.admin("GET", "/_fake/health", check=False, timeout=1)
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    # -- control API -----------------------------------------------------------------------------------------

    def admin(self, method, path, body=None, check=True, timeout=10):
        """Call the control API; return (HTTP status, parsed JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _NO_PROXY_OPENER.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        if check and not 200 <= status < 300:
            pytest.fail("control API %s %s -> HTTP %s: %s" % (method, path, status, text))
        return status, parsed

    def reset(self):
        self.admin("POST", "/_fake/reset")
        self.patch_limits(DEFAULT_LIMITS)

    def patch_limits(self, limits):
        return self.admin("PATCH", "/_fake/limits", limits)[1]

    def set_faults(self, rules):
        return self.admin("PUT", "/_fake/faults", rules)[1]

    def faults(self):
        return self.admin("GET", "/_fake/faults")[1]

    def clear_faults(self):
        self.admin("DELETE", "/_fake/faults")

    def client(self, **kwargs):
        return sdkutil.new_client(self.api_port, **kwargs)


class PortRace(Exception):
    pass


def fake_clb_binary():
    path = pathlib.Path(os.environ.get("FAKE_CLB_BIN", REPO_ROOT / "target" / "debug" / "fake-clb"))
    if not path.exists():
        pytest.fail("fake-clb binary not found at %s: run `cargo build -p fake-clb` or set FAKE_CLB_BIN" % path)
    return path


@pytest.fixture(scope="session")
def shared_server():
    """One fake-clb for the whole session; tests get it through `fake`, which resets it first."""
    with tempfile.TemporaryDirectory(prefix="fake-clb-sdk-") as workdir:
        server = FakeClb(fake_clb_binary(), base_config(), workdir).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def fake(shared_server):
    """The shared server, reset to its configured state (LBs, limits; no tasks, faults or rate buckets)."""
    if shared_server.proc.poll() is not None:
        pytest.fail("shared fake-clb died (exit %s).\nstderr:\n%s" % (shared_server.proc.returncode,
                                                                       shared_server.stderr_text()))
    shared_server.reset()
    return shared_server


@pytest.fixture
def start_fake(tmp_path):
    """Start a private fake-clb with extra limits: `start_fake(limits={...})`. Stopped at teardown."""
    servers = []

    def start(limits=None):
        workdir = tmp_path / ("server-%d" % len(servers))
        workdir.mkdir()
        server = FakeClb(fake_clb_binary(), base_config(limits), workdir).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clb(fake):
    """Account A's SDK client (POST, TC3) in ap-guangzhou."""
    return fake.client()


@pytest.fixture
def clb_b(fake):
    """Account B's SDK client (POST, TC3) in ap-guangzhou."""
    return fake.client(account=ACCOUNT_B)
