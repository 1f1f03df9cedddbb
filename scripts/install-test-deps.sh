#!/usr/bin/env bash
# Installs what the tests need beyond Postgres and Redis (which the machine runs):
#   - s3s-fs, an S3-compatible server (tests start one per test; `make run` one per stack)
#   - Prometheus and Alertmanager (Debian packages `prometheus`, `prometheus-alertmanager`):
#     promtool and amtool check the monitoring config and /metrics; the alert drill runs both
#   - ffmpeg and ffprobe (Debian package `ffmpeg`): video-service's processing, and the
#     upload tests' sample videos
#   - redis-server (Debian package `redis-server`): the engagement test kills and restarts a
#     Redis of its own to show counted views survive it
#   - the blackbox exporter (Debian package `prometheus-blackbox-exporter`): checks
#     monitoring/blackbox/blackbox.yml, and the alert drill probes the gateway with it
# Idempotent: anything already installed is left alone.
set -euo pipefail

S3S_VERSION=0.14.1

log() { printf '==> %s\n' "$*"; }

if command -v s3s-fs >/dev/null 2>&1; then
  log "s3s-fs present: $(command -v s3s-fs)"
else
  log "installing s3s-fs ${S3S_VERSION} (cargo install, a few minutes on 2 cores)"
  cargo install s3s-fs --version "${S3S_VERSION}" --locked --features binary
fi

pkgs=()
command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
command -v amtool >/dev/null 2>&1 || pkgs+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || pkgs+=(prometheus-blackbox-exporter)
# video-service probes uploads and draws thumbnails with them; the upload tests make videos.
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || pkgs+=(ffmpeg)
# The engagement test restarts a Redis of its own (the machine's is shared by every test).
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
if [ "${#pkgs[@]}" -eq 0 ]; then
  log "promtool, amtool and the blackbox exporter present"
else
  log "installing ${pkgs[*]} (Prometheus, promtool, Alertmanager, amtool, blackbox exporter)"
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # The packages start daemons where systemd runs; the alert drill starts its own.
  $SUDO systemctl stop prometheus prometheus-alertmanager prometheus-blackbox-exporter 2>/dev/null || true
fi

for tool in psql redis-cli curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "warning: $tool not found; scripts/dev-stack.sh and scripts/smoke-run.sh use it"
  fi
done
"$(dirname "$0")/install-deploy-deps.sh"
log "test dependencies ready"
