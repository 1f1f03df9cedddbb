"""docs/deploy.md: every command in it is one the repo supports."""

from __future__ import annotations

import re
import shlex

from .common import CHART, DEPLOY_DOC, DOCKERFILE, ROOT, yaml
from .dockerfile import Dockerfile


class DocsChecks:
    """Static's docs/deploy.md checks (uses self.r and the compose file self.compose read)."""

    def docs_checks(self) -> None:
        if not self.r.check("docs: docs/deploy.md exists", DEPLOY_DOC.exists()):
            return
        text = DEPLOY_DOC.read_text()
        makefile = (ROOT / "Makefile").read_text()
        make_targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
        df = Dockerfile(DOCKERFILE)
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        compose_services = set((self.compose or {}).get("services", {}))
        compose_profiles = {pr for v in (self.compose or {}).get("services", {}).values() for pr in v.get("profiles") or []}

        commands = []
        fence, lang, block = None, "", []
        for line in text.splitlines():
            m = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
            if fence is None and m:
                fence, lang, block = m.group(1), m.group(2), []
            elif fence is not None and line.strip().startswith(fence):
                if lang in ("", "sh", "bash", "shell", "console"):
                    joined = re.sub(r"\\\n\s*", " ", "\n".join(block))
                    for cmd in joined.splitlines():
                        cmd = cmd.strip()
                        if cmd and not cmd.startswith("#"):
                            commands.append(cmd.removeprefix("$ "))
                fence = None
            elif fence is not None:
                block.append(line)

        def check_commands() -> list[str]:
            p = []
            secrets_created = {}
            created_files: set[str] = set()
            for cmd in commands:
                try:
                    words = shlex.split(cmd, comments=True)
                except ValueError as e:
                    p.append(f"cannot parse `{cmd}`: {e}")
                    continue
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words = words[1:]
                if not words:
                    continue
                tool = words[0]
                if tool == "make":
                    for t in [w for w in words[1:] if not w.startswith("-") and "=" not in w]:
                        if t not in make_targets:
                            p.append(f"`{cmd}`: no Makefile target {t}")
                    for w in words[1:]:
                        if w.startswith("PROFILE=") and w.split("=", 1)[1] not in ({"light"} | compose_profiles):
                            p.append(f"`{cmd}`: no profile {w}")
                elif tool.startswith(("scripts/", "./scripts/")) or tool in ("python3",) and len(words) > 1 and words[1].startswith("scripts/"):
                    script = words[1] if tool == "python3" else tool
                    if not (ROOT / script.removeprefix("./")).exists():
                        p.append(f"`{cmd}`: {script} does not exist")
                elif tool == "docker" and len(words) > 1 and words[1] == "compose" or tool == "docker-compose":
                    rest = words[2:] if tool == "docker" else words[1:]
                    for i, w in enumerate(rest):
                        if w == "--profile" and rest[i + 1] not in compose_profiles | {"light"}:
                            p.append(f"`{cmd}`: no profile {rest[i + 1]}")
                        if w in ("logs", "ps", "exec", "restart", "stop", "start") and i + 1 < len(rest):
                            svc = rest[i + 1]
                            if not svc.startswith("-") and svc not in compose_services:
                                p.append(f"`{cmd}`: no compose service {svc}")
                elif tool == "docker" and len(words) > 1 and words[1] == "build":
                    for i, w in enumerate(words):
                        if w == "--target" and words[i + 1].lower() not in df.stages:
                            p.append(f"`{cmd}`: no Dockerfile target {words[i + 1]}")
                        if w == "-f" and not (ROOT / words[i + 1]).exists():
                            p.append(f"`{cmd}`: no file {words[i + 1]}")
                elif tool == "helm":
                    sub = words[1] if len(words) > 1 else ""
                    if sub not in ("install", "upgrade", "uninstall", "lint", "template", "status", "rollback", "history", "get", "list", "repo", "show"):
                        p.append(f"`{cmd}`: unexpected helm subcommand {sub}")
                    for i, w in enumerate(words):
                        if w in ("-f", "--values") and not (ROOT / words[i + 1]).exists() and words[i + 1] not in created_files:
                            p.append(f"`{cmd}`: no values file {words[i + 1]}")
                        if w.startswith("deploy/") and not (ROOT / w).exists():
                            p.append(f"`{cmd}`: no {w}")
                        if w in ("--set", "--set-string"):
                            key = words[i + 1].split("=", 1)[0]
                            node = values
                            for part in key.split("."):
                                if not isinstance(node, dict) or part not in node:
                                    p.append(f"`{cmd}`: values.yaml has no {key}")
                                    break
                                node = node[part]
                elif tool == "cp" and len(words) == 3:
                    if not (ROOT / words[1]).exists():
                        p.append(f"`{cmd}`: no file {words[1]}")
                    created_files.add(words[2])
                elif tool == "kubectl" and "generic" in words and words[words.index("generic") - 2:words.index("generic")] == ["create", "secret"]:
                    name = words[words.index("generic") + 1]
                    secrets_created[name] = {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-literal=")} | \
                        {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-file=") and "=" in w.split("=", 1)[1]}
            # The Secrets the docs create are the ones (and keys) the chart references.
            wanted = {
                values["postgres"]["existingSecret"]: {values["postgres"]["passwordKey"]},
                values["s3"]["existingSecret"]: {values["s3"]["accessKeyKey"], values["s3"]["secretKeyKey"]},
                values["auth"]["existingSecret"]: {values["auth"]["jwtSecretKey"], values["auth"]["internalTokenSecretKey"]},
            }
            for name, keys in wanted.items():
                if name not in secrets_created:
                    p.append(f"docs do not create Secret {name}")
                elif not keys <= secrets_created[name]:
                    p.append(f"docs create {name} without keys {keys - secrets_created[name]}")
            return p
        self.r.run("docs: every command in docs/deploy.md is one the repo supports (make targets, scripts, files, profiles, targets, values, Secrets)",
                   check_commands)

        def alloy_snippet() -> list[str]:
            """The Alloy config for the cluster ("Logs in the cluster") sends the labels
            compose's does, and selects pods by labels the chart really sets."""
            from .observability import alloy_blocks, alloy_label_problems, alloy_strings, inner_blocks
            snippets = re.findall(r"^```alloy\n(.*?)^```", text, re.S | re.M)
            if not snippets:
                return ["no ```alloy block"]
            p = []
            pod_labels: dict[str, set[str]] = {}
            for o in self.rendered.get("default values") or []:
                if o["kind"] == "Deployment":
                    for k, v in o["spec"]["template"]["metadata"]["labels"].items():
                        pod_labels.setdefault(k, set()).add(str(v))
            for snippet in snippets:
                blocks = alloy_blocks(snippet)
                p += alloy_label_problems(blocks)
                for n, _label, body in blocks:
                    for sel in inner_blocks(body, "selectors") if n == "discovery.kubernetes" else []:
                        for expr in alloy_strings(sel, "label"):
                            key, _, value = expr.partition("=")
                            if value not in pod_labels.get(key, set()):
                                p.append(f"selects pods by {expr}, which the chart's pods do not carry")
                    for rule in inner_blocks(body, "rule") if n == "discovery.relabel" else []:
                        for src in alloy_strings(rule, "source_labels"):
                            m = re.fullmatch(r"__meta_kubernetes_pod_label_(\w+)", src)
                            if m and not any(re.sub(r"[^\w]", "_", k) == m.group(1) for k in pod_labels):
                                p.append(f"reads the pod label {src}, which the chart does not set")
            if not pod_labels:
                p.append("the chart's default rendering is missing (helm checks failed)")
            return p
        self.r.run("docs: the Alloy config of \"Logs in the cluster\" sends only service, level, environment and "
                   "selects pods by labels the chart sets", alloy_snippet)

        def readme() -> list[str]:
            readme = (ROOT / "README.md").read_text()
            return [] if "docs/deploy.md" in readme else ["README.md does not link docs/deploy.md"]
        self.r.run("docs: README.md links docs/deploy.md", readme)
