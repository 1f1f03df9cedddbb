"""Rendering and linting the chart with helm-sdkpy (Helm's own library), against an
in-process fake Kubernetes API server that only records what it is sent."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .common import CHART, yaml


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
                                     ("prometheusrules", "PrometheusRule", True),
                                     ("probes", "Probe", True)],
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
