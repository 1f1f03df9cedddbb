"""The offline checks, in the order they report: the code model, compose, the log pipeline
and uptime probes, Dockerfile, Helm chart, docs."""

from __future__ import annotations

from .chart import ChartChecks
from .chart_objects import ChartObjectChecks
from .common import BINARIES, yaml
from .compose import ComposeChecks
from .docs import DocsChecks
from .dockerfile import DockerfileChecks
from .netpol import NetworkPolicyChecks
from .observability import ObservabilityChecks
from .report import Report
from .routes import Routes
from .settings import EVERY_PROCESS_READS, Settings


class Static(ComposeChecks, ObservabilityChecks, DockerfileChecks, ChartChecks, ChartObjectChecks, NetworkPolicyChecks,
             DocsChecks):
    """Each base class holds one area's checks; they share self.r (the Report), self.settings,
    self.routes, self.compose (what compose_checks read), self.rendered and self.notes (what
    helm_checks rendered)."""

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

    def run(self) -> None:
        if not self.r.check("python: PyYAML importable", yaml is not None, "run scripts/install-deploy-deps.sh"):
            return
        self.code_model()
        self.compose_checks()
        self.observability_checks()
        self.dockerfile_checks()
        self.helm_checks()
        self.docs_checks()
