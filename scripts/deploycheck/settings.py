"""What each binary reads, from the code: the Settings structs (crates/*/src) and their
defaults (crates/platform/config/shared-defaults.toml, crates/<binary>/config/default.toml),
and the rules every deployment of those settings must follow."""

from __future__ import annotations

import copy
import re
import tomllib

from .common import BINARIES, ROOT


def rust_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in ROOT.glob("crates/*/src/**/*.rs")}


SERDE_DEFAULT = re.compile(r"#\[serde\([^)]*\bdefault\b")


def rust_structs(sources: dict[str, str]) -> dict[str, dict]:
    """`pub struct Name { pub field: Type, ... }` → {Name: {fields: {field: Type}, default: bool,
    field_defaults: {field, ...}}}: `default` for `#[serde(default)]` on the struct (every
    missing field takes the struct's Default), `field_defaults` for it on a field. A
    path-qualified type (`crate::breaker::BreakerSettings`) is named by its last segment."""
    structs = {}
    for path, text in sources.items():
        for m in re.finditer(r"((?:#\[[^\]]*\]\s*)*)pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
            attrs, name, body = m.group(1), m.group(2), m.group(3)
            fields, field_defaults = {}, set()
            for f in re.finditer(r"((?:^\s*#\[[^\]]*\]\s*\n)*)^\s*pub (\w+):\s*([\w:<>]+)", body, re.M):
                field_attrs, field, rust_type = f.group(1), f.group(2), f.group(3)
                if "<" not in rust_type:
                    rust_type = rust_type.rsplit("::", 1)[-1]
                fields[field] = rust_type
                if SERDE_DEFAULT.search(field_attrs):
                    field_defaults.add(field)
            structs[name] = {"fields": fields, "default": bool(SERDE_DEFAULT.search(attrs)),
                             "field_defaults": field_defaults, "path": path}
    return structs


class Settings:
    """What each binary reads: sections → keys → default value and Rust type."""

    def __init__(self) -> None:
        sources = rust_sources()
        all_structs = rust_structs(sources)
        self.problems: list[str] = []
        shared = tomllib.loads((ROOT / "crates/platform/config/shared-defaults.toml").read_text())
        self.defaults: dict[str, dict] = {}
        self.schema: dict[str, dict[str, dict[str, str]]] = {}
        for binary in BINARIES:
            crate = ROOT / "crates" / binary
            if not (crate / "src/main.rs").exists():
                self.problems.append(f"crates/{binary}/src/main.rs missing: binary {binary} is not crate {binary}")
                continue
            # Two crates may define a struct of the same name (the gateway's and
            # video-service's UploadSettings): the binary's own crate's wins.
            structs = {**all_structs, **rust_structs(
                {p: t for p, t in sources.items() if p.startswith(f"crates/{binary}/src/")})}
            own = tomllib.loads((crate / "config/default.toml").read_text())
            merged = copy.deepcopy(shared)
            for section, keys in own.items():
                merged.setdefault(section, {}).update(keys)
            self.defaults[binary] = merged
            settings_struct = self._settings_struct(binary, sources, structs)
            sections = {}
            for section, type_name in structs[settings_struct]["fields"].items():
                if type_name not in structs:
                    self.problems.append(f"{binary}: section type {type_name} not found")
                    continue
                sections[section] = self._flatten(type_name, structs)
                for key in sections[section]:
                    node = merged.get(section, {})
                    for part in key.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    if node is None and not self._serde_default(type_name, key, structs):
                        self.problems.append(f"{binary}: {section}.{key} has no default")
            self.schema[binary] = sections

    @classmethod
    def _flatten(cls, type_name: str, structs: dict, depth: int = 0) -> dict[str, str]:
        """Fields of a settings struct, nested structs as dotted keys: {"login.per_minute": "u32"}."""
        out = {}
        for field, rust_type in structs[type_name]["fields"].items():
            if rust_type in structs and depth < 4:
                for sub, sub_type in cls._flatten(rust_type, structs, depth + 1).items():
                    out[f"{field}.{sub}"] = sub_type
            else:
                out[field] = rust_type
        return out

    @staticmethod
    def _serde_default(type_name: str, key: str, structs: dict) -> bool:
        """Whether serde fills `key` (dotted) of `type_name` when the config leaves it out: a
        `#[serde(default)]` on a struct along the path or on a field along it."""
        for part in key.split("."):
            st = structs.get(type_name)
            if st is None:
                return False
            if st["default"] or part in st.get("field_defaults", ()):
                return True
            type_name = st["fields"].get(part, "")
        return False

    @staticmethod
    def _settings_struct(binary: str, sources: dict[str, str], structs: dict) -> str:
        crate_src = {p: t for p, t in sources.items() if p.startswith(f"crates/{binary}/src/")}
        for path, text in crate_src.items():
            # `grpc_service!` declares `Settings`: server, database, telemetry and its own.
            m = re.search(r"grpc_service!\s*\{.*?\bsettings\s*\{([^}]*)\}", text, re.S)
            if m:
                fields = {"server": "ServerSettings", "database": "DatabaseSettings",
                          "telemetry": "TelemetrySettings"}
                fields.update(dict(re.findall(r"(\w+)\s*:\s*([\w:<>]+)", m.group(1))))
                name = f"Settings@{binary}"
                structs[name] = {"fields": fields, "default": False, "path": path}
                return name
        for text in crate_src.values():
            # `pub type Settings = X;`.
            m = re.search(r"(?:pub )?type Settings\s*=\s*(?:[\w:]+::)?(\w+)\s*;", text) or \
                re.search(r"grpc_service!\s*\{[^}]*?\bsettings\s+(?:[\w:]+::)?(\w+)", text, re.S)
            if m and m.group(1) != "Settings":
                return m.group(1)
        for path in crate_src:
            if structs.get("Settings", {}).get("path") == path:
                return "Settings"
        # Several crates define `Settings`: look in this crate's files directly.
        for path, text in crate_src.items():
            if re.search(r"pub struct Settings\s*\{", text):
                body = re.search(r"pub struct Settings\s*\{(.*?)\n\}", text, re.S).group(1)
                name = f"Settings@{binary}"
                structs[name] = {"fields": dict(re.findall(r"^\s*pub (\w+):\s*([\w:<>]+)", body, re.M)),
                                 "default": False, "path": path}
                return name
        raise RuntimeError(f"no Settings for {binary}")

    def env_names(self, binary: str) -> dict[str, tuple[str, str, str]]:
        """SOCIALFLOW__SECTION__KEY → (section, key, Rust type) for everything `binary` reads."""
        out = {}
        for section, fields in self.schema[binary].items():
            for key, rust_type in fields.items():
                out[f"SOCIALFLOW__{section.upper()}__{key.upper().replace('.', '__')}"] = (section, key, rust_type)
        return out

    def effective(self, binary: str, env: dict[str, str]) -> dict[str, dict]:
        """Defaults overridden by SOCIALFLOW__ variables, as the binary's loader does."""
        merged = copy.deepcopy(self.defaults[binary])
        names = self.env_names(binary)
        for name, value in env.items():
            if name in names:
                section, key, _ = names[name]
                node = merged.setdefault(section, {})
                *parents, leaf = key.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
        return merged

    def port(self, binary: str, which: str, env: dict[str, str] | None = None) -> int:
        return int(self.effective(binary, env or {})["server"][which])


def type_problem(rust_type: str, value: str) -> str | None:
    if rust_type in ("u16", "u32", "u64", "usize", "i32", "i64"):
        if not re.fullmatch(r"\d+", str(value)):
            return f"`{value}` is not an integer ({rust_type})"
        if rust_type == "u16" and int(value) > 65535:
            return f"`{value}` exceeds u16"
    if rust_type == "bool" and str(value).lower() not in ("true", "false"):
        return f"`{value}` is not true/false"
    if rust_type in ("f32", "f64"):
        try:
            float(value)
        except ValueError:
            return f"`{value}` is not a number ({rust_type})"
    return None


# Settings that say where something is or hold a credential: a deployment must set them,
# as the defaults point at localhost (or are development values).
CONNECTION_KEYS = {"server": ["host", "port", "admin_port"], "database": ["url"], "redis": ["url"],
                   "s3": ["endpoint", "access_key", "secret_key"], "auth": ["jwt_secret", "internal_token_secret"],
                   "services": None, "engagement": ["url"], "users": ["url"], "videos": ["url"]}
# HMAC keys one process signs with and others verify with: every process reading one must get
# the same value, at least 32 bytes, and never the built-in development default (the binaries
# refuse it unless auth.allow_development_key, which no deployment may set).
SHARED_KEYS = ["jwt_secret", "internal_token_secret"]
# Every process verifies the internal identity token (docs/architecture.md, "Identity and trust").
EVERY_PROCESS_READS = [("auth", "internal_token_secret"), ("auth", "allow_development_key")]
# gRPC calls the code does not configure yet but the architecture has: the NetworkPolicy lets
# them through already. None today: payments-service's calls to video-service and
# engagement-service (payouts, ad revenue) are configured (`videos.url`, `engagement.url`).
PLANNED_CALLS: set[tuple[str, str]] = set()
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Numeric settings a deployment must keep within bounds (inclusive; None: unbounded), where
# the binary would refuse to start or silently use another value (`x.max(1)`): (section, key)
# → (low, high, why). Checked wherever the binary reads the section.
SETTING_BOUNDS = {
    ("grpc_client", "timeout_ms"): (1, None, "the binary refuses 0"),
    # payments-service (crates/payments-service/src/lib.rs and app.rs).
    ("provider", "timeout_ms"): (1, None, "0 is taken as 1 ms: every charge would time out"),
    ("provider", "attempts"): (1, None, "0 is taken as 1"),
    ("subscriptions", "renew_interval_secs"): (1, None, "0 is taken as 1 s"),
    ("payouts", "period_secs"): (1, None, "0 is taken as 1 s: a payout period every second"),
    ("payouts", "creator_share_bps"): (0, 10_000, "basis points of the revenue: at most 10000 (100%)"),
    ("payouts", "min_payout_minor"): (1, None, "0 and below are taken as 1"),
    ("ledger", "idempotency_retention_hours"): (1, None, "0 and below are taken as 1 hour"),
    ("ledger", "check_interval_secs"): (1, None, "0 is taken as 1 s"),
}


def shared_key_problems(s: "Settings", envs: dict[str, dict[str, str]]) -> list[str]:
    """SHARED_KEYS in a deployment whose env holds the values themselves (compose)."""
    p = []
    for key in SHARED_KEYS:
        name = f"SOCIALFLOW__AUTH__{key.upper()}"
        readers = [b for b in BINARIES if key in s.schema[b].get("auth", {})]
        values = {}
        for b in readers:
            value = str(s.effective(b, envs[b])["auth"].get(key, ""))
            values[b] = value
            if name not in envs[b]:
                p.append(f"{b}: auth.{key} left to the built-in development default")
            elif value == str(s.defaults[b].get("auth", {}).get(key)):
                p.append(f"{b}: auth.{key} is the built-in development default")
            if len(value.encode()) < 32:
                p.append(f"{b}: auth.{key} shorter than 32 bytes")
        if len(set(values.values())) > 1:
            p.append(f"auth.{key} differs between {readers}")
    return p


def deployment_problems(binary: str, eff: dict) -> list[str]:
    """What no deployment of a process may have, whatever its other settings."""
    p = []
    if str(eff["server"]["host"]) in LOOPBACK:
        p.append(f"{binary}: server.host {eff['server']['host']} is unreachable from other pods/containers (set 0.0.0.0)")
    if str((eff.get("auth") or {}).get("allow_development_key", "false")).lower() == "true":
        p.append(f"{binary}: auth.allow_development_key is true (built-in development keys accepted)")
    for (section, key), (low, high, why) in SETTING_BOUNDS.items():
        value = (eff.get(section) or {}).get(key)
        if value is None:
            continue
        try:
            number = int(str(value))
        except ValueError:
            continue  # type_problem reports it
        if (low is not None and number < low) or (high is not None and number > high):
            p.append(f"{binary}: {section}.{key} = {number}: {why}")
    return p


def required_env(settings: "Settings", binary: str) -> list[str]:
    out = []
    for section, fields in settings.schema[binary].items():
        if section in CONNECTION_KEYS:
            for key in CONNECTION_KEYS[section] or list(fields):
                if key in fields:
                    out.append(f"SOCIALFLOW__{section.upper()}__{key.upper()}")
    return out


def grpc_urls(s, binary, eff):
    """setting key -> (target process, URL) for every gRPC address `binary` is given."""
    urls = {}
    if "services" in s.schema[binary]:
        urls.update({f"services.{k}": (f"{k}-service", v) for k, v in eff["services"].items()})
    # One section per peer, its `url` the peer's gRPC address (engagement-service's
    # `users` and `videos`, video-service's `engagement`, payments-service's `videos` and
    # `engagement`).
    for section, target in (("engagement", "engagement-service"), ("users", "user-service"),
                            ("videos", "video-service")):
        if section in s.schema[binary]:
            urls[f"{section}.url"] = (target, eff[section]["url"])
    return urls
