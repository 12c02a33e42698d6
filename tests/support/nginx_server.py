"""Debian's nginx as a plain foreground process on a free 127.0.0.1 port, with a shipped site file.

The site file (docs/nginx/relay-edges.conf) is used as shipped: only its edge addresses and its
listen address are substituted, each of which must be found exactly once. A small main
`nginx.conf` around it keeps the pid, logs and temporary files in a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE_CONF = Path(__file__).resolve().parents[2] / "docs" / "nginx" / "relay-edges.conf"
SAMPLE_EDGES = ("127.0.0.1:8081", "127.0.0.1:8082")
SAMPLE_LISTEN = "listen 80;"

_MAIN_CONF = """\
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/relay-edges.conf;
}}
"""


def nginx_installed() -> bool:
    return os.access(NGINX, os.X_OK)


def render_site(text: str, edges: list[str], port: int) -> str:
    """The sample site file for these edges (host:port) and port; the sample must name two edges."""
    replacements = [(f"server {sample} ", f"server {edge} ") for sample, edge in zip(SAMPLE_EDGES, edges, strict=True)]
    replacements.append((SAMPLE_LISTEN, f"listen 127.0.0.1:{port};"))
    for old, new in replacements:
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"{SITE_CONF.name}: expected {old!r} once, found it {count} times")
        text = text.replace(old, new)
    return text


class NginxServer:
    """`nginx -p DIR -c DIR/nginx.conf -g 'daemon off; pid ...;'` serving the site file rendered for `edges`."""

    def __init__(self, edges: list[str], port: int) -> None:
        # Its own directory, readable by all: run as root, nginx's workers are `nobody` and
        # must reach their temporary directories (pytest's directories are private).
        self.dir = Path(tempfile.mkdtemp(prefix="relay-nginx-"))
        self.dir.chmod(0o755)
        self.port = port
        (self.dir / "relay-edges.conf").write_text(render_site(SITE_CONF.read_text(), edges, port))
        (self.dir / "nginx.conf").write_text(_MAIN_CONF.format(dir=self.dir))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> NginxServer:
        command = [NGINX, "-e", str(self.dir / "error.log"), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                   "-g", f"daemon off; pid {self.dir}/nginx.pid;"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}: {self.proc.stderr.read()}{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}: {self.error_log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast: a graceful stop would wait for every open websocket
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
