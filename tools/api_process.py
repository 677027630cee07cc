"""The API in a subprocess on a free local port, for the demo and the benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class ApiStartError(RuntimeError):
    """The server exited or never answered /health."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiProcess:
    process: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate, then kill if it does not exit within `timeout` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Seconds uvicorn keeps an idle connection open: longer than a load balancer's idle timeout
# (60 s on common ones) and than any client's, so the client, not the server, closes an idle
# connection. At uvicorn's default of 5 s (httpx's default too) the server sometimes closes one
# just as a client sends on it, and that request fails with a dropped connection. The
# Makefile's KEEP_ALIVE_S and the README's production command use the same value (a test
# checks).
KEEP_ALIVE_S = 75


def start_api(target: str = "api.main:app", *, env: dict[str, str], port: int | None = None,
              timeout: float = 60.0, workers: int = 1, log: Path | None = None) -> ApiProcess:
    """`uvicorn <target>` on 127.0.0.1 (`--workers N` when N > 1), returned once GET
    /health answers 200; its output goes to `log` if given (appended), else to ours."""
    port = port or free_port()
    output = open(log, "ab") if log is not None else None  # noqa: SIM115 (closed below)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port",
             str(port), "--log-level", "warning", "--no-access-log",
             "--timeout-keep-alive", str(KEEP_ALIVE_S)]
            + (["--workers", str(workers)] if workers > 1 else []), cwd=ROOT, env=env,
            stdout=output, stderr=subprocess.STDOUT if output else None)
    finally:
        if output is not None:
            output.close()  # the child has its own copy
    server = ApiProcess(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ApiStartError(f"{target} exited with code {process.returncode} while starting")
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise ApiStartError(f"{target} did not answer {server.url}/health within {timeout:.0f} s")
