"""The demo sites as plain files, served by web servers jianfu did not write.

``write_site`` lays a demo site out as files (its HTML, its ad banners drawn once, the generated
500-page site); ``StaticSites`` serves them on 127.0.0.1, one free port per site, with

- ``"nginx"``: Debian's nginx, unprivileged (as ``nobody`` when started by root), with a config
  written here: ETag and Last-Modified on every file, gzip for text (which makes the ETag weak),
  conditional requests answered 304 — how most institutions' sites are served;
- ``"nginx-novalidators"``: the same, with server-side includes on HTML, which drops both
  validators from pages (every re-scan fetches them in full);
- ``"python"``: ``python3 -m http.server`` (Last-Modified only, no gzip, HTTP/1.0).

Redirect routes of the demo server have no file and answer 404 here. Tests and
``bench/bench_rescan.py`` change, delete or rewrite the files under ``root`` between scans.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from demo_site.banners import tiny_gif
from demo_site.server import (
    BANNERS,
    GBK_PAGES,
    GENERATED_PAGES,
    QR_ADS,
    SITES_DIR,
    banner_bytes,
    generated_ad,
    generated_page,
    qr_ad_bytes,
)

NGINX = "/usr/sbin/nginx"
# the system's Python: a virtualenv under /root cannot be run by ``nobody``
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
SERVERS = ("nginx", "nginx-novalidators", "python")

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  types {{
    text/html html; text/css css; text/plain txt; application/javascript js; application/json json;
    image/png png; image/jpeg jpg; image/webp webp; image/gif gif; image/svg+xml svg;
  }}
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 10000;
  etag on;
  gzip on;
  gzip_min_length 0;
  gzip_vary on;
  gzip_types text/css text/plain application/javascript application/json;
{servers}
}}
"""
NGINX_SERVER = """  server {{
    listen 127.0.0.1:{port};
    root {root};
    index index.html;{extra}
  }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_site(name: str, dest: Path, base_url: str = "", generated_ads: int = 10) -> Path:
    """Write demo site ``name`` as files under ``dest`` (created); returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if name == "generated":
        (dest / "p").mkdir(exist_ok=True)
        (dest / "img").mkdir(exist_ok=True)
        (dest / "robots.txt").write_bytes(b"User-agent: *\nAllow: /\n")
        (dest / "index.html").write_bytes(generated_page(0, generated_ads))
        for page in range(GENERATED_PAGES):
            (dest / "p" / f"{page}.html").write_bytes(generated_page(page, generated_ads))
        for k in range(generated_ads):
            (dest / "img" / f"ad-{k}.png").write_bytes(generated_ad(k))
        return dest
    shutil.copytree(SITES_DIR / name, dest, dirs_exist_ok=True)
    for site, path in GBK_PAGES:
        if site == name:
            file = dest / path.lstrip("/")
            file.write_bytes(file.read_text("utf-8").encode("gbk"))
    files = {path: banner_bytes(site, path) for site, path in BANNERS if site == name}
    files |= {path: qr_ad_bytes(site, path, base_url.rstrip("/")) for site, path in QR_ADS if site == name}
    files["/img/placeholder.gif"] = tiny_gif()
    for path, data in files.items():
        file = dest / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
    return dest


class StaticSites:
    """``with StaticSites(["qiming"], server="nginx") as s:`` — ``s.urls[name]``, ``s.root / name``."""

    def __init__(self, sites: list[str], server: str = "nginx", generated_ads: int = 10,
                 layout: Callable[[str, Path], object] | None = None) -> None:
        """``layout(name, dest)`` writes site ``name``'s files under ``dest`` instead of the demo
        site of that name (``write_site``)."""
        if server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}, not {server!r}")
        self.names, self.server, self.generated_ads, self.layout = sites, server, generated_ads, layout
        self.dir = Path(tempfile.mkdtemp(prefix=f"jianfu-{server}-"))
        self.root = self.dir / "sites"
        self.urls: dict[str, str] = {}
        self.procs: list[subprocess.Popen] = []
        self.user = "nobody" if os.geteuid() == 0 else None  # never run a web server as root

    # -- start / stop ----------------------------------------------------------------------
    def start(self) -> StaticSites:
        for attempt in range(5):  # a port picked free may be taken before nginx binds it: pick again
            ports = {name: free_port() for name in self.names}
            self.urls = {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}
            for name in self.names:
                if self.layout is not None:
                    self.layout(name, self.root / name)
                else:
                    write_site(name, self.root / name, self.urls[name], self.generated_ads)
            self._chown()
            try:
                if self.server.startswith("nginx"):
                    self._start_nginx(ports)
                else:
                    for name, port in ports.items():
                        self._start_python(self.root / name, port)
                for url in self.urls.values():
                    self._wait(url)
                return self
            except RuntimeError:
                self._stop_procs()
                if attempt == 4:
                    raise
        return self

    def _chown(self) -> None:
        if self.user is None:
            return
        pw = pwd.getpwnam(self.user)
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _popen(self, cmd: list[str]) -> subprocess.Popen:
        kwargs = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid} if self.user else {}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir, **kwargs)
        self.procs.append(proc)
        return proc

    def _start_nginx(self, ports: dict[str, int]) -> None:
        if not os.access(NGINX, os.X_OK):
            raise FileNotFoundError(f"{NGINX} is missing: apt-get install nginx (scripts/debian-packages.txt)")
        extra = "\n    ssi on;" if self.server == "nginx-novalidators" else ""
        servers = "".join(NGINX_SERVER.format(port=port, root=self.root / name, extra=extra)
                          for name, port in ports.items())
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.dir, servers=servers))
        self._chown()
        self._popen([NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")])

    def _start_python(self, root: Path, port: int) -> None:
        self._popen([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
                     str(port)])

    def _wait(self, url: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                err = b"".join(p.stderr.read() or b"" for p in self.procs if p.poll() is not None and p.stderr)
                log = self.dir / "error.log"
                raise RuntimeError(f"{self.server} exited: {err.decode(errors='replace')[-500:]}"
                                   f"{log.read_text()[-500:] if log.exists() else ''}")
            try:
                with urllib.request.urlopen(url + "robots.txt", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.server} did not answer on {url} within {timeout:g} s")

    def _stop_procs(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
        self.procs.clear()

    def stop(self) -> None:
        self._stop_procs()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> StaticSites:
        try:
            return self.start()
        except BaseException:
            self.stop()  # nothing left running or on disk when the server cannot start
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- changing the site between scans ---------------------------------------------------
    def write(self, site: str, path: str, data: str | bytes) -> Path:
        """Replace (or add) a file of ``site``, with a modification time later than before."""
        file = self.root / site / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        before = file.stat().st_mtime if file.exists() else 0.0
        file.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        later = max(time.time(), before + 2)  # Last-Modified has one-second resolution
        os.utime(file, (later, later))
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(file, pw.pw_uid, pw.pw_gid)
        return file

    def delete(self, site: str, path: str) -> None:
        (self.root / site / path.lstrip("/")).unlink()


def served_headers(url: str) -> dict[str, str]:
    """The response headers of a plain GET of ``url`` asking for gzip (for tests to show what a
    server sends)."""
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}

