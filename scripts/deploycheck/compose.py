"""docker-compose.yml: each process's service, the profiles, the S3 bucket, the shared keys,
the observability services and Prometheus's scrape targets."""

from __future__ import annotations

import glob
import json
import re
import shutil
from pathlib import Path

from .common import BINARIES, COMPOSE_FILE, ROOT, clean_env, duration_secs, mem_bytes, sh, url_host_port, yaml
from .media import DEFAULT_TMPDIR, compose_scratch_problems, scratch_bytes, tool_problems
from .settings import SETTING_BOUNDS, deployment_problems, grpc_urls, required_env, shared_key_problems, type_problem

# The services every compose profile must have, by role.
OBSERVABILITY = ["jaeger", "prometheus", "alertmanager", "grafana", "loki", "alloy", "blackbox-exporter",
                 "node-exporter", "postgres-exporter", "redis-exporter"]


def compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and sh(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return None


class ComposeChecks:
    """Static's docker-compose.yml checks (uses self.r, self.settings, self.routes; sets self.compose)."""

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
                if k == "TMPDIR":
                    continue  # not a setting: where the tempfile crate puts temp files
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
            # Child programs the image has, and room under the temp dir for what it downloads.
            p += tool_problems(s, binary, eff)
            if (need := scratch_bytes(s, binary, eff)):
                p += compose_scratch_problems(binary, svc, need, env.get("TMPDIR", DEFAULT_TMPDIR))
            if svc.get("profiles"):
                p.append(f"has profiles {svc['profiles']}: the app must be in every profile")
            build = svc.get("build") or {}
            if build.get("target") != binary or not str(build.get("dockerfile", "")).endswith("deploy/docker/Dockerfile"):
                p.append(f"build is not deploy/docker/Dockerfile target {binary}")
            return p

        for binary in BINARIES:
            self.r.run(f"compose: {binary}: healthcheck, memory limit, healthy data stores, env names and ports match the code",
                       lambda b=binary: app_checks(b))

        def scratch_check_bites() -> list[str]:
            """The temp-dir rule of app_checks refuses what would break processing."""
            p = []
            for binary in BINARIES:
                eff = s.effective(binary, {k: str(v) for k, v in (services[binary].get("environment") or {}).items()})
                need = scratch_bytes(s, binary, eff)
                if not need:
                    continue
                base = {k: v for k, v in services[binary].items() if k not in ("tmpfs", "volumes")}
                bad = {
                    "nothing at /tmp": {},
                    "a read-only volume": {"volumes": ["scratch:/tmp:ro"]},
                    "a tmpfs without a size": {"tmpfs": ["/tmp"]},
                    "a tmpfs smaller than a video": {"tmpfs": ["/tmp:size=64m"]},
                    "a tmpfs the memory limit cannot hold": {"tmpfs": [f"/tmp:size={need}"], "mem_limit": "256m"},
                }
                for what, extra in bad.items():
                    if not compose_scratch_problems(binary, {**base, **extra}, need):
                        p.append(f"{binary}: accepts {what}")
                if compose_scratch_problems(binary, {**base, "volumes": ["scratch:/tmp"]}, need):
                    p.append(f"{binary}: refuses a disk volume at /tmp")
            return p
        self.r.run("compose: the check of video-service's /tmp refuses none, read-only, unsized, too small or "
                   "RAM beyond mem_limit", scratch_check_bites)

        def bounds_bites() -> list[str]:
            """Every bounded setting (SETTING_BOUNDS) is one a binary reads, and a value just
            outside its bounds in that binary's compose env is refused."""
            p = []
            for (section, key), (low, high, _) in SETTING_BOUNDS.items():
                readers = [b for b in BINARIES if key in s.schema[b].get(section, {})]
                if not readers:
                    p.append(f"{section}.{key}: no binary reads it (a stale bound in deploycheck/settings.py)")
                name = f"SOCIALFLOW__{section.upper()}__{key.upper()}"
                for b in readers:
                    env = {k: str(v) for k, v in (services[b].get("environment") or {}).items()}
                    for bad in [x for x in ((low - 1) if low is not None else None,
                                            (high + 1) if high is not None else None) if x is not None]:
                        found = deployment_problems(b, s.effective(b, {**env, name: str(bad)}))
                        if not any(f"{section}.{key} = {bad}" in x for x in found):
                            p.append(f"{b}: accepts {section}.{key} = {bad}")
            return p
        self.r.run("compose: bounded settings (payments' provider, payouts, ledger; grpc_client) are read by a "
                   "binary, and a value outside the bounds is refused", bounds_bites)

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
        self.r.run("compose: light = app + data stores (no profile), full adds Jaeger, Prometheus, Alertmanager, Grafana, "
                   "Loki, Alloy, exporters",
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
                if job.get("metrics_path") == "/probe":
                    continue  # URLs for the blackbox exporter: observability_checks' probe check
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
