#!/usr/bin/env python3
"""`make bench`: the performance suite of Social Flow, on release builds.

Builds the release binaries (`cargo build --release --bins`), then starts the five processes
on free ports with their own database, Redis key prefix and s3s-fs store (restarting them
between configurations), and measures:

 1. `/health` of the gateway (all its middleware, one worker) against `bare-actix`, each
    pinned to CPU 0 with wrk pinned to CPU 1; best of two runs each: gateway >= 0.6 x bare.
 2. The read path `GET /api/v1/videos/{id}` (`loadgen read` over seeded videos): closed
    loop max req/s (>= 7500, no errors), then an open loop at half that rate (p99 <= 10 ms)
    over the same 64 connections (as wrk2: latency from each request's due time). Most reads
    are answers the gateway keeps (cache.video_ttl_ms); the same closed loop with the cache
    off shows what every hop costs (no target).
 3. CPU per request of every hop (the five processes, Postgres, Redis, loadgen itself)
    during the closed-loop read run.
 4. Writes (`write`) and `mixed`, closed loop: req/s, p99, errors.
 5. Tracing cost: the closed-loop read rate with spans exported to `otlp-sink` at 100%
    (always_on, <= 10% loss) and 10% (traceidratio 0.1, <= 3% loss) against export off on
    a fresh stack measured just before them, with the CPU per read of every hop and the sink.
 6. Overload at twice the max read rate, open loop (a task per request): only 503 (or 429)
    beyond 200s, with Retry-After, and the admitted requests' p99 < 500 ms (timed by a probe
    on the side; loadgen's own p99 mixes in the 503s and its lateness on shared cores).
 7. Breaker fail-fast: with 300 ms of injected latency on engagement-service's GetTrending
    and a 200 ms gateway deadline, once the breaker opens, `GET /api/v1/videos/trending`
    answers 503 with p99 < 5 ms.
 8. Peak RSS of every process after the load runs, and one streamed upload of
    BENCH_UPLOAD_BYTES (default 1 GiB): the gateway's and video-service's RSS grow < 64 MiB.

Prints one table (value, target, verdict, change against the previous run of the same kind
in target/bench/), writes everything to target/bench/<UTC timestamp>.json, and exits 0 even
when targets are missed (the table says MISS); non-zero only when the suite itself failed
(a process died, a run had no answers, a tool is missing).

Needs: psql, s3s-fs, taskset (util-linux), wrk (installed with apt-get when missing and run
as root), Postgres and Redis on localhost. Takes 5-8 minutes on 2 cores.

Environment:
  BENCH_QUICK=1         3 s runs and a 64 MiB upload: a quick try of the suite itself
  BENCH_UPLOAD_BYTES=N  size of the streamed upload
  BENCH_NO_BUILD=1      use the release binaries already built (skip cargo)
  SOCIALFLOW_TEST_PG    Postgres admin URL (default postgres://postgres@127.0.0.1:5432/postgres)

Usage: python3 scripts/bench.py   (or `make bench`)
"""

import datetime
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELEASE = TARGET_DIR / "release"
RESULTS = TARGET_DIR / "bench"
PG = os.environ.get("SOCIALFLOW_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SOCIALFLOW__REDIS__URL", "redis://127.0.0.1:6379")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
SIZE = int(os.environ.get("BENCH_UPLOAD_BYTES", str(64 * 1024 ** 2 if QUICK else 1024 ** 3)))

RUN_SECS = 3 if QUICK else 10          # every measured run
WARMUP_SECS = 1 if QUICK else 2
WRK_SECS = 3 if QUICK else 10
CONCURRENCY = 64                       # closed loops (and wrk connections)
SEED_USERS, SEED_VIDEOS_PER_USER, SEED_FOLLOWS = (10, 5, 3) if QUICK else (20, 10, 5)
BREAKER_CALLS = 200

PROCESSES = ["user-service", "video-service", "engagement-service", "payments-service", "gateway"]
# Fixed ports of the dev stack and CI: never ours, even when the kernel offers one.
RESERVED_PORTS = {8000, 9900, *range(9000, 9005), *range(50051, 50055)}
UPLOAD_LIMIT_MIB = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")
UNLIMITED = "100000000"


class SuiteError(Exception):
    """The suite could not measure (a process died, a run had no answers): exit non-zero."""


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


# --- ports, HTTP, /proc ---------------------------------------------------------------------

_ports_given: set[int] = set()


def free_port() -> int:
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS and port not in _ports_given:
            _ports_given.add(port)
            return port
    raise SuiteError("no free port")


def wait_port(port: int, proc: subprocess.Popen, name: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SuiteError(f"{name} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SuiteError(f"{name} never listened on {port}")


def request(port: int, method: str, path: str, body=None, headers=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        payload = response.read()
        return response.status, payload
    finally:
        conn.close()


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0, needs to own the process or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a whole process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def pids_named(comm: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, access log lines left out."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept = [line for line in text if '"request completed"' not in line]
    return "\n".join(line[:400] for line in (kept or text)[-lines:])


# --- the processes --------------------------------------------------------------------------

class Suite:
    """What lives for the whole run: temp dir, database, Redis prefix, s3s-fs, children."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="sf-bench-"))
        self.database = f"sf_bench_{uuid.uuid4().hex[:12]}"
        self.database_url = PG.rsplit("/", 1)[0] + f"/{self.database}"
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.children: list[subprocess.Popen] = []
        self.database_created = False
        self.s3_port = 0

    def spawn(self, args: list[str], log_name: str | None = None, **kwargs) -> subprocess.Popen:
        out = (self.work / log_name).open("w") if log_name else subprocess.DEVNULL
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, **kwargs)
        self.children.append(child)
        return child

    def setup(self) -> None:
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {self.database}"], check=True,
                       stdout=subprocess.DEVNULL)
        self.database_created = True
        (self.work / "s3").mkdir()
        self.s3_port = free_port()
        s3 = self.spawn(["s3s-fs", "--host", "127.0.0.1", "--port", str(self.s3_port),
                         "--access-key", "bench", "--secret-key", "bench-secret",
                         str(self.work / "s3")], "s3s-fs.log")
        wait_port(self.s3_port, s3, "s3s-fs")

    def stop(self, child: subprocess.Popen, timeout: float = 30) -> None:
        if child.poll() is None:
            try:
                child.terminate()
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child in self.children:
            self.children.remove(child)

    def cleanup(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        for child in list(self.children):
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        if self.database_created:
            subprocess.run(["psql", PG, "-qc",
                            f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                           check=False, stdout=subprocess.DEVNULL)
        if shutil.which("redis-cli"):
            # The keys of this run only (rate limits, counters, caches).
            keys = subprocess.run(["redis-cli", "-u", REDIS_URL, "--scan", "--pattern",
                                   f"{self.prefix}*"], capture_output=True, text=True,
                                  check=False).stdout.split()
            for i in range(0, len(keys), 500):
                subprocess.run(["redis-cli", "-u", REDIS_URL, "UNLINK", *keys[i:i + 500]],
                               stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


class Stack:
    """The five release processes, started with `env` for all and `per_process` env each."""

    def __init__(self, suite: Suite, label: str, env: dict | None = None,
                 per_process: dict | None = None) -> None:
        self.suite = suite
        self.label = label
        self.ports = {name: (free_port(), free_port()) for name in PROCESSES}
        self.procs: dict[str, subprocess.Popen] = {}
        ports = self.ports
        base = {
            "PATH": os.environ.get("PATH", ""),
            "SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY": "true",
            "SOCIALFLOW__DATABASE__URL": suite.database_url,
            "SOCIALFLOW__REDIS__URL": REDIS_URL,
            "SOCIALFLOW__REDIS__KEY_PREFIX": suite.prefix,
            "SOCIALFLOW__S3__ENDPOINT": f"http://127.0.0.1:{suite.s3_port}",
            "SOCIALFLOW__S3__ACCESS_KEY": "bench",
            "SOCIALFLOW__S3__SECRET_KEY": "bench-secret",
            "SOCIALFLOW__S3__BUCKET": "sf-bench",
            # Every peer address, so that nothing falls back to the fixed default ports.
            "SOCIALFLOW__SERVICES__USER": f"http://127.0.0.1:{ports['user-service'][0]}",
            "SOCIALFLOW__SERVICES__VIDEO": f"http://127.0.0.1:{ports['video-service'][0]}",
            "SOCIALFLOW__SERVICES__ENGAGEMENT":
                f"http://127.0.0.1:{ports['engagement-service'][0]}",
            "SOCIALFLOW__SERVICES__PAYMENTS": f"http://127.0.0.1:{ports['payments-service'][0]}",
            "SOCIALFLOW__USERS__URL": f"http://127.0.0.1:{ports['user-service'][0]}",
            "SOCIALFLOW__VIDEOS__URL": f"http://127.0.0.1:{ports['video-service'][0]}",
            "SOCIALFLOW__ENGAGEMENT__URL": f"http://127.0.0.1:{ports['engagement-service'][0]}",
        }
        # One load generator is one client address: no rate limit may be what is measured.
        for limit in ("LOGIN", "REGISTER", "ANONYMOUS", "AUTHENTICATED"):
            for key in ("PER_MINUTE", "BURST"):
                base[f"SOCIALFLOW__RATE_LIMIT__{limit}__{key}"] = UNLIMITED
        self.env = {**base, **(env or {})}
        self.per_process = per_process or {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway'][0]}"

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def start(self) -> "Stack":
        log(f"starting the stack ({self.label})")
        for name in PROCESSES:
            api, admin = self.ports[name]
            env = {**self.env, **self.per_process.get(name, {}),
                   "SOCIALFLOW__SERVER__PORT": str(api),
                   "SOCIALFLOW__SERVER__ADMIN_PORT": str(admin)}
            self.procs[name] = self.suite.spawn([str(RELEASE / name)],
                                                f"{self.label}-{name}.log", env=env)
        for name in PROCESSES:
            self.wait_ready(name)
        return self

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = request(self.ports[name][1], "GET", "/health/readiness", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SuiteError(f"{name} never became ready ({self.label}):\n"
                         + tail(self.suite.work / f"{self.label}-{name}.log"))

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                       else f"exit {proc.returncode}")
                raise SuiteError(f"{name} died ({self.label}, {how}):\n"
                                 + tail(self.suite.work / f"{self.label}-{name}.log"))

    def stop(self) -> None:
        self.check_alive()
        for name in reversed(PROCESSES):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            self.suite.stop(proc)


# --- load -----------------------------------------------------------------------------------

def hop_snapshot(stack: Stack, extra: dict[str, int]) -> dict[str, dict[int, int]]:
    """CPU ticks per pid of each hop."""
    groups = {name: [stack.pid(name)] for name in PROCESSES}
    groups["postgres"] = pids_named("postgres")
    groups["redis"] = pids_named("redis-server")
    for name, pid in extra.items():
        groups[name] = [pid]
    snapshot = {}
    for name, pids in groups.items():
        ticks = {pid: cpu_ticks(pid) for pid in pids}
        snapshot[name] = {pid: t for pid, t in ticks.items() if t is not None}
    return snapshot


def hop_delta(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per hop between two snapshots (processes that started in between count
    from zero; ones that ended are lost)."""
    return {name: sum(t - before.get(name, {}).get(pid, 0) for pid, t in pids.items())
            / CLK_TCK for name, pids in after.items()}


class Loadgen:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.seed_file = suite.work / "seed.json"
        self.count = 0

    def seed(self, stack: Stack) -> dict:
        log(f"seeding {SEED_USERS} users, {SEED_USERS * SEED_VIDEOS_PER_USER} videos")
        done = subprocess.run(
            [str(RELEASE / "loadgen"), "seed", "--url", stack.url,
             "--database-url", self.suite.database_url, "--users", str(SEED_USERS),
             "--videos-per-user", str(SEED_VIDEOS_PER_USER), "--follows", str(SEED_FOLLOWS),
             "--out", str(self.seed_file)],
            capture_output=True, text=True, timeout=600, start_new_session=True)
        if done.returncode != 0:
            raise SuiteError(f"loadgen seed failed ({done.returncode}): "
                             f"{done.stdout[-500:]}{done.stderr[-1500:]}")
        return json.loads(self.seed_file.read_text())

    def run(self, stack: Stack, scenario: str, *, rate: float | None = None,
            concurrency: int = CONCURRENCY, duration: float = RUN_SECS,
            warmup: float = WARMUP_SECS, hops: bool = False, during=None,
            connections: int | None = None, extra: dict[str, int] | None = None) -> dict:
        """One loadgen run; returns its JSON report, plus `hops` (CPU per hop over the
        measured window, `extra` processes too) when asked, and `loadgen_cpu_s` (its own
        CPU seconds)."""
        self.count += 1
        out = self.suite.work / f"loadgen-{self.count}-{scenario}.json"
        args = [str(RELEASE / "loadgen"), "run", "--url", stack.url, "--scenario", scenario,
                "--duration", f"{duration}s", "--warmup", f"{warmup}s",
                "--seed-file", str(self.seed_file), "--json", str(out)]
        args += ["--rate", f"{rate:.0f}"] if rate else ["--concurrency", str(concurrency)]
        if rate and connections:
            args += ["--connections", str(connections)]
        log_path = self.suite.work / f"loadgen-{self.count}-{scenario}.log"
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.suite.children.append(proc)
            probe = None
            try:
                if during:
                    probe = threading.Thread(target=during, args=(proc,), daemon=True)
                    probe.start()
                sample = {}
                if hops:
                    # The measured window: after the warm-up, to just before the end.
                    self._sleep_until(started + warmup + 0.2, proc)
                    sample["t0"] = time.monotonic()
                    sample["before"] = hop_snapshot(stack, {"loadgen": proc.pid, **(extra or {})})
                    sample["machine0"] = machine_ticks()
                    self._sleep_until(started + warmup + duration - 0.2, proc)
                    sample["t1"] = time.monotonic()
                    sample["after"] = hop_snapshot(stack, {"loadgen": proc.pid, **(extra or {})})
                    sample["machine1"] = machine_ticks()
                proc.wait(timeout=warmup + duration + 300)
                if probe:
                    probe.join(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                self.suite.children.remove(proc)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        stack.check_alive()
        if proc.returncode not in (0, 1) or not out.exists():
            raise SuiteError(f"loadgen {scenario} failed (exit {proc.returncode}):\n"
                             + tail(log_path))
        report = json.loads(out.read_text())
        answered = sum(n for status, n in report["by_status"].items() if status != "0")
        if report["requests"] == 0 or answered == 0:
            raise SuiteError(f"loadgen {scenario}: no answers ({report['by_status']})")
        report["loadgen_cpu_s"] = ((after_children.ru_utime + after_children.ru_stime)
                                   - (before_children.ru_utime + before_children.ru_stime))
        report["wall_s"] = time.monotonic() - started
        if hops and "after" in sample:
            window = sample["t1"] - sample["t0"]
            served = report["rps"] * window
            seconds = hop_delta(sample["before"], sample["after"])
            busy0, total0 = sample["machine0"]
            busy1, total1 = sample["machine1"]
            report["hops"] = {
                "window_s": window,
                "requests_in_window": served,
                "cpu_s": seconds,
                "us_per_request": {name: s * 1e6 / served if served else None
                                   for name, s in seconds.items()},
                "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0),
                # CPU the hops did not use: other work on the machine, which skews the run.
                "others_pct": 100 * max(0.0, (busy1 - busy0) / CLK_TCK - sum(seconds.values()))
                / max(1e-9, window * (os.cpu_count() or 1)),
                "absent": [name for name, pids in sample["after"].items() if not pids],
            }
        return report

    @staticmethod
    def _sleep_until(when: float, proc: subprocess.Popen) -> None:
        while time.monotonic() < when and proc.poll() is None:
            time.sleep(min(0.05, max(0.0, when - time.monotonic())))


def summary(report: dict) -> str:
    lat = report["latency_ms"]
    statuses = ", ".join(f"{'no answer' if s == '0' else s}: {n}"
                         for s, n in report["by_status"].items())
    cores = report["loadgen_cpu_s"] / max(report["wall_s"], 1e-9)
    return (f"{report['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
            f"errors {report['errors']} ({statuses}); loadgen used {cores:.2f} cores")


# --- wrk ------------------------------------------------------------------------------------

def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SuiteError("wrk is needed: apt-get install -y wrk (as root)")
    log("installing wrk (apt-get install -y wrk)")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=False,
                      **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=False, **quiet)
    found = shutil.which("wrk")
    if not found:
        raise SuiteError("installing wrk failed: apt-get install -y wrk")
    return found


def wrk(port: int) -> dict:
    """wrk on CPU 1 against /health on `port`: req/s, latency, errors."""
    done = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{CONCURRENCY}", f"-d{WRK_SECS}s", "--latency",
         f"http://127.0.0.1:{port}/health"],
        capture_output=True, text=True, timeout=WRK_SECS + 60, start_new_session=True)
    text = done.stdout + done.stderr
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if done.returncode != 0 or not rps:
        raise SuiteError(f"wrk failed ({done.returncode}): {text[-800:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    result = {
        "rps": float(rps.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
        "output": done.stdout,
    }
    if float(rps.group(1)) == 0:
        raise SuiteError(f"wrk: no answers from port {port}: {text[-800:]}")
    return result


def pin(pid: int, cpus: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


# --- the steps ------------------------------------------------------------------------------

class Results:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.raw: dict = {}

    def row(self, key: str, metric: str, value: float | None, shown: str,
            target: str = "-", ok: bool | None = None, percent: bool = False) -> None:
        """`percent`: the value is itself a percentage, compared in points."""
        verdict = "-" if ok is None else ("ok" if ok else "MISS")
        self.rows.append({"key": key, "metric": metric, "value": value, "shown": shown,
                          "target": target, "verdict": verdict, "percent": percent})


def health_versus_bare(suite: Suite, stack: Stack, results: Results) -> None:
    """Row 1: gateway /health (one worker, all middleware) against bare-actix, CPU 0 each."""
    gateway_port = stack.ports["gateway"][0]
    status, body = request(gateway_port, "GET", "/health")
    if status != 200:
        raise SuiteError(f"gateway /health answered {status}: {body[:200]!r}")
    bare_port = free_port()
    bare = suite.spawn(["taskset", "-c", "0", str(RELEASE / "bare-actix"), "--port",
                        str(bare_port), "--workers", "1"], "bare-actix.log")
    wait_port(bare_port, bare, "bare-actix")
    gateway = stack.pid("gateway")
    runs: dict[str, list[dict]] = {"bare": [], "gateway": []}
    pin(gateway, "0")
    try:
        for turn in range(2):
            for name, port in (("bare", bare_port), ("gateway", gateway_port)):
                result = wrk(port)
                runs[name].append(result)
                log(f"/health {name} (run {turn + 1}): {result['rps']:.0f} req/s, "
                    f"p99 {result['p99_ms']} ms, non-2xx {result['non_2xx']}, "
                    f"socket errors {result['socket_errors']}")
                if bare.poll() is not None:
                    raise SuiteError(f"bare-actix died: {tail(suite.work / 'bare-actix.log')}")
                stack.check_alive()
    finally:
        if stack.procs["gateway"].poll() is None:
            pin(gateway, "0-1")
        suite.stop(bare)
    best = {name: max(r["rps"] for r in rs) for name, rs in runs.items()}
    errors = sum(r["non_2xx"] + r["socket_errors"] for rs in runs.values() for r in rs)
    ratio = best["gateway"] / best["bare"]
    note = f" ({errors} errors)" if errors else ""
    results.row("health_ratio", "/health gateway / bare-actix (CPU 0, wrk on CPU 1)", ratio,
                f"{ratio:.2f}{note}", ">= 0.60", ratio >= 0.6 and not errors)
    results.row("health_gateway_rps", "/health gateway req/s (best of 2)", best["gateway"],
                f"{best['gateway']:.0f}")
    results.row("health_bare_rps", "/health bare-actix req/s (best of 2)", best["bare"],
                f"{best['bare']:.0f}")
    results.raw["health"] = {"runs": runs, "best": best, "ratio": ratio}


def breaker_fail_fast(stack: Stack, results: Results) -> None:
    """Row 7: with GetTrending slower than the gateway's deadline, the breaker opens and the
    gateway answers 503 at once."""
    admin = stack.ports["engagement-service"][1]
    gateway = stack.ports["gateway"][0]
    status, body = request(admin, "PUT", "/admin/faults/GetTrending",
                           {"kind": "latency", "delay_ms": 300, "ratio": 1.0})
    if status != 200:
        raise SuiteError(f"injecting the fault: {status} {body[:200]!r}")
    try:
        before: list[int] = []
        opened = False
        for _ in range(60):
            status, body = request(gateway, "GET", "/api/v1/videos/trending", timeout=30)
            before.append(status)
            if status == 503 and b"dependency_unavailable" in body:
                opened = True
                break
        if not opened:
            results.row("breaker_p99_ms", "breaker open: /videos/trending p99", None,
                        f"never opened ({len(before)} calls: {sorted(set(before))})",
                        "< 5 ms", False)
            results.raw["breaker"] = {"before_open": before, "opened": False}
            return
        conn = http.client.HTTPConnection("127.0.0.1", gateway, timeout=30)
        took, statuses, fast = [], {}, 0
        for _ in range(BREAKER_CALLS):
            began = time.perf_counter()
            conn.request("GET", "/api/v1/videos/trending")
            response = conn.getresponse()
            payload = response.read()
            took.append((time.perf_counter() - began) * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            fast += response.status == 503 and b"dependency_unavailable" in payload
        conn.close()
    finally:
        request(admin, "DELETE", "/admin/faults/GetTrending")
    p50, p99 = percentile(took, 0.50), percentile(took, 0.99)
    log(f"breaker: opened after {len(before)} calls ({before}); {BREAKER_CALLS} calls: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {fast} fast 503s, {statuses}")
    results.row("breaker_p99_ms", "breaker open: /videos/trending p99 (503)", p99,
                f"{p99:.2f} ms (p50 {p50:.2f}; {fast}/{BREAKER_CALLS} were 503)", "< 5 ms",
                p99 < 5 and fast == BREAKER_CALLS)
    results.raw["breaker"] = {"before_open": before, "opened": True, "latency_ms": took,
                              "statuses": statuses, "fast_503": fast, "p50_ms": p50,
                              "p99_ms": p99}


def register(port: int) -> str:
    user = f"bench_{uuid.uuid4().hex[:8]}"
    password = f"Bench-{uuid.uuid4().hex}"
    status, body = request(port, "POST", "/api/v1/auth/register", {
        "email": f"{user}@example.com", "username": user, "password": password,
        "display_name": "Bench"})
    if status != 201:
        raise SuiteError(f"register: {status} {body[:200]!r}")
    status, body = request(port, "POST", "/api/v1/auth/login",
                           {"login": user, "password": password})
    if status != 200:
        raise SuiteError(f"login: {status} {body[:200]!r}")
    return json.loads(body)["access_token"]


def stream_upload(port: int, token: str) -> tuple[int, bytes]:
    """One chunked multipart upload of SIZE bytes, sent 1 MiB at a time (a client streaming
    from disk): an MP4 signature then zeros; processing fails on it afterwards, which is not
    what is measured."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nBenchmark\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.mp4\"\r\n"
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail_bytes = f"\r\n--{boundary}--\r\n".encode()
    signature = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    chunk = bytes(1024 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    conn.putrequest("POST", "/api/v1/videos")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()

    def send(data: bytes) -> None:
        conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    send(head + signature)
    sent = len(signature)
    while sent < SIZE:
        piece = chunk[: min(len(chunk), SIZE - sent)]
        send(piece)
        sent += len(piece)
    send(tail_bytes)
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


def upload(stack: Stack, results: Results) -> None:
    """Row 8b: RSS growth of the gateway and video-service while SIZE bytes stream through."""
    gateway = stack.ports["gateway"][0]
    token = register(gateway)
    watched = ("gateway", "video-service")
    reset = all(reset_peak(stack.pid(name)) for name in watched)
    before = {name: memory(stack.pid(name)) for name in watched}
    started = time.monotonic()
    status, body = stream_upload(gateway, token)
    seconds = time.monotonic() - started
    after = {name: memory(stack.pid(name)) for name in watched}
    stack.check_alive()
    mib = SIZE / 1024 ** 2
    log(f"uploaded {mib:.0f} MiB in {seconds:.1f} s ({mib / seconds:.0f} MiB/s): "
        f"HTTP {status} {body[:120]!r}")
    results.row("upload_mib_s", f"upload of {mib:.0f} MiB (chunked)", mib / seconds,
                f"{mib / seconds:.0f} MiB/s, HTTP {status}", "HTTP 202", status == 202)
    raw = {"bytes": SIZE, "seconds": seconds, "status": status, "body": body[:300].decode(
        errors="replace"), "peak_reset": reset, "processes": {}}
    for name in watched:
        rss, hwm_before = before[name]
        _, peak = after[name]
        # Without a reset the peak may be older than the upload: measure from it then.
        base = rss if reset else max(rss, hwm_before)
        growth = (peak - base) / 1024
        raw["processes"][name] = {"rss_before_kib": rss, "hwm_before_kib": hwm_before,
                                  "peak_kib": peak, "growth_mib": growth}
        log(f"{name}: RSS {rss / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB during: "
            f"growth {growth:.1f} MiB")
        results.row(f"upload_growth_{name}", f"upload: {name} RSS growth", growth,
                    f"{growth:.1f} MiB", f"< {UPLOAD_LIMIT_MIB} MiB", growth < UPLOAD_LIMIT_MIB)
    results.raw["upload"] = raw


class OtlpSink:
    def __init__(self, suite: Suite, label: str) -> None:
        self.suite = suite
        self.port = free_port()
        self.log = suite.work / f"otlp-sink-{label}.log"
        self.proc = suite.spawn([str(RELEASE / "otlp-sink"), "--port", str(self.port)],
                                self.log.name)
        wait_port(self.port, self.proc, "otlp-sink")

    def spans(self) -> list[int]:
        return [int(m) for m in re.findall(r"^spans (\d+)$", self.log.read_text(), re.M)]

    def finish(self) -> int:
        """Spans received, once the stack has stopped (and flushed): the sink prints its
        count every 5 s."""
        seen = len(self.spans())
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline and len(self.spans()) <= seen:
            time.sleep(0.2)
        counts = self.spans()
        self.suite.stop(self.proc)
        return counts[-1] if counts else 0


# --- the table ------------------------------------------------------------------------------

def previous_results() -> tuple[Path | None, dict]:
    """The newest earlier run of the same kind (BENCH_QUICK or not), else the newest."""
    runs = []
    for path in sorted(RESULTS.glob("*.json"), reverse=True):
        try:
            runs.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    for path, data in runs:
        if data.get("machine", {}).get("quick") == QUICK:
            return path, data
    return runs[0] if runs else (None, {})


def print_table(rows: list[dict], previous: dict) -> None:
    before = {r["key"]: r.get("value") for r in previous.get("rows", [])}
    lines = []
    for r in rows:
        old, new = before.get(r["key"]), r["value"]
        numbers = isinstance(old, (int, float)) and isinstance(new, (int, float))
        if numbers and r.get("percent"):
            change = f"{new - old:+.1f} pp"
        elif numbers and old:
            change = f"{(new - old) / abs(old) * 100:+.1f}%"
        else:
            change = ""
        lines.append((r["metric"], r["shown"], r["target"], r["verdict"], change))
    headers = ("metric", "value", "target", "verdict", "vs prev")
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(fmt.format(*headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt.format(*line))
    print()


def machine_info() -> dict:
    def run(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, cwd=ROOT,
                                  check=False).stdout.strip()
        except OSError:
            return ""

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "git_rev": run("git", "rev-parse", "HEAD"),
        "git_dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no")),
        "wrk": run("wrk", "-v").splitlines()[0] if shutil.which("wrk") else "",
        "python": platform.python_version(),
        "quick": QUICK,
        "run_secs": RUN_SECS,
        "warmup_secs": WARMUP_SECS,
        "wrk_secs": WRK_SECS,
        "concurrency": CONCURRENCY,
        "upload_bytes": SIZE,
        "seed": {"users": SEED_USERS, "videos_per_user": SEED_VIDEOS_PER_USER,
                 "follows": SEED_FOLLOWS},
    }


# --- main -----------------------------------------------------------------------------------

def suite_steps(suite: Suite, results: Results) -> None:
    loadgen = Loadgen(suite)

    # Export off (the defaults): the read path, its per-hop cost, writes, overload, memory.
    stack = Stack(suite, "off").start()
    results.raw["seed"] = {k: len(v) for k, v in loadgen.seed(stack).items()}

    log(f"read, closed loop ({CONCURRENCY} clients, {RUN_SECS} s)")
    read = loadgen.run(stack, "read", hops=True)
    log(f"read closed: {summary(read)}")
    max_rps = read["rps"]
    results.row("read_max_rps", f"read max req/s (closed, {CONCURRENCY} clients)", max_rps,
                f"{max_rps:.0f}", ">= 7500", max_rps >= 7500)
    results.row("read_closed_errors", "read closed-loop errors", read["errors"],
                str(read["errors"]), "0", read["errors"] == 0)
    results.row("read_closed_p99_ms", "read closed-loop p99", read["latency_ms"]["p99"],
                f"{read['latency_ms']['p99']:.2f} ms")
    hops = read.get("hops")
    if hops:
        for name, us in hops["us_per_request"].items():
            if name in hops["absent"]:
                results.row(f"cpu_us_{name}", f"CPU per read: {name}", None,
                            "no local process")
            elif us is not None:
                results.row(f"cpu_us_{name}", f"CPU per read: {name}", us, f"{us:.0f} µs")
        results.row("read_machine_busy_pct", "machine CPU busy during read (all cores)",
                    hops["machine_busy_pct"], f"{hops['machine_busy_pct']:.0f}% "
                    f"({hops['others_pct']:.0f}% other processes)", percent=True)
        log("CPU per read request: " + ", ".join(
            f"{n} {us:.0f} µs" for n, us in hops["us_per_request"].items() if us is not None)
            + f"; machine busy {hops['machine_busy_pct']:.0f}%, of which other processes "
            f"{hops['others_pct']:.0f}%")

    half = max(1.0, max_rps / 2)
    log(f"read, open loop at {half:.0f} req/s")
    # Over the closed loop's 64 connections (wrk2's way): a task and a connection per
    # request would make the load generator, on the same two cores, the bottleneck.
    read_open = loadgen.run(stack, "read", rate=half, connections=CONCURRENCY)
    log(f"read open: {summary(read_open)}")
    p99 = read_open["latency_ms"]["p99"]
    results.row("read_open_p99_ms", f"read p99 at half max ({half:.0f} req/s, open)", p99,
                f"{p99:.2f} ms", "<= 10 ms", p99 <= 10)
    results.row("read_open_errors", "read open-loop errors", read_open["errors"],
                str(read_open["errors"]), "0", read_open["errors"] == 0)

    runs = {"read_closed": read, "read_open": read_open}
    for scenario in ("write", "mixed"):
        log(f"{scenario}, closed loop ({CONCURRENCY} clients)")
        report = loadgen.run(stack, scenario)
        log(f"{scenario}: {summary(report)}")
        runs[scenario] = report
        results.row(f"{scenario}_rps", f"{scenario} req/s (closed)", report["rps"],
                    f"{report['rps']:.0f}")
        results.row(f"{scenario}_p99_ms", f"{scenario} p99 (closed)",
                    report["latency_ms"]["p99"], f"{report['latency_ms']['p99']:.2f} ms")
        results.row(f"{scenario}_errors", f"{scenario} errors", report["errors"],
                    f"{report['errors']} of {report['requests']}")

    overload(stack, loadgen, max_rps, runs, results)

    peaks = {name: memory(stack.pid(name))[1] / 1024 for name in PROCESSES}
    for name, peak in peaks.items():
        results.row(f"peak_rss_{name}", f"peak RSS after the load runs: {name}", peak,
                    f"{peak:.1f} MiB")
    results.raw["peak_rss_mib"] = peaks

    upload(stack, results)
    stack.stop()
    results.raw["runs"] = runs

    # The read path behind the cache: every read asks video-service (and it engagement-
    # service), as a read of a cold video does. Not a target; what a miss costs.
    stack = Stack(suite, "cache-off", env={"SOCIALFLOW__CACHE__VIDEO_TTL_MS": "0"}).start()
    log("read, closed loop, gateway cache off")
    uncached = loadgen.run(stack, "read", hops=True)
    stack.stop()
    log(f"read with the cache off: {summary(uncached)}")
    runs["read_cache_off"] = uncached
    results.row("read_cache_off_rps", "read max req/s, cache.video_ttl_ms=0 (every hop)",
                uncached["rps"], f"{uncached['rps']:.0f} (p99 "
                f"{uncached['latency_ms']['p99']:.1f} ms, {uncached['errors']} errors)")
    uncached_hops = (uncached.get("hops") or {}).get("us_per_request") or {}
    if uncached_hops:
        shown = ", ".join(f"{n.replace('-service', '')} {us:.0f}"
                          for n, us in uncached_hops.items() if us)
        results.row("read_cache_off_cpu", "CPU per read, cache off (µs)",
                    sum(us for us in uncached_hops.values() if us), shown)

    # Tracing cost: the same closed-loop read on a fresh stack with export off (measured
    # here, next to the others: after the write, mixed and overload runs the machine is not
    # where it was at the start), then with every span exported, then 10%.
    stack = Stack(suite, "trace-off").start()
    log("read, closed loop, export off (the tracing baseline)")
    baseline = loadgen.run(stack, "read")
    stack.stop()
    off_rps = baseline["rps"]
    log(f"read with export off: {summary(baseline)}")
    telemetry = {"off": {"rps": off_rps, "first_run_rps": max_rps}}
    results.row("trace_off_rps", "read req/s, export off (tracing baseline)", off_rps,
                f"{off_rps:.0f}")
    for label, sampler, arg, limit in (("always_on", "always_on", "1.0", 10.0),
                                       ("ratio_0.1", "traceidratio", "0.1", 3.0)):
        sink = OtlpSink(suite, label)
        stack = Stack(suite, f"trace-{label}", env={
            "SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
            "SOCIALFLOW__TELEMETRY__SAMPLER": sampler,
            "SOCIALFLOW__TELEMETRY__SAMPLER_ARG": arg,
        }).start()
        log(f"read, closed loop, spans exported ({sampler} {arg})")
        report = loadgen.run(stack, "read", hops=True, extra={"otlp-sink": sink.proc.pid})
        stack.stop()
        spans = sink.finish()
        hops = report.get("hops") or {}
        if hops:
            log(f"CPU per read with spans {label}: " + ", ".join(
                f"{n} {us:.0f} µs" for n, us in hops["us_per_request"].items()
                if us is not None))
        loss = (off_rps - report["rps"]) / off_rps * 100
        log(f"read with {label}: {summary(report)}; {spans} spans received; "
            f"loss {loss:.1f}% against export off")
        telemetry[label] = {"rps": report["rps"], "loss_pct": loss, "spans": spans,
                            "report": report}
        errors = f", {report['errors']} errors" if report["errors"] else ""
        results.row(f"trace_loss_{label}", f"read req/s loss, spans {label} vs off", loss,
                    f"{loss:.1f}% ({report['rps']:.0f} req/s{errors})", f"<= {limit:.0f}%",
                    loss <= limit and report["errors"] == 0, percent=True)
        per_request = spans / max(1, report["requests"])
        results.row(f"trace_spans_{label}", f"spans received by otlp-sink ({label})", spans,
                    f"{spans} (~{per_request:.1f}/measured request)")
    results.raw["telemetry"] = telemetry

    # /health against bare-actix (one gateway worker), then the breaker (200 ms deadline,
    # faults on engagement-service) on a stack of its own.
    stack = Stack(suite, "health-breaker", per_process={
        "gateway": {"SOCIALFLOW__HTTP__WORKERS": "1",
                    "SOCIALFLOW__GRPC_CLIENT__TIMEOUT_MS": "200"},
        "engagement-service": {"SOCIALFLOW__SERVER__FAULT_INJECTION": "true"},
    }).start()
    health_versus_bare(suite, stack, results)
    breaker_fail_fast(stack, results)
    stack.stop()


def overload(stack: Stack, loadgen: Loadgen, max_rps: float, runs: dict,
             results: Results) -> None:
    """Row 6: twice the max read rate, open loop. A probe on the side checks the headers of
    refused answers (loadgen only counts statuses)."""
    rate = 2 * max_rps
    video = json.loads(loadgen.seed_file.read_text())["videos"][0]
    probe: dict = {"answers": []}

    def watch(proc: subprocess.Popen) -> None:
        conn = None
        while proc.poll() is None and len(probe["answers"]) < 2000:
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", stack.ports["gateway"][0],
                                                          timeout=10)
                began = time.perf_counter()
                conn.request("GET", f"/api/v1/videos/{video}")
                response = conn.getresponse()
                response.read()
                probe["answers"].append((response.status,
                                         response.getheader("Retry-After") is not None,
                                         (time.perf_counter() - began) * 1000))
            except (OSError, http.client.HTTPException):
                probe["answers"].append((0, False, 0.0))
                if conn:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn:
            conn.close()

    log(f"overload: read, open loop at {rate:.0f} req/s (2 x max)")
    report = loadgen.run(stack, "read", rate=rate, during=watch)
    log(f"overload: {summary(report)}")
    runs["overload"] = report
    by_status = {int(s): n for s, n in report["by_status"].items()}
    bad = {s: n for s, n in by_status.items() if s == 0 or (s >= 500 and s != 503)}
    refused = by_status.get(503, 0) + by_status.get(429, 0)
    answers = probe["answers"]
    probe_refused = [a for a in answers if a[0] in (503, 429)]
    with_header = sum(1 for a in probe_refused if a[1])
    probe_admitted = [a[2] for a in answers if a[0] == 200]
    sent = report["requests"] / max(report["seconds"], 1e-9)
    bad_text = ", ".join(f"{'no answer' if s == 0 else s}: {n}" for s, n in bad.items())
    results.row("overload_bad", f"overload {rate:.0f} req/s: 5xx other than 503, no answer",
                sum(bad.values()),
                f"{bad_text or 'none'} (200: {by_status.get(200, 0)}, 503/429: {refused}; "
                f"sent {sent:.0f}/s)", "none", not bad)
    results.row("overload_retry_after", "overload: 503/429 with Retry-After (probe)",
                100 * with_header / len(probe_refused) if probe_refused else None,
                f"{with_header}/{len(probe_refused)} of {len(answers)} probes",
                "all", (with_header == len(probe_refused)) if probe_refused else None,
                percent=True)
    # The target is on admitted requests. loadgen's own p99 mixes the fast 503s with the
    # 200s and, on the same two cores as the stack, its own lateness in sending (it
    # measures from each request's due time): the probe, one client on the side, times the
    # 200s it gets.
    p99 = report["latency_ms"]["p99"]
    results.row("overload_loadgen_p99_ms", "overload p99 of every answer, loadgen", p99,
                f"{p99:.1f} ms")
    if probe_admitted:
        admitted_p99 = percentile(probe_admitted, 0.99)
        results.row("overload_p99_ms", "overload: admitted (200) p99, probe", admitted_p99,
                    f"{admitted_p99:.0f} ms (n={len(probe_admitted)})", "< 500 ms",
                    admitted_p99 < 500)
    else:
        results.row("overload_p99_ms", "overload: admitted (200) p99, probe", None,
                    "no 200 among the probes", "< 500 ms", False)
    results.raw["overload"] = {"rate": rate, "probe": answers}


def main() -> int:
    for tool, hint in (("psql", "postgresql-client"), ("s3s-fs", "scripts/install-test-deps.sh"),
                       ("taskset", "util-linux")):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is needed ({hint})")
    if os.environ.get("BENCH_NO_BUILD", "") in ("", "0"):
        log("building the release binaries (cargo build --release --bins)")
        subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"], cwd=ROOT,
                       check=True)
    missing = [b for b in [*PROCESSES, "loadgen", "bare-actix", "otlp-sink"]
               if not (RELEASE / b).exists()]
    if missing:
        sys.exit(f"bench: missing release binaries: {', '.join(missing)}")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs 2 CPUs (the /health comparison pins server and wrk apart)")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # Ctrl-C, kill and a closed terminal all stop the suite through its cleanup (SIGINT too
    # when started in the background, where it would otherwise be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    started = time.monotonic()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results = Results()
    suite = Suite()
    try:
        ensure_wrk()
        suite.setup()
        suite_steps(suite, results)
    except SuiteError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted, cleaning up", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        suite.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous_path, previous = previous_results()
    print_table(results.rows, previous)
    misses = sum(r["verdict"] == "MISS" for r in results.rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps({
        "timestamp": stamp,
        "seconds": time.monotonic() - started,
        "machine": machine_info(),
        "rows": results.rows,
        "raw": results.raw,
        "previous": str(previous_path) if previous_path else None,
    }, indent=1, default=str))
    where = "no previous run"
    if previous_path:
        kind = previous.get("machine", {}).get("quick")
        where = f"change against {previous_path}" + (
            f" (a {'BENCH_QUICK' if kind else 'full'} run)" if kind != QUICK else "")
    log(f"{len(results.rows)} rows, {misses} targets missed; results in {out}; {where}; "
        f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
