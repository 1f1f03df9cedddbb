"""The chart's NetworkPolicies, evaluated the way a cluster enforces them."""

from __future__ import annotations

import json

from .common import BINARIES, CHART, deep_merge, yaml
from .settings import PLANNED_CALLS, grpc_urls


class NetworkPolicyChecks:
    """Static's NetworkPolicy checks (uses self.settings)."""

    def network_policies(self, objects: list[dict], values: dict) -> list[str]:
        """The NetworkPolicies as a cluster enforces them: each pod's ports reachable only from
        what calls them (gRPC: the processes the code gives its address, plus PLANNED_CALLS;
        admin: Prometheus; gateway HTTP: networkPolicy.gateway.from or anyone)."""
        p: list[str] = []
        s = self.settings
        merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
        np_values = merged["networkPolicy"]
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        if not np_values["enabled"]:
            return [f"{len(policies)} NetworkPolicies rendered though networkPolicy.enabled is false"] if policies else []
        pods = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]
                for d in objects if d["kind"] == "Deployment"}

        def selects(selector: dict, labels: dict) -> bool:
            if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
                return False
            for ex in selector.get("matchExpressions") or []:
                has, val = ex["key"] in labels, labels.get(ex["key"])
                ok = {"In": has and val in ex.get("values", []), "NotIn": not has or val not in ex.get("values", []),
                      "Exists": has, "DoesNotExist": not has}[ex["operator"]]
                if not ok:
                    return False
            return True

        ingress_policies = [pol for pol in policies if "Ingress" in (pol["spec"].get("policyTypes") or ["Ingress"])]
        deny = [pol for pol in ingress_policies if not pol["spec"].get("ingress")]
        if not deny:
            p.append("no default-deny ingress NetworkPolicy")

        def sources(labels: dict, port_names: dict, port: int) -> list[dict] | None:
            """Peers allowed to `port` of a pod with `labels`; None: anyone."""
            peers: list[dict] = []
            for pol in ingress_policies:
                if not selects(pol["spec"].get("podSelector") or {}, labels):
                    continue
                for rule in pol["spec"].get("ingress") or []:
                    rule_ports = [port_names.get(x.get("port"), x.get("port")) for x in rule.get("ports") or []]
                    if rule_ports and port not in rule_ports:
                        continue
                    if not rule.get("from"):
                        return None
                    peers += rule["from"]
            return peers

        def peer_processes(peer: dict) -> set[str]:
            """The release's processes a peer admits; a peer reaching outside the release is `peer:<it>`."""
            if set(peer) != {"podSelector"}:
                return {f"peer:{json.dumps(peer, sort_keys=True)}"}
            return {b for b, tmpl in pods.items() if selects(peer["podSelector"], tmpl["metadata"]["labels"])} \
                or {f"peer:{json.dumps(peer, sort_keys=True)}"}

        callers: dict[str, set[str]] = {b: set() for b in BINARIES}
        for b in BINARIES:
            eff = s.effective(b, {})
            for target, _ in grpc_urls(s, b, eff).values():
                callers.setdefault(target, set()).add(b)
        for caller, target in PLANNED_CALLS:
            callers[target].add(caller)
        prometheus_peer = {k: np_values["prometheus"][k] for k in ("namespaceSelector", "podSelector")
                           if np_values["prometheus"].get(k) is not None}
        canon = lambda peers: sorted(json.dumps(x, sort_keys=True) for x in peers)

        for binary, tmpl in pods.items():
            labels = tmpl["metadata"]["labels"]
            if not any(selects(pol["spec"].get("podSelector") or {}, labels) for pol in deny):
                p.append(f"{binary}: pods not selected by a default-deny policy")
            container = tmpl["spec"]["containers"][0]
            port_names = {pt["name"]: int(pt["containerPort"]) for pt in container["ports"]}
            api_name = "http" if binary == "gateway" else "grpc"
            api, admin = port_names[api_name], port_names["admin"]
            # Nothing beyond the two ports.
            for pol in ingress_policies:
                if selects(pol["spec"].get("podSelector") or {}, labels):
                    for rule in pol["spec"].get("ingress") or []:
                        opened = [port_names.get(x.get("port"), x.get("port")) for x in rule.get("ports") or []]
                        if not opened or set(opened) - {api, admin}:
                            p.append(f"{binary}: {pol['metadata']['name']} opens ports {opened or 'all'}")
            got = sources(labels, port_names, admin)
            if got is None or canon(got) != canon([prometheus_peer]):
                p.append(f"{binary}: admin port {admin} open to {got if got is not None else 'anyone'}, "
                         f"expected only Prometheus {prometheus_peer}")
            got = sources(labels, port_names, api)
            if binary == "gateway":
                want = np_values["gateway"]["from"] or None
                if (got is None) != (want is None) or (got is not None and canon(got) != canon(want)):
                    p.append(f"gateway: HTTP port {api} open to {got if got is not None else 'anyone'}, "
                             f"expected {want or 'anyone'} (networkPolicy.gateway.from)")
            elif got is None:
                p.append(f"{binary}: gRPC port {api} open to anyone")
            else:
                allowed = set().union(*(peer_processes(x) for x in got)) if got else set()
                if allowed != callers[binary]:
                    p.append(f"{binary}: gRPC port {api} open to {sorted(allowed)}, its callers are {sorted(callers[binary])}")
        return p
