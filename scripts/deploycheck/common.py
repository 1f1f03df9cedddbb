"""Paths, PyYAML and small helpers every check module uses."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
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

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failed check
    yaml = None


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


def clean_env() -> dict[str, str]:
    """The environment without our own variables, so compose interpolation uses its defaults."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SOCIALFLOW", "SF_", "GRAFANA_", "COMPOSE_"))}


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
