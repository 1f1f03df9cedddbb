#!/usr/bin/env python3
"""Upload benchmark: peak memory of the gateway and video-service while 1 GiB streams through.

Starts the release binaries of the five processes on free ports (their own database, Redis
key prefix and s3s-fs store), signs up a user, and streams one upload of BENCH_UPLOAD_BYTES
(default 1 GiB) through `POST /api/v1/videos` without a length (chunked, as a client
streaming from disk would). Reports each process's resident memory before and its peak
(VmHWM) after, and fails when either grew by 64 MiB or more.

The file is an MP4 signature followed by zeros: the upload path only looks at the first
bytes, and the point is the bytes in flight, not processing (which fails on it afterwards).

Usage: python3 scripts/bench-upload.py   (or `make bench`)
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
PG = os.environ.get("SOCIALFLOW_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
SIZE = int(os.environ.get("BENCH_UPLOAD_BYTES", str(1024 ** 3)))
LIMIT_MIB = 64
PROCESSES = ["user-service", "video-service", "engagement-service", "payments-service", "gateway"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def request(port: int, method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


def wait_ready(admin_port: int, name: str) -> None:
    for _ in range(300):
        try:
            status, _ = request(admin_port, "GET", "/health/readiness")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"bench: {name} never became ready")


def stream_upload(port: int, token: str) -> tuple[int, bytes]:
    """One chunked multipart upload of SIZE bytes, sent 1 MiB at a time."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nBenchmark\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.mp4\"\r\n"
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
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
    send(tail)
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


def main() -> int:
    for tool in ("psql", "s3s-fs"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is needed (scripts/install-test-deps.sh)")
    print("bench: building the release binaries (cargo build --release --bins)", flush=True)
    subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"], cwd=ROOT, check=True)

    database = f"sf_bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {database}"], check=True)
    work = Path(tempfile.mkdtemp(prefix="sf-bench-"))
    children: list[subprocess.Popen] = []
    try:
        s3_port = free_port()
        children.append(subprocess.Popen(
            ["s3s-fs", "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", "bench",
             "--secret-key", "bench-secret", str(work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports = {name: (free_port(), free_port()) for name in PROCESSES}
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY": "true",
            "SOCIALFLOW__DATABASE__URL": PG.rsplit("/", 1)[0] + f"/{database}",
            "SOCIALFLOW__REDIS__KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
            "SOCIALFLOW__S3__ENDPOINT": f"http://127.0.0.1:{s3_port}",
            "SOCIALFLOW__S3__ACCESS_KEY": "bench",
            "SOCIALFLOW__S3__SECRET_KEY": "bench-secret",
            "SOCIALFLOW__S3__BUCKET": "sf-bench",
            "SOCIALFLOW__TELEMETRY__LOG_LEVEL": "warn",
            "SOCIALFLOW__SERVICES__USER": f"http://127.0.0.1:{ports['user-service'][0]}",
            "SOCIALFLOW__SERVICES__VIDEO": f"http://127.0.0.1:{ports['video-service'][0]}",
            "SOCIALFLOW__SERVICES__ENGAGEMENT": f"http://127.0.0.1:{ports['engagement-service'][0]}",
            "SOCIALFLOW__SERVICES__PAYMENTS": f"http://127.0.0.1:{ports['payments-service'][0]}",
            "SOCIALFLOW__ENGAGEMENT__URL": f"http://127.0.0.1:{ports['engagement-service'][0]}",
        }
        pids = {}
        for name in PROCESSES:
            api, admin = ports[name]
            child = subprocess.Popen(
                [str(TARGET / name)],
                env={**env, "SOCIALFLOW__SERVER__PORT": str(api),
                     "SOCIALFLOW__SERVER__ADMIN_PORT": str(admin)},
                stdout=subprocess.DEVNULL, stderr=(work / f"{name}.log").open("w"))
            children.append(child)
            pids[name] = child.pid
        for name in PROCESSES:
            wait_ready(ports[name][1], name)

        gateway = ports["gateway"][0]
        user = f"bench_{uuid.uuid4().hex[:8]}"
        password = f"Bench-{uuid.uuid4().hex}"
        status, body = request(gateway, "POST", "/api/v1/auth/register", {
            "email": f"{user}@example.com", "username": user, "password": password,
            "display_name": "Bench"})
        assert status == 201, body
        status, body = request(gateway, "POST", "/api/v1/auth/login",
                               {"login": user, "password": password})
        assert status == 200, body
        token = json.loads(body)["access_token"]

        before = {name: memory(pids[name]) for name in ("gateway", "video-service")}
        started = time.monotonic()
        status, body = stream_upload(gateway, token)
        seconds = time.monotonic() - started
        after = {name: memory(pids[name]) for name in ("gateway", "video-service")}
        print(f"bench: uploaded {SIZE / 1024 ** 2:.0f} MiB in {seconds:.1f} s "
              f"({SIZE / 1024 ** 2 / seconds:.0f} MiB/s): HTTP {status} {body[:120]!r}")
        failed = status != 202
        for name in ("gateway", "video-service"):
            rss, _ = before[name]
            _, peak = after[name]
            growth = (peak - rss) / 1024
            verdict = "ok" if growth < LIMIT_MIB else "OVER"
            failed |= growth >= LIMIT_MIB
            print(f"bench: {name}: RSS {rss / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB "
                  f"during: growth {growth:.1f} MiB (limit {LIMIT_MIB}) {verdict}")
        return 1 if failed else 0
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["psql", PG, "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                       check=False)


if __name__ == "__main__":
    sys.exit(main())
