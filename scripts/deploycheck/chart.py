"""The Helm chart as a whole: lint, values schema, rendering scenarios, the Ingress/trusted
proxy hops rule, ServiceMonitor/PrometheusRule/Probe, the rules/ copy and NOTES.txt; and
--sync-rules, which makes that copy."""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .common import CHART, EXAMPLES, RULES_CHART, RULES_SRC, ROOT, deep_merge, yaml
from .helm import helm_env, helm_lint, helm_render


class ChartChecks:
    """Static's chart checks (uses self.r, self.routes, self.chart_objects; fills self.rendered
    and self.notes)."""

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
                "a blackbox prober with a scheme": {"metrics": {"probe": {"proberUrl": "http://blackbox:9115"}}},
                "a probe target that is not a URL": {"metrics": {"probe": {"targets": ["api.example.com/health"]}}},
                "a /tmp size that is not a quantity": {"videoService": {"tmpDir": {"sizeLimit": "2 GB"}}},
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

        def video_tmp() -> list[str]:
            """video-service's /tmp must follow its settings: more workers (or a larger upload
            limit) without a larger tmpDir.sizeLimit are refused, and raising it fixes that."""
            p = []
            two = {"videoService": {"settings": {"processing": {"workers": 2}}}}
            complaints = [x for x in self.chart_objects(helm_render(two)[0], two) if "/tmp" in x]
            if not complaints:
                p.append("2 processing workers with the default videoService.tmpDir pass the checks")
            raised = deep_merge(two, {"videoService": {"tmpDir": {"sizeLimit": "5Gi"},
                                                       "resources": {"requests": {"ephemeral-storage": "5Gi"}}}})
            p += [f"with tmpDir.sizeLimit 5Gi: {x}" for x in self.chart_objects(helm_render(raised)[0], raised)]
            return p
        self.r.run("helm: video-service's /tmp emptyDir is sized from uploads.max_size_bytes x processing.workers "
                   "(2 workers need a larger videoService.tmpDir.sizeLimit)", video_tmp)

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

        def probe() -> list[str]:
            """The chart's Probe is compose's blackbox job in a cluster: same job name, module,
            path and labels (so EndpointDown and the dashboards fit both), public gateway
            routes only; it needs the exporter's address."""
            p = []
            job = self.probe_job()
            if not job:
                return ["monitoring/prometheus/prometheus.yml has no probe job to compare with"]
            job_labels = {k: v for sc in job.get("static_configs") or [] for k, v in (sc.get("labels") or {}).items()}
            cases = {
                "deploy/helm/examples/production.yaml": (self.rendered.get("deploy/helm/examples/production.yaml"), None),
                "in-cluster default targets": (None, {"metrics": {"probe": {"enabled": True, "proberUrl": "bb.monitoring:9115"}}}),
            }
            for name, (objs, values) in cases.items():
                if objs is None:
                    objs, _ = helm_render(values)
                probes = [o for o in objs or [] if o["kind"] == "Probe"]
                if len(probes) != 1:
                    p.append(f"{name}: {len(probes)} Probe objects rendered, expected 1")
                    continue
                spec = probes[0]["spec"]
                static = (spec.get("targets") or {}).get("staticConfig") or {}
                if spec.get("jobName") != job["job_name"]:
                    p.append(f"{name}: jobName {spec.get('jobName')!r}, compose's job is {job['job_name']!r}")
                if [spec.get("module")] != (job.get("params") or {}).get("module"):
                    p.append(f"{name}: module {spec.get('module')!r}, compose's job uses {(job.get('params') or {}).get('module')}")
                if (spec.get("prober") or {}).get("path") != job.get("metrics_path"):
                    p.append(f"{name}: prober path {(spec.get('prober') or {}).get('path')!r}, not {job.get('metrics_path')!r}")
                if static.get("labels") != job_labels:
                    p.append(f"{name}: target labels {static.get('labels')}, compose's job has {job_labels}")
                urls = static.get("static") or []
                p += [f"{name}: {x}" for x in self.probe_paths_ok(urls)]
                if name == "in-cluster default targets":
                    gw = [o for o in objs if o["kind"] == "Service" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"][0]
                    port = [pt["port"] for pt in gw["spec"]["ports"] if pt["name"] == "http"][0]
                    host = f"{gw['metadata']['name']}.socialflow.svc:{port}"
                    if not urls or any(not u.startswith(f"http://{host}/") for u in urls):
                        p.append(f"{name}: targets {urls}, expected the gateway Service http://{host}/...")
                else:
                    gateway_url = (yaml.safe_load((ROOT / name).read_text()).get("links") or {}).get("gatewayUrl", "")
                    if not urls or any(not u.startswith(gateway_url.rstrip("/") + "/") for u in urls):
                        p.append(f"{name}: targets {urls}, expected URLs under links.gatewayUrl {gateway_url}")
            if any(o["kind"] == "Probe" for o in self.rendered.get("default values") or []):
                p.append("a Probe rendered though metrics.probe is off by default")
            try:
                helm_render({"metrics": {"probe": {"enabled": True}}})
                p.append("renders with metrics.probe.enabled and no proberUrl")
            except Exception as e:  # noqa: BLE001 - the failure is the expected outcome
                if "metrics.probe.proberUrl" not in str(e):
                    p.append(f"without a proberUrl it fails, but not naming metrics.probe.proberUrl: {str(e)[:300]}")
            return p
        self.r.run("helm: the Probe (metrics.probe) is compose's blackbox job in a cluster: job, module, labels, public "
                   "gateway URLs; off by default, and refused without the exporter's address", probe)

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
