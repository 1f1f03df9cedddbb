"""Which HTTP paths each kind of port serves, read from the Rust code."""

from __future__ import annotations

import re

from .common import ROOT


class Routes:
    """Which paths each kind of port serves, read from the code."""

    def __init__(self) -> None:
        admin = (ROOT / "crates/platform/src/admin.rs").read_text()
        health_fn = re.search(r"pub fn health_routes\(.*?\n\}", admin, re.S).group(0)
        self.health = set(re.findall(r'\.route\("([^"]+)"', health_fn))
        start = re.search(r"pub fn start\(.*?\n    \}", admin, re.S).group(0)
        self.admin = set(re.findall(r'\.route\("([^"]+)"', start))
        if "configure(health_routes)" in start:
            self.admin |= self.health
        public_fn = re.search(r"pub fn public_health_routes\(.*?\n\}", admin, re.S).group(0)
        public = set(re.findall(r'\.route\("([^"]+)"', public_fn))
        gateway = (ROOT / "crates/gateway/src/lib.rs").read_text()
        # The gateway's public port serves the health routes with the public detailed report.
        if "configure(public_health_routes)" in gateway:
            self.gateway_api = public
        elif "configure(health_routes)" in gateway:
            self.gateway_api = set(self.health)
        else:
            self.gateway_api = set()
        # The REST routes a client may GET without credentials and without an id: what an
        # uptime probe may ask for (crates/gateway/src/routes/mod.rs; /me needs a token).
        api = (ROOT / "crates/gateway/src/routes/mod.rs").read_text()
        scope = re.search(r'web::scope\("([^"]+)"\)', api)
        self.gateway_public_get = {
            (scope.group(1) if scope else "") + path
            for path, methods in re.findall(r'resource!\("([^"]+)"((?:,\s*\w+\s*=>\s*[\w:]+)+)\)', api)
            if re.search(r"\bget\s*=>", methods) and "{" not in path and path != "/me"
        }
        service = (ROOT / "crates/platform/src/service.rs").read_text()
        self.grpc_health = "tonic_health::server::health_reporter" in service
        process = (ROOT / "crates/platform/src/process.rs").read_text()
        m = re.search(r'GET (\S+) HTTP/1\.[01]', process)
        self.healthcheck_path = m.group(1) if m and '"healthcheck"' in process else None
        self.healthcheck_uses_admin_port = "server.admin_port" in process

    def served(self, binary: str, port_kind: str) -> set[str]:
        """port_kind: admin | api. The set of HTTP paths served there."""
        if port_kind == "admin":
            return self.admin
        return self.gateway_api if binary == "gateway" else set()
