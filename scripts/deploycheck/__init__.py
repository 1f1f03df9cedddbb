"""The checks behind scripts/check-deploy.py, by what they check.

    common.py         paths, PyYAML, small helpers (subprocess, URLs, merging, units)
    report.py         Report: the `ok`/`FAIL` lines and the `deploy: N passed, M failed` total
    settings.py       what each binary reads: Settings structs + TOML defaults, shared keys
    routes.py         what each kind of port serves, read from the Rust code
    media.py          the programs a process runs (ffprobe, ffmpeg) and the temp space it needs,
                      from its settings; checks of compose's and a pod's writable temp dir
    static.py         Static: runs the offline checks in order (plus the code-model checks)
    compose.py        docker-compose.yml
    observability.py  compose's log pipeline (Loki, Alloy) and uptime probes (blackbox exporter):
                      pinned images, healthchecks, volumes, labels, datasources, the probe job
    dockerfile.py     deploy/docker/Dockerfile (parser, hadolint fallback, checks)
    helm.py           rendering and linting the chart with Helm's library (fake Kubernetes API)
    chart.py          the chart: lint, schema, render scenarios, ingress hops, monitoring, rules
    chart_objects.py  each rendered process: Deployment, probes, env, security, shutdown, Service
    netpol.py         the rendered NetworkPolicies, as a cluster enforces them
    docs.py           docs/deploy.md
    live.py           --live: probes and `<binary> healthcheck` against a running stack
"""
