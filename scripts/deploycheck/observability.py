"""The log pipeline and the uptime probes of docker-compose.yml's `full` profile: every
image pinned, healthy and with its state on a volume; Alloy's labels; Loki; the Grafana
datasources that link logs and traces; the blackbox probe job (promtool check config)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from .common import BINARIES, ROOT, sh, url_host_port, yaml

ALLOY_DIR = ROOT / "monitoring/alloy"
LOKI_CONFIG = ROOT / "monitoring/loki/loki.yml"
BLACKBOX_CONFIG = ROOT / "monitoring/blackbox/blackbox.yml"
PROMETHEUS_CONFIG = ROOT / "monitoring/prometheus/prometheus.yml"
DATASOURCES = ROOT / "monitoring/grafana/provisioning/datasources/datasources.yml"

# The only Loki labels: anything per request (trace_id, request_id, user_id) would make a
# stream per request. monitoring/alloy/config.alloy says why.
LOKI_LABELS = {"service", "level", "environment"}
# The container label that marks a Social Flow process's JSON lines for Alloy.
JSON_LOG_LABEL = ("io.socialflow.log-format", "json")

# Long-running services with no healthcheck, and why that is acceptable: nothing waits for
# them, and Prometheus' TargetDown watches each one. (redis_exporter's image is FROM scratch:
# there is nothing to run a check with.)
NO_HEALTHCHECK = {"node-exporter", "postgres-exporter", "redis-exporter"}
# Moving tags: an image must name a version.
FLOATING_TAGS = {"latest", "stable", "main", "master", "edge", "nightly", "dev"}


def flag(command, name: str) -> str | None:
    """The value of --name=value (or -name=value, or `--name value`) in a compose command."""
    words = command if isinstance(command, list) else str(command or "").split()
    for i, w in enumerate(words):
        for prefix in (f"--{name}=", f"-{name}="):
            if w.startswith(prefix):
                return w[len(prefix):]
        if w in (f"--{name}", f"-{name}") and i + 1 < len(words):
            return words[i + 1]
    return None


def data_dir(name: str, svc: dict) -> str | None:
    """Where a stateful service keeps its data, read from its own command or config; None
    for a service that keeps none. Raises KeyError for a service this table does not know."""
    cmd = svc.get("command") or []
    if name == "postgres":
        return (svc.get("environment") or {}).get("PGDATA") or "/var/lib/postgresql/data"
    if name == "redis":
        return "/data"  # the redis image's WORKDIR, where --appendonly writes
    if name == "minio":
        words = cmd if isinstance(cmd, list) else str(cmd).split()
        return words[words.index("server") + 1] if "server" in words else None
    if name == "prometheus":
        return flag(cmd, "storage.tsdb.path") or "/prometheus"
    if name == "alertmanager":
        return flag(cmd, "storage.path") or "/alertmanager"
    if name == "grafana":
        return (svc.get("environment") or {}).get("GF_PATHS_DATA") or "/var/lib/grafana"
    if name == "loki":
        return ((yaml.safe_load(LOKI_CONFIG.read_text()) or {}).get("common") or {}).get("path_prefix")
    if name == "alloy":
        return flag(cmd, "storage.path")
    if name in ("jaeger", "blackbox-exporter", "node-exporter", "postgres-exporter", "redis-exporter", "minio-init"):
        return None  # in memory (Jaeger all-in-one), or nothing to keep
    raise KeyError(name)


def mounts(svc: dict) -> list[tuple[str, str, str, bool]]:
    """(type, source, target, read_only) of a service's volumes, from `docker-compose config`."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("type", "volume"), str(v.get("source", "")), str(v.get("target", "")),
                        bool(v.get("read_only"))))
        else:
            parts = str(v).split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
            mode = parts[2] if len(parts) > 2 else "rw"
            kind = "bind" if source.startswith(("/", ".")) else "volume"
            out.append((kind, source, target, "ro" in mode.split(",")))
    return out


def mounted_at(svc: dict, local: Path) -> str | None:
    """Where a service mounts a directory of this repository."""
    for kind, source, target, _ro in mounts(svc):
        if kind == "bind" and Path(source).resolve() == local.resolve():
            return target
    return None


def in_mount(svc: dict, local_dir: Path, container_path: str) -> Path | None:
    """The local file behind container_path when it lies inside local_dir's mount."""
    target = mounted_at(svc, local_dir)
    if target and container_path.startswith(target.rstrip("/") + "/"):
        return local_dir / container_path[len(target.rstrip("/")) + 1:]
    return None


# --- Alloy's configuration language, as far as these checks need it -------------------------

def strip_alloy_comments(text: str) -> str:
    """The text without // comments (outside strings: "unix:///var/run/docker.sock" stays)."""
    out, i, quoted = [], 0, False
    while i < len(text):
        ch = text[i]
        if quoted:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1:i + 2])
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def alloy_blocks(text: str) -> list[tuple[str, str, str]]:
    """(component, label, body) of every top-level block `name "label" { ... }`."""
    text = strip_alloy_comments(text)
    out, i = [], 0
    head = re.compile(r'\s*([a-z_][\w.]*)\s*(?:"([^"]*)")?\s*\{')
    while True:
        m = head.search(text, i)
        if not m:
            return out
        depth, j = 1, m.end()
        while j < len(text) and depth:
            if text[j] == '"':
                j = j + 1
                while text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
            elif text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        out.append((m.group(1), m.group(2) or "", text[m.end():j - 1]))
        i = j


def alloy_strings(body: str, attribute: str) -> list[str]:
    """The strings of `attribute = [...]` or `attribute = "..."` in a block body."""
    out = []
    for m in re.finditer(rf'\b{re.escape(attribute)}\s*=\s*(\[[^\]]*\]|"[^"]*")', body):
        out += re.findall(r'"([^"]*)"', m.group(1))
    return out


def alloy_refs(body: str, attribute: str) -> list[str]:
    """Component references of `attribute = [a.b.c.receiver, ...]` or `attribute = a.b.c.x`."""
    m = re.search(rf'\b{re.escape(attribute)}\s*=\s*(\[[^\]]*\]|[\w.]+)', body)
    return re.findall(r"[a-z_][\w]*(?:\.[\w]+)+", m.group(1)) if m else []


def inner_blocks(body: str, name: str) -> list[str]:
    return [b for n, _l, b in alloy_blocks(body) if n == name]


def alloy_label_problems(blocks: list[tuple[str, str, str]]) -> list[str]:
    """An Alloy config sends Loki exactly LOKI_LABELS: every source forwards to a
    loki.process of the config, each of which ends with a stage.label_keep of those labels
    and forwards to a loki.write; no stage or relabel rule makes another label."""
    p = []
    by_ref = {f"{n}.{label}": body for n, label, body in blocks}
    processes = {ref: body for ref, body in by_ref.items() if ref.startswith("loki.process.")}
    kept: set[str] = set()
    for ref, body in processes.items():
        keeps = inner_blocks(body, "stage.label_keep")
        if not keeps:
            p.append(f"{ref} has no stage.label_keep: any label a stage adds would reach Loki")
            continue
        last_stage = [n for n, _l, _b in alloy_blocks(body) if n.startswith("stage.")][-1]
        if last_stage != "stage.label_keep":
            p.append(f"{ref}: stage.label_keep is not its last stage")
        keep = set(alloy_strings(keeps[-1], "values"))
        if keep - LOKI_LABELS:
            p.append(f"{ref} keeps {sorted(keep - LOKI_LABELS)}, beyond {sorted(LOKI_LABELS)}")
        kept |= keep
        for labels in inner_blocks(body, "stage.labels"):
            made = set(re.findall(r"\b(\w+)\s*=", labels.split("{", 1)[-1]))
            if made - LOKI_LABELS:
                p.append(f"{ref} makes labels {sorted(made - LOKI_LABELS)}")
        for fwd in alloy_refs(body, "forward_to"):
            if not fwd.startswith("loki.write."):
                p.append(f"{ref} forwards to {fwd}, not a loki.write")
    if kept != LOKI_LABELS:
        p.append(f"the labels that reach Loki are {sorted(kept)}, expected {sorted(LOKI_LABELS)}")
    sources = {ref: body for ref, body in by_ref.items() if ref.startswith("loki.source.")}
    if not sources:
        p.append("no loki.source component")
    for ref, body in sources.items():
        for fwd in alloy_refs(body, "forward_to"):
            if not fwd.startswith("loki.process.") or fwd.rsplit(".", 1)[0] not in processes:
                p.append(f"{ref} forwards to {fwd}, not a loki.process of this config (labels unchecked)")
    for ref, body in by_ref.items():
        if ref.startswith("discovery.relabel."):
            for rule in inner_blocks(body, "rule"):
                for target in alloy_strings(rule, "target_label"):
                    if not target.startswith("__") and target not in LOKI_LABELS:
                        p.append(f"{ref} makes the label {target}")
    return p


class ObservabilityChecks:
    """Static's checks of the log pipeline and the uptime probes (uses self.r, self.routes,
    self.settings and the compose file self.compose)."""

    def observability_checks(self) -> None:
        if not self.compose:
            return
        services = self.compose["services"]

        def images_state_health() -> list[str]:
            p = []
            for name, svc in services.items():
                if svc.get("build"):
                    continue
                image = str(svc.get("image", ""))
                repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
                if not tag or tag in FLOATING_TAGS or not re.search(r"\d", tag):
                    p.append(f"{name}: image {image!r} is not pinned to a version")
                long_running = (svc.get("restart") or "no") != "no"
                if long_running and name not in NO_HEALTHCHECK:
                    hc = svc.get("healthcheck") or {}
                    if hc.get("disable") or not hc.get("test"):
                        p.append(f"{name}: no healthcheck")
                if not (svc.get("mem_limit") or (((svc.get("deploy") or {}).get("resources") or {}).get("limits"))):
                    p.append(f"{name}: no memory limit")
                try:
                    where = data_dir(name, svc)
                except KeyError:
                    p.append(f"{name}: where does it keep its data? (add it to deploycheck/observability.py data_dir)")
                    continue
                if where and not any(kind == "volume" and source in (self.compose.get("volumes") or {})
                                     and (where == target or where.startswith(target.rstrip("/") + "/"))
                                     for kind, source, target, _ro in mounts(svc)):
                    p.append(f"{name}: its data ({where}) is not on a named volume: `make down` would lose it")
            return p
        self.r.run("compose: every image is pinned to a version; every long-running service has a healthcheck "
                   f"(but {', '.join(sorted(NO_HEALTHCHECK))}), a memory limit and its data on a named volume",
                   images_state_health)

        self.r.run("compose: Alloy sends every container's lines to Loki with the labels "
                   + ", ".join(sorted(LOKI_LABELS)) + " only; the processes' JSON lines are marked for it",
                   lambda: self._alloy_problems(services))
        self.r.run("compose: Loki keeps its data on its volume, on the port Alloy and Grafana use",
                   lambda: self._loki_problems(services))
        self.r.run("compose: Grafana's Loki and Jaeger datasources link a log line to its trace (derived field) "
                   "and a span to its log lines (tracesToLogsV2)", self._datasource_problems)
        self._probe_checks(services)

    # -- Alloy
    def _alloy_problems(self, services: dict) -> list[str]:
        p = []
        alloy = services.get("alloy")
        if not alloy:
            return ["no alloy service"]
        cmd = alloy.get("command") or []
        words = cmd if isinstance(cmd, list) else str(cmd).split()
        config_arg = next((w for w in words[1:] if not w.startswith("-")), None)
        local = in_mount(alloy, ALLOY_DIR, config_arg or "")
        if not local or not local.is_file():
            return [f"alloy runs {config_arg!r}, which is not a file of the mounted monitoring/alloy"]
        if not any(target == "/var/run/docker.sock" and ro for _k, _s, target, ro in mounts(alloy)):
            p.append("alloy does not mount /var/run/docker.sock read-only")
        blocks = alloy_blocks(local.read_text())
        by_ref = {f"{n}.{label}": body for n, label, body in blocks}
        p += alloy_label_problems(blocks)
        # The JSON pipeline: the processes' lines, told apart by their container label.
        marker = "=".join(JSON_LOG_LABEL)
        filtered = [ref for ref, body in by_ref.items() if ref.startswith("discovery.docker.")
                    and any(marker in alloy_strings(f, "values") for f in inner_blocks(body, "filter"))]
        if not filtered:
            p.append(f"no discovery.docker filters on the container label {marker}")
        for binary in BINARIES:
            labels = services[binary].get("labels") or {}
            if isinstance(labels, list):
                labels = dict(x.split("=", 1) for x in labels)
            if str(labels.get(JSON_LOG_LABEL[0])) != JSON_LOG_LABEL[1]:
                p.append(f"{binary} lacks the container label {marker}: its level and environment would be lost")
        # Where the lines go.
        for ref, body in by_ref.items():
            if ref.startswith("loki.write."):
                for endpoint in inner_blocks(body, "endpoint"):
                    for url in alloy_strings(endpoint, "url"):
                        host, port = url_host_port(url)
                        if host != "loki" or "loki" not in services or port != self._loki_port():
                            p.append(f"{ref} pushes to {url}, not the loki service on {self._loki_port()}")
        if "loki" not in (alloy.get("depends_on") or {}):
            p.append("alloy does not start after loki")
        return p

    # -- Loki
    @staticmethod
    def _loki_port() -> int:
        return int(((yaml.safe_load(LOKI_CONFIG.read_text()) or {}).get("server") or {}).get("http_listen_port", 3100))

    def _loki_problems(self, services: dict) -> list[str]:
        p = []
        loki = services.get("loki")
        if not loki:
            return ["no loki service"]
        config = flag(loki.get("command") or [], "config.file")
        local = in_mount(loki, LOKI_CONFIG.parent, config or "")
        if not local or local.resolve() != LOKI_CONFIG.resolve():
            p.append(f"loki reads {config!r}, not the mounted monitoring/loki/loki.yml")
        cfg = yaml.safe_load(LOKI_CONFIG.read_text()) or {}
        if cfg.get("auth_enabled") is not False:
            p.append("auth_enabled is not false: Alloy and Grafana send no tenant")
        storage = ((cfg.get("common") or {}).get("storage") or {}).get("filesystem") or {}
        prefix = (cfg.get("common") or {}).get("path_prefix") or ""
        for key, path in storage.items():
            if not str(path).startswith(prefix.rstrip("/") + "/"):
                p.append(f"common.storage.filesystem.{key} {path} is outside path_prefix {prefix} (the volume)")
        limits = cfg.get("limits_config") or {}
        if not limits.get("retention_period") or not (cfg.get("compactor") or {}).get("retention_enabled"):
            p.append("no retention: the volume would grow without bound")
        test = " ".join((loki.get("healthcheck") or {}).get("test") or [])
        if f":{self._loki_port()}/ready" not in test:
            p.append(f"the healthcheck does not ask /ready on {self._loki_port()}")
        return p

    # -- Grafana datasources
    def _datasource_problems(self) -> list[str]:
        p = []
        doc = yaml.safe_load(DATASOURCES.read_text()) or {}
        by_type = {}
        for ds in doc.get("datasources") or []:
            by_type.setdefault(ds.get("type"), []).append(ds)
        lokis, jaegers = by_type.get("loki") or [], by_type.get("jaeger") or []
        if len(lokis) != 1 or len(jaegers) != 1:
            return [f"expected one Loki and one Jaeger datasource, found {len(lokis)} and {len(jaegers)}"]
        loki, jaeger = lokis[0], jaegers[0]
        host, port = url_host_port(loki.get("url", ""))
        if host != "loki" or port != self._loki_port():
            p.append(f"Loki datasource url {loki.get('url')} is not the loki service on {self._loki_port()}")
        # Grafana expands ${NAME} in provisioning files from its environment; its own
        # ${__...} variables must be written $${__...}, or they arrive empty.
        def strings(node):
            if isinstance(node, dict):
                for v in node.values():
                    yield from strings(v)
            elif isinstance(node, list):
                for v in node:
                    yield from strings(v)
            elif isinstance(node, str):
                yield node
        for value in strings(doc):
            for m in re.finditer(r"(?<!\$)\$\{(__[\w.]+)\}", value):
                p.append(f"{m.group(0)} in datasources.yml is expanded by Grafana at load (to nothing): "
                         f"write $${{{m.group(1)}}}")
        # A log line → its trace.
        fields = (loki.get("jsonData") or {}).get("derivedFields") or []
        to_jaeger = [f for f in fields if f.get("datasourceUid") == jaeger.get("uid")]
        if not to_jaeger:
            p.append("no derived field of the Loki datasource links to the Jaeger datasource")
        for f in to_jaeger:
            try:
                rx = re.compile(f.get("matcherRegex") or "")
                if rx.groups != 1:
                    p.append(f"derived field {f.get('name')}: the regex must capture the trace id in one group")
            except re.error as e:
                p.append(f"derived field {f.get('name')}: the regex does not compile: {e}")
            if f.get("matcherType", "regex") != "regex":
                p.append(f"derived field {f.get('name')}: matcherType is {f.get('matcherType')}, not regex")
            if f.get("url") != "$${__value.raw}":
                p.append(f"derived field {f.get('name')}: url {f.get('url')!r} is not the captured value ($${{__value.raw}})")
        # A span → its log lines.
        t2l = (jaeger.get("jsonData") or {}).get("tracesToLogsV2") or {}
        if t2l.get("datasourceUid") != loki.get("uid"):
            p.append(f"Jaeger tracesToLogsV2.datasourceUid is {t2l.get('datasourceUid')!r}, not the Loki datasource's uid")
        if t2l.get("customQuery"):
            query = str(t2l.get("query") or "")
            if "$${__trace.traceId}" not in query and "$${__span.traceId}" not in query:
                p.append(f"the span → logs query {query!r} does not filter on the trace id")
            sys.path.insert(0, str(ROOT / "scripts"))
            import metrics_referenced as mr  # noqa: PLC0415 - the monitoring helpers, shared
            used, problems = mr.logql_stream_labels(query.replace("$$", "$"))
            p += [f"span → logs query: {x}" for x in problems]
            if used - LOKI_LABELS:
                p.append(f"the span → logs query selects on {sorted(used - LOKI_LABELS)}, which are not Loki labels")
        elif not t2l.get("filterByTraceID"):
            p.append("tracesToLogsV2 neither filters by trace id nor has a custom query that does")
        return p

    # -- uptime probes
    def _probe_checks(self, services: dict) -> None:
        promtool = shutil.which("promtool")
        if self.r.check("prometheus: promtool is installed (the probe config is checked with it)", promtool is not None,
                        "run scripts/install-deploy-deps.sh"):
            res = sh([promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))])
            self.r.check("prometheus: `promtool check config monitoring/prometheus/prometheus.yml` passes (blackbox job included)",
                         res.returncode == 0, (res.stderr or res.stdout).strip()[-600:])
        exporter = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
        if self.r.check("prometheus: the blackbox exporter is installed (its config is checked with it)", exporter is not None,
                        "run scripts/install-deploy-deps.sh (Debian package prometheus-blackbox-exporter)"):
            res = sh([exporter, "--config.check", f"--config.file={BLACKBOX_CONFIG.relative_to(ROOT)}"])
            self.r.check("prometheus: `blackbox_exporter --config.check` accepts monitoring/blackbox/blackbox.yml",
                         res.returncode == 0, (res.stderr or res.stdout).strip()[-600:])
        self.r.run("prometheus: the blackbox job probes the gateway's public routes (paths it serves, its compose "
                   "host and port) through the blackbox-exporter service, with a module blackbox.yml defines",
                   lambda: self._probe_problems(services))

    def probe_job(self) -> dict | None:
        cfg = yaml.safe_load(PROMETHEUS_CONFIG.read_text()) or {}
        return next((j for j in cfg.get("scrape_configs") or [] if j.get("metrics_path") == "/probe"), None)

    def probe_paths_ok(self, urls: list[str]) -> list[str]:
        """Problems with the paths of probed gateway URLs: each must be a route the gateway
        answers without credentials (its health routes, or an API GET without an id)."""
        p = []
        public = self.routes.gateway_api | self.routes.gateway_public_get
        for url in urls:
            path = re.sub(r"^https?://[^/]+", "", url).split("?")[0] or "/"
            if path not in public:
                p.append(f"{url}: {path} is not a route the gateway answers without credentials ({sorted(public)})")
        return p

    def _probe_problems(self, services: dict) -> list[str]:
        p = []
        job = self.probe_job()
        if not job:
            return ["no scrape job with metrics_path /probe in monitoring/prometheus/prometheus.yml"]
        bb = services.get("blackbox-exporter")
        if not bb:
            return ["no blackbox-exporter service"]
        config = flag(bb.get("command") or [], "config.file")
        local = in_mount(bb, BLACKBOX_CONFIG.parent, config or "")
        if not local or local.resolve() != BLACKBOX_CONFIG.resolve():
            p.append(f"blackbox-exporter reads {config!r}, not the mounted monitoring/blackbox/blackbox.yml")
        listen = flag(bb.get("command") or [], "web.listen-address") or ":9115"
        bb_port = int(listen.rsplit(":", 1)[1])
        modules = set(((yaml.safe_load(BLACKBOX_CONFIG.read_text()) or {}).get("modules") or {}))
        for m in (job.get("params") or {}).get("module") or ["(none)"]:
            if m not in modules:
                p.append(f"module {m} is not in monitoring/blackbox/blackbox.yml ({sorted(modules)})")
        address = [r.get("replacement") for r in job.get("relabel_configs") or [] if r.get("target_label") == "__address__"]
        if address != [f"blackbox-exporter:{bb_port}"]:
            p.append(f"scrapes go to {address}, not blackbox-exporter:{bb_port}")
        gateway_env = {k: str(v) for k, v in (services["gateway"].get("environment") or {}).items()}
        api_port = self.settings.port("gateway", "port", gateway_env)
        urls = []
        for sc in job.get("static_configs") or []:
            for url in sc.get("targets") or []:
                urls.append(url)
                host, port = url_host_port(url)
                if (host, port) != ("gateway", api_port):
                    p.append(f"{url}: not the gateway's compose service on its API port {api_port}")
            labels = sc.get("labels") or {}
            if labels.get("probed_service") != "gateway" or labels.get("service") in BINARIES:
                p.append(f"labels {labels}: expected service of the exporter and probed_service=gateway")
        p += self.probe_paths_ok(urls)
        if not any("/health" == re.sub(r"^https?://[^/]+", "", u) for u in urls) or \
                not any(re.sub(r"^https?://[^/]+", "", u).startswith("/api/") for u in urls):
            p.append(f"probes {urls}: expected the public /health and one public API route")
        return p
