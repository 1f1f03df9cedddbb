"""deploy/docker/Dockerfile: a parser for it, the hadolint rules used when hadolint is not
installed, and the checks of each process's target and of the build."""

from __future__ import annotations

import json
import re
import shutil
import sysconfig
from pathlib import Path

from .common import BINARIES, CHART, DOCKERFILE, ROOT, sh, yaml
from .media import child_tools, debian_version


class Dockerfile:
    def __init__(self, path: Path) -> None:
        text = path.read_text()
        # Join continuation lines, drop comments.
        lines, buf = [], ""
        for raw in text.splitlines():
            if raw.strip().startswith("#") and not buf:
                continue
            if raw.rstrip().endswith("\\"):
                buf += raw.rstrip()[:-1] + " "
                continue
            lines.append((buf + raw).strip())
            buf = ""
        self.stages: dict[str, dict] = {}
        self.order: list[str] = []
        # ARGs before the first FROM (usable in FROM lines): name -> default.
        self.args: dict[str, str] = {}
        current = None
        for line in filter(None, lines):
            word, _, rest = line.partition(" ")
            word = word.upper()
            if word == "ARG" and current is None:
                name, _, default = rest.strip().partition("=")
                self.args[name] = default.strip('"')
            elif word == "FROM":
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
                current = (m.group(2) or f"stage{len(self.order)}").lower()
                self.stages[current] = {"from": m.group(1), "instructions": []}
                self.order.append(current)
            elif current:
                self.stages[current]["instructions"].append((word, rest.strip()))

    def chain(self, stage: str) -> list[str]:
        """The stage and the stages it is built FROM, nearest first."""
        out = [stage]
        while self.stages[out[-1]]["from"].lower() in self.stages:
            out.append(self.stages[out[-1]]["from"].lower())
        return out

    def effective(self, stage: str, word: str) -> list[str]:
        """All arguments of instruction `word` that apply to `stage` (inherited ones first)."""
        out = []
        for s in reversed(self.chain(stage)):
            out += [rest for w, rest in self.stages[s]["instructions"] if w == word]
        return out

    def last(self, stage: str, word: str) -> str | None:
        found = self.effective(stage, word)
        return found[-1] if found else None

    def base(self, stage: str) -> str:
        """The external image a stage is built on, global ARGs substituted."""
        image = self.stages[self.chain(stage)[-1]]["from"]
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args.get(m.group(1), m.group(0)), image)

    def label_keys(self, stage: str) -> set[str]:
        return {k for rest in self.effective(stage, "LABEL") for k in re.findall(r"([\w.-]+)=", rest)}


def hadolint_fallback(path: Path) -> list[str]:
    """Used only when hadolint can't be had: the hadolint rules that matter for this file."""
    df = Dockerfile(path)
    problems = []
    for name in df.order:
        base = df.stages[name]["from"]
        if base.lower() not in df.stages and (":" not in base or base.endswith(":latest")):
            problems.append(f"DL3006/DL3007: stage {name} FROM {base} is not pinned to a tag")
        for word, rest in df.stages[name]["instructions"]:
            if word == "ADD" and re.search(r"https?://", rest):
                problems.append(f"DL3020: ADD of a URL in {name}")
            if word == "RUN" and "apt-get install" in rest and "--no-install-recommends" not in rest:
                problems.append(f"DL3015: apt-get install without --no-install-recommends in {name}")
            if word == "RUN" and re.search(r"\bsudo\b", rest):
                problems.append(f"DL3004: sudo in {name}")
            if word == "WORKDIR" and not rest.startswith(("/", "$")):
                problems.append(f"DL3000: relative WORKDIR in {name}")
            if word in ("CMD", "ENTRYPOINT") and not rest.startswith("["):
                problems.append(f"DL3025: {word} not in JSON form in {name}")
    return problems


class DockerfileChecks:
    """Static's Dockerfile checks (uses self.r, self.settings, self.routes)."""

    def dockerfile_checks(self) -> None:
        # pip puts it next to the interpreter's scripts (a pyenv shim may not exist yet).
        hadolint = shutil.which("hadolint") or next(
            (str(p) for p in [Path(sysconfig.get_path("scripts")) / "hadolint"] if p.exists()), None)
        if hadolint:
            out = sh([hadolint, str(DOCKERFILE)])
            self.r.check("dockerfile: hadolint passes", out.returncode == 0, (out.stdout + out.stderr).strip()[:800])
        else:
            self.r.run("dockerfile: lint (hadolint not installed: built-in subset of its rules)",
                       lambda: hadolint_fallback(DOCKERFILE))
        df = Dockerfile(DOCKERFILE)
        s, rt = self.settings, self.routes

        def per_binary(binary: str) -> list[str]:
            p = []
            if binary not in df.stages:
                return [f"no stage (target) named {binary}"]
            copies = df.effective(binary, "COPY")
            path = f"/usr/local/bin/{binary}"
            if not any(c.startswith("--from=") and c.split()[-1] == path and Path(c.split()[-2]).name == binary for c in copies):
                p.append(f"does not COPY the {binary} binary to {path}")
            others = [b for b in BINARIES if b != binary and any(c.split()[-1].endswith("/" + b) for c in copies)]
            if others:
                p.append(f"also holds {others}")
            ep = json.loads(df.last(binary, "ENTRYPOINT") or "null")
            if ep != [path]:
                p.append(f"ENTRYPOINT {ep}, expected [{path!r}]")
            hc = df.last(binary, "HEALTHCHECK") or ""
            m = re.search(r"CMD\s+(\[.*\])", hc)
            if not m or json.loads(m.group(1)) != [path, "healthcheck"]:
                p.append(f"HEALTHCHECK is {hc!r}, expected CMD [\"{path}\", \"healthcheck\"]")
            exposed = {int(x.split("/")[0]) for e in df.effective(binary, "EXPOSE") for x in e.split()}
            want = {s.port(binary, "port"), s.port(binary, "admin_port")}
            if exposed != want:
                p.append(f"EXPOSE {sorted(exposed)}, the binary listens on {sorted(want)}")
            user = df.last(binary, "USER")
            if not user or user.split(":")[0] in ("0", "root") or not user.split(":")[0].isdigit():
                p.append(f"USER {user!r}: must be a numeric non-root uid (Kubernetes runAsNonRoot verifies it)")
            labels = " ".join(df.effective(binary, "LABEL"))
            for label in ("org.opencontainers.image.version", "org.opencontainers.image.source",
                          "org.opencontainers.image.revision", "org.opencontainers.image.title"):
                if label not in labels:
                    p.append(f"no {label} label")
            runtime_base = df.stages[df.chain(binary)[-1]]["from"]
            if re.match(r"(rust|debian|ubuntu)(:|$)", runtime_base) and "slim" not in runtime_base:
                p.append(f"runtime image {runtime_base} is not small")
            return p

        for binary in BINARIES:
            self.r.run(f"dockerfile: target {binary}: one binary, non-root, HEALTHCHECK via `{binary} healthcheck`, ports, labels",
                       lambda b=binary: per_binary(b))

        # Runtimes: distroless, but for a process that runs programs (child_tools, from its
        # Settings): Debian slim with their package. Every runtime on the builder's Debian
        # release (the binaries are linked against its glibc) and as the chart's runAsUser.
        builders = [st for st in df.order
                    if any(w == "RUN" and "cargo build" in r for w, r in df.stages[st]["instructions"])]
        uid = str(yaml.safe_load((CHART / "values.yaml").read_text())["securityContext"]["runAsUser"])

        def runtime(binary: str) -> list[str]:
            if binary not in df.stages:
                return [f"no stage (target) named {binary}"]
            p = []
            base = df.base(binary)
            build = {df.base(b) for b in builders}
            want = {debian_version(b) for b in build}
            if len(want) != 1 or None in want:
                p.append(f"cannot tell the builder's Debian release from {sorted(build)}")
            elif debian_version(base) != next(iter(want)):
                p.append(f"runtime {base} is Debian {debian_version(base)}, the builder {sorted(build)} Debian "
                         f"{next(iter(want))}: the binary needs the glibc it was linked against")
            user = (df.last(binary, "USER") or "").split(":")
            if user[0] != uid or (len(user) > 1 and user[1] != uid):
                p.append(f"USER {':'.join(user)!r}, the chart runs it as {uid}:{uid} (securityContext.runAsUser)")
            tools = child_tools(s, binary)
            runs = " ".join(r for st in df.chain(binary) for w, r in df.stages[st]["instructions"] if w == "RUN")
            if not tools:
                if not base.startswith("gcr.io/distroless/"):
                    p.append(f"runtime {base}: a process that runs no other program stays on distroless")
                return p
            shared = df.chain(next(b for b in BINARIES if b in df.stages and not child_tools(s, b)))[-1]
            if not re.match(r"debian:[\w.-]*slim", base):
                p.append(f"runtime {base}: runs {sorted(tools)}, so it needs a Debian slim base to install them on")
            packages = set()
            for cmd in re.split(r"&&|;", runs):
                if "apt-get install" in cmd:
                    if "--no-install-recommends" not in cmd:
                        p.append(f"`{cmd.strip()}` without --no-install-recommends")
                    packages |= {w.split("=")[0] for w in cmd.split("install", 1)[1].split() if not w.startswith("-")}
            for setting, package in sorted(tools.items()):
                if package not in packages:
                    p.append(f"{setting} names a program of Debian's {package} package, which is not installed")
            if packages and "ca-certificates" not in packages:
                p.append("no ca-certificates (distroless has them; the binary's TLS reads the system roots)")
            if packages and not re.search(r"rm -rf /var/lib/apt/lists", runs):
                p.append("the apt lists stay in the image (rm -rf /var/lib/apt/lists/*)")
            if not re.search(rf"(useradd|adduser)\b[^&;]*--uid {uid}\b", runs):
                p.append(f"no user {uid} created (distroless has `nonroot` {uid} in /etc/passwd)")
            for word in ("WORKDIR", "STOPSIGNAL"):
                if df.last(binary, word) != df.last(shared, word):
                    p.append(f"{word} {df.last(binary, word)!r}, the shared runtime {shared} has {df.last(shared, word)!r}")
            if df.label_keys(binary) - {"org.opencontainers.image.title", "org.opencontainers.image.description"} \
                    != df.label_keys(shared):
                p.append(f"labels {sorted(df.label_keys(binary))} differ from the shared runtime's {sorted(df.label_keys(shared))}")
            return p

        for binary in BINARIES:
            tools = child_tools(s, binary)
            what = "distroless"
            if tools:
                what = (f"Debian slim with {', '.join(sorted(set(tools.values())))} (for {', '.join(sorted(tools))}) "
                        "and the shared runtime's labels, WORKDIR, STOPSIGNAL")
            self.r.run(f"dockerfile: target {binary}: runtime is {what}; the builder's Debian release; uid {uid}",
                       lambda b=binary: runtime(b))

        def build() -> list[str]:
            p = []
            runs = " ".join(r for st in df.order for w, r in df.stages[st]["instructions"] if w == "RUN")
            if "cargo chef prepare" not in runs or "cargo chef cook" not in runs:
                p.append("no cargo-chef dependency caching")
            if rt.healthcheck_path is None:
                p.append("the binaries have no healthcheck subcommand")
            ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                      if line.strip() and not line.strip().startswith("#")] if (ROOT / ".dockerignore").exists() else []
            if not ignore:
                p.append("no .dockerignore")
            elif ignore[0] == "*":
                allowed = {x[1:].rstrip("/") for x in ignore if x.startswith("!")}
                for need in ("Cargo.toml", "Cargo.lock", "crates", "proto"):
                    if need not in allowed:
                        p.append(f".dockerignore leaves out {need}, which the build needs")
            else:
                for need in ("target", ".git"):
                    if not any(x.strip("/") == need for x in ignore):
                        p.append(f".dockerignore does not exclude {need}/")
            # Nothing the build reads may live outside crates/ and proto/.
            for path in ROOT.glob("crates/*/build.rs"):
                for rel in re.findall(r'join\("([^"]+)"\)', path.read_text()):
                    target = (path.parent / rel).resolve()
                    if not any(target.is_relative_to(ROOT / d) for d in ("crates", "proto")):
                        p.append(f"{path.relative_to(ROOT)} reads {rel}, outside the build context")
            return p
        self.r.run("dockerfile: multi-stage with cargo-chef caching, .dockerignore keeps the context to the build inputs", build)
