"""--live: every probe path and port of compose, the chart and the Dockerfile, and the
`healthcheck` subcommand, against the stack `make run` (scripts/dev-stack.sh) runs; and
Grafana's log → trace link (the Loki datasource's derived field) against the log lines that
stack wrote."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

from .common import BIN_DIR, BINARIES, COMPOSE_FILE, DOCKERFILE, ROOT, clean_env, sh, yaml
from .compose import compose_cmd
from .dockerfile import Dockerfile
from .helm import helm_env, helm_render
from .report import Report
from .routes import Routes
from .settings import Settings


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def grpc_health_check(port: int, service: str = "", timeout: float = 3.0) -> str:
    """grpc.health.v1.Health/Check over HTTP/2 (prior knowledge), as kubelet's gRPC probe does.
    Returns the serving status name (SERVING, NOT_SERVING, ...) or raises."""
    def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload

    def literal(name_index: int, value: str) -> bytes:  # literal without indexing, indexed name
        v = value.encode()
        return bytes([name_index]) + bytes([len(v)]) + v

    def literal_new(name: str, value: str) -> bytes:
        n, v = name.encode(), value.encode()
        return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v

    headers = (b"\x83"  # :method POST
               + b"\x86"  # :scheme http
               + literal(4, "/grpc.health.v1.Health/Check")
               + literal(1, f"127.0.0.1:{port}")
               + literal_new("content-type", "application/grpc")
               + literal_new("te", "trailers"))
    request = service.encode()
    body = (b"\x0a" + bytes([len(request)]) + request) if request else b""
    message = b"\x00" + struct.pack(">I", len(body)) + body
    statuses = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
                     + frame(1, 0x4, 1, headers) + frame(0, 0x1, 1, message))
        buf, data = b"", b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + length], buf[9 + length:]
                if ftype == 4 and not flags & 0x1:
                    sock.sendall(frame(4, 0x1, 0, b""))  # SETTINGS ACK
                elif ftype == 6 and not flags & 0x1:
                    sock.sendall(frame(6, 0x1, 0, payload))  # PING ACK
                elif ftype == 0 and stream == 1:
                    data += payload
                elif ftype == 3 and stream == 1:
                    raise RuntimeError(f"stream reset (code {int.from_bytes(payload[:4], 'big')})")
                elif ftype == 7:
                    raise RuntimeError("connection closed by the server (GOAWAY)")
                if stream == 1 and flags & 0x1 and ftype in (0, 1):
                    if len(data) < 5:
                        raise RuntimeError("no health response message (gRPC error status in trailers)")
                    msg = data[5:5 + int.from_bytes(data[1:5], "big")]
                    status = msg[1] if msg[:1] == b"\x08" else 0
                    return statuses.get(status, str(status))
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            buf += chunk
    raise TimeoutError("no answer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    def __init__(self, report: Report) -> None:
        self.r = report
        self.settings = Settings()
        self.routes = Routes()

    def preconditions(self) -> bool:
        binary = BIN_DIR / "gateway"
        if not self.r.check("live: target/debug binaries are built", binary.exists(), "run `make run` (or cargo build --bins) first"):
            return False
        try:
            status, _ = http_get(self.settings.port("gateway", "admin_port"), "/health/readiness")
        except OSError as e:
            status = str(e)
        return self.r.check("live: a stack answers on the default ports (scripts/dev-stack.sh)", status == 200,
                            f"gateway admin readiness: {status}; start `make run` first")

    def probes(self) -> list[tuple[str, str, int, str]]:
        """(source, binary, port, path or 'grpc') of every probe in compose, chart and Dockerfile."""
        out = []
        s = self.settings
        cmd = compose_cmd()
        if cmd:
            res = sh(cmd + ["-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), "config"], env=clean_env())
            services = yaml.safe_load(res.stdout)["services"]
            for b in BINARIES:
                env = {k: str(v) for k, v in (services[b].get("environment") or {}).items()}
                # The compose healthcheck is `<binary> healthcheck`: readiness on the admin port.
                out.append(("compose healthcheck", b, s.port(b, "admin_port", env), self.routes.healthcheck_path))
            prom = ROOT / "monitoring/prometheus/prometheus.yml"
            if prom.exists():
                for job in (yaml.safe_load(prom.read_text()) or {}).get("scrape_configs") or []:
                    for sc in job.get("static_configs") or []:
                        for t in sc.get("targets") or []:
                            host, _, port = t.rpartition(":")
                            if host in BINARIES:
                                out.append(("prometheus scrape", host, int(port), job.get("metrics_path", "/metrics")))
        df = Dockerfile(DOCKERFILE)
        for b in BINARIES:
            if b in df.stages and df.last(b, "HEALTHCHECK"):
                out.append(("Dockerfile HEALTHCHECK", b, s.port(b, "admin_port"), self.routes.healthcheck_path))
        try:
            helm_env()
            for scenario, values in (("chart", {}), ("chart grpcStartupProbe=false", {"probes": {"grpcStartupProbe": False}}),
                                     ("chart ServiceMonitor", {"metrics": {"serviceMonitor": {"enabled": True}}})):
                objects, _ = helm_render(values)
                for d in (o for o in objects if o["kind"] == "Deployment"):
                    b = d["metadata"]["labels"]["app.kubernetes.io/component"]
                    c = d["spec"]["template"]["spec"]["containers"][0]
                    ports = {pt["name"]: int(pt["containerPort"]) for pt in c["ports"]}
                    for field in ("startupProbe", "livenessProbe", "readinessProbe"):
                        probe = c.get(field) or {}
                        if "httpGet" in probe:
                            port = probe["httpGet"]["port"]
                            out.append((f"{scenario} {field}", b, ports.get(port, port), probe["httpGet"]["path"]))
                        elif "grpc" in probe:
                            out.append((f"{scenario} {field}", b, int(probe["grpc"]["port"]), "grpc"))
                for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
                    for ep in sm["spec"]["endpoints"]:
                        for d in (o for o in objects if o["kind"] == "Deployment"):
                            b = d["metadata"]["labels"]["app.kubernetes.io/component"]
                            ports = {pt["name"]: int(pt["containerPort"]) for pt in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
                            out.append((f"{scenario} endpoint", b, ports[ep["port"]], ep["path"]))
        except Exception as e:  # noqa: BLE001
            self.r.check("live: render the chart's probes", False, f"{type(e).__name__}: {e}")
        return sorted(set(out))

    def run(self) -> None:
        if yaml is None:
            self.r.check("python: PyYAML importable", False, "run scripts/install-deploy-deps.sh")
            return
        if not self.preconditions():
            return
        grouped: dict[tuple[str, int, str], list[str]] = {}
        for source, binary, port, path in self.probes():
            grouped.setdefault((binary, port, path), []).append(source)
        for (binary, port, path), sources in sorted(grouped.items()):
            what = "gRPC grpc.health.v1.Health/Check" if path == "grpc" else f"GET {path}"
            name = f"live: {binary} {what} on :{port} ({', '.join(sorted(sources))})"
            try:
                if path == "grpc":
                    status = grpc_health_check(port)
                    self.r.check(name, status == "SERVING", f"answered {status}")
                else:
                    code, body = http_get(port, path)
                    ok = code == 200 and (path != "/metrics" or f'socialflow_build_info{{service="{binary}"' in body)
                    self.r.check(name, ok, f"answered {code}: {body[:200]}")
            except Exception as e:  # noqa: BLE001
                self.r.check(name, False, f"{type(e).__name__}: {e}")
        # The servers tell routes apart (a probe answering 200 means something).
        code, _ = http_get(self.settings.port("user-service", "admin_port"), "/health/no-such-route")
        self.r.check("live: an unknown path answers 404 (probes are checked against real routes)", code == 404, f"answered {code}")
        self.healthcheck_subcommand()
        self.log_lines()

    def log_lines(self) -> None:
        """The Loki datasource's derived field (monitoring/grafana/provisioning/datasources/)
        against the real lines of .run/logs/<process>.log: it must find the trace_id of every
        line that has one, and nothing in a line that has none. The labels Alloy takes from a
        line (monitoring/alloy/config.alloy) must hold what the dashboards select on:
        `service` the process name, `level` lowercase, `environment` set."""
        log_dir = ROOT / ".run" / "logs"
        doc = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/datasources/datasources.yml").read_text()) or {}
        fields = [f for ds in doc.get("datasources") or [] if ds.get("type") == "loki"
                  for f in (ds.get("jsonData") or {}).get("derivedFields") or []]
        name = "live: the Loki datasource's derived-field regex finds the trace_id of every real log line (.run/logs)"
        if not fields:
            self.r.check(name, False, "no derived field in datasources.yml")
            return
        regex = re.compile(fields[0]["matcherRegex"])
        problems, traced, levels = [], 0, set()
        for binary in BINARIES:
            path = log_dir / f"{binary}.log"
            if not path.exists():
                problems.append(f"{path.relative_to(ROOT)} missing (the stack of scripts/dev-stack.sh writes it)")
                continue
            for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # a panic message or a tool's output: not ours to link
                m = regex.search(raw)
                want = line.get("trace_id")
                if want:
                    traced += 1
                    if not m or m.group(1) != want:
                        problems.append(f"{binary}.log:{n}: the regex finds {m.group(1) if m else None!r}, "
                                        f"the line's trace_id is {want!r}")
                elif m:
                    problems.append(f"{binary}.log:{n}: no trace_id, yet the regex finds {m.group(1)!r}")
                if line.get("service") != binary:
                    problems.append(f"{binary}.log:{n}: service is {line.get('service')!r}, Alloy labels it {binary!r}")
                levels.add(str(line.get("level")))
                if not line.get("environment"):
                    problems.append(f"{binary}.log:{n}: no environment field")
        if not traced:
            problems.append("no line with a trace_id: send traffic through the gateway first")
        bad_levels = sorted(lv for lv in levels if lv not in ("trace", "debug", "info", "warn", "error"))
        if bad_levels:
            problems.append(f"levels {bad_levels}: the dashboards select level=\"error\" (lowercase)")
        self.r.check(name + f" ({traced} lines with a trace_id), and their service and level are the labels "
                     "the dashboards select on", not problems, "; ".join(problems[:8]))

    def healthcheck_subcommand(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALFLOW__SERVER__")}
        # Default settings hold the development keys, which the binaries refuse without this.
        env["SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY"] = "true"
        for binary in BINARIES:
            exe = BIN_DIR / binary
            try:
                up = subprocess.run([str(exe), "healthcheck"], env=env, capture_output=True, text=True, timeout=15)
                self.r.check(f"live: `{binary} healthcheck` against the running {binary} exits 0", up.returncode == 0,
                             f"exit {up.returncode}: {(up.stdout + up.stderr).strip()[:300]}")
            except subprocess.TimeoutExpired:
                self.r.check(f"live: `{binary} healthcheck` against the running {binary} exits 0", False,
                             "did not exit within 15 s: does this build have the healthcheck subcommand?")
            # Nothing listens on these ports: not ready. Both ports are free, so a binary
            # without the subcommand would start a server instead and time out here.
            down_env = dict(env, SOCIALFLOW__SERVER__ADMIN_PORT=str(free_port()), SOCIALFLOW__SERVER__PORT=str(free_port()))
            name = f"live: `{binary} healthcheck` against a port where nothing runs exits 1"
            proc = subprocess.Popen([str(exe), "healthcheck"], env=down_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                out, _ = proc.communicate(timeout=15)
                self.r.check(name, proc.returncode == 1, f"exit {proc.returncode}: {out.strip()[:300]}")
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                self.r.check(name, False, "did not exit within 15 s: does this build have the healthcheck subcommand?")
