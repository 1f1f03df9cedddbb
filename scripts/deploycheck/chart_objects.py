"""Each process as the chart renders it: Deployment, image, environment (every variable a
setting the binary reads), Secrets, probes against the routes the code serves, shutdown,
security context, Service, HPA and PDB; then the NetworkPolicies (netpol.py)."""

from __future__ import annotations

import re
import urllib.parse

from .common import BINARIES, CHART, deep_merge, url_host_port, yaml
from .media import pod_scratch_problems, scratch_bytes, tool_problems
from .settings import SHARED_KEYS, deployment_problems, grpc_urls, required_env, type_problem

# Helper variables the chart defines to build a URL with $(NAME); no binary reads them.
HELPER_VAR = re.compile(r"^SF_[A-Z0-9_]+$")


class ChartObjectChecks:
    """Static's checks of the rendered objects (uses self.settings, self.routes,
    self.network_policies)."""

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
            # Child programs the image has, and room under the temp dir for what it downloads.
            p += tool_problems(s, binary, eff)
            if (need := scratch_bytes(s, binary, eff)):
                p += pod_scratch_problems(binary, pod, need)
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

    @staticmethod
    def _key(binary: str) -> str:
        head, *rest = binary.split("-")
        return head + "".join(x.title() for x in rest)
