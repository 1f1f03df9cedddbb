#!/usr/bin/env python3
"""Every metric name the monitoring code refers to, and whether a running stack exports it.

    scripts/metrics_referenced.py                  # one name a line, sorted
    scripts/metrics_referenced.py --where          # name, then the files that use it
    scripts/metrics_referenced.py --check URL...   # exit 1 naming what no URL exports

Referenced = every metric selector in the expressions of monitoring/prometheus/rules/*.yml
and in the queries (panel targets and variable queries) of monitoring/grafana/dashboards/*.json,
minus the recording rules those rule files define themselves.

--check fetches each /metrics URL (Prometheus text format), collects the exported names
(histogram and summary series count under their base name too: x_bucket, x_sum and x_count
are x), and fails for every referenced name no URL exports, except those matched by
monitoring/exporter-metrics.txt: metrics only exporters provide (node-exporter,
postgres-exporter, redis-exporter) or that Prometheus makes itself (up, ALERTS). That file
holds shell-style globs, one a line; a line starting with `!` excludes names from the globs
above it (our own redis_connections_active is not a redis-exporter metric).

Standard library only. The YAML reader below understands the subset the rule files use
(block mappings and sequences, plain, quoted and block scalars, flow sequences); it is also
imported by scripts/check-monitoring.sh.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import re
import signal
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES_GLOB = os.path.join(ROOT, "monitoring", "prometheus", "rules", "*.yml")
DASHBOARDS_GLOB = os.path.join(ROOT, "monitoring", "grafana", "dashboards", "*.json")
ALLOWLIST = os.path.join(ROOT, "monitoring", "exporter-metrics.txt")

# --------------------------------------------------------------------------------------------
# A small YAML reader (block style, as promtool and humans write rule files).
# --------------------------------------------------------------------------------------------


class YamlError(ValueError):
    pass


def _strip_comment(text: str) -> str:
    """Drops a trailing ` # comment` outside quotes."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(text: str):
    text = _strip_comment(text.strip()) if not text.strip().startswith(("'", '"')) else text.strip()
    if not text:
        return None
    if text[0] == '"':
        end = _closing_double(text)
        return json.loads(text[: end + 1].replace("\\/", "/"))
    if text[0] == "'":
        i, out = 1, []
        while i < len(text):
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out)
            out.append(text[i])
            i += 1
        raise YamlError(f"unterminated single-quoted string: {text}")
    if text[0] == "[":
        return _flow_sequence(_strip_comment(text))
    if text[0] == "{" and _strip_comment(text) == "{}":
        return {}
    return text


def _closing_double(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise YamlError(f"unterminated double-quoted string: {text}")


def _flow_sequence(text: str):
    if not text.endswith("]"):
        raise YamlError(f"unsupported flow sequence: {text}")
    inner = text[1:-1].strip()
    if not inner:
        return []
    items, cur, quote = [], [], None
    for ch in inner:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ",":
            items.append(_scalar("".join(cur)))
            cur = []
        else:
            cur.append(ch)
    items.append(_scalar("".join(cur)))
    return items


_KEY = re.compile(r"""^(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"][^:#]*?)\s*:(?:\s+(?P<rest>.*)|$)""")


class _Reader:
    def __init__(self, text: str):
        self.lines = text.replace("\t", "    ").split("\n")

    @staticmethod
    def _indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def _next_content(self, i: int) -> int:
        while i < len(self.lines):
            s = self.lines[i].strip()
            if s and not s.startswith("#") and s != "---":
                return i
            i += 1
        return i

    def parse(self):
        i = self._next_content(0)
        if i >= len(self.lines):
            return None
        value, i = self._block(i, self._indent(self.lines[i]))
        i = self._next_content(i)
        if i < len(self.lines):
            raise YamlError(f"line {i + 1}: unexpected content: {self.lines[i].strip()}")
        return value

    def _block(self, i: int, indent: int):
        line = self.lines[i]
        if line.strip().startswith("- ") or line.strip() == "-":
            return self._sequence(i, indent)
        return self._mapping(i, indent)

    def _sequence(self, i: int, indent: int):
        out = []
        while True:
            i = self._next_content(i)
            if i >= len(self.lines):
                return out, i
            line = self.lines[i]
            ind = self._indent(line)
            s = line.strip()
            if ind < indent or not (s.startswith("- ") or s == "-"):
                if ind > indent:
                    raise YamlError(f"line {i + 1}: bad indentation")
                return out, i
            if ind > indent:
                raise YamlError(f"line {i + 1}: bad indentation")
            rest = s[1:]
            if not rest.strip():
                j = self._next_content(i + 1)
                if j < len(self.lines) and self._indent(self.lines[j]) > indent:
                    value, i = self._block(j, self._indent(self.lines[j]))
                else:
                    value, i = None, i + 1
                out.append(value)
                continue
            col = ind + 1 + (len(rest) - len(rest.lstrip(" ")))
            content = rest.strip()
            if _KEY.match(content) or content.startswith("- ") or content == "-":
                # "- key: value" (a mapping whose keys sit at `col`) or "- - x" (a sequence).
                self.lines[i] = " " * col + content
                value, i = self._block(i, col)
            else:
                value, i = self._value(content, i, ind)
            out.append(value)

    def _mapping(self, i: int, indent: int):
        out = {}
        while True:
            i = self._next_content(i)
            if i >= len(self.lines):
                return out, i
            line = self.lines[i]
            ind = self._indent(line)
            if ind < indent:
                return out, i
            if ind > indent:
                raise YamlError(f"line {i + 1}: bad indentation: {line.strip()}")
            s = line.strip()
            if s.startswith("- "):
                return out, i
            m = _KEY.match(s)
            if not m:
                raise YamlError(f"line {i + 1}: expected 'key: value': {s}")
            key = m.group("key")
            if key[0] in "\"'":
                key = _scalar(key)
            rest = m.group("rest") or ""
            value, i = self._value(rest, i, ind)
            out[key] = value

    def _value(self, rest: str, i: int, ind: int):
        """The value after `key:` (or `- `) on line i, whose own indentation is ind."""
        r = rest.strip()
        bare = _strip_comment(r) if not r.startswith(("'", '"')) else r
        if bare and bare[0] in "|>":
            return self._block_scalar(bare, i, ind)
        if bare:
            return _scalar(r), i + 1
        j = self._next_content(i + 1)
        if j >= len(self.lines):
            return None, j
        nxt = self.lines[j]
        nind = self._indent(nxt)
        if nind > ind or (nind == ind and nxt.strip().startswith("- ")):
            return self._block(j, nind)
        return None, i + 1

    def _block_scalar(self, header: str, i: int, ind: int):
        style, chomp = header[0], ""
        for ch in header[1:]:
            if ch in "+-":
                chomp = ch
        body, j, block_indent = [], i + 1, None
        while j < len(self.lines):
            line = self.lines[j]
            if line.strip() == "":
                body.append("")
                j += 1
                continue
            li = self._indent(line)
            if li <= ind:
                break
            if block_indent is None:
                block_indent = li
            if li < block_indent:
                break
            body.append(line[block_indent:])
            j += 1
        while body and body[-1] == "" and chomp != "+":
            body.pop()
        if style == "|":
            text = "\n".join(body)
        else:
            text, para = [], []
            for b in body:
                if b == "":
                    text.append(" ".join(para))
                    para = []
                else:
                    para.append(b)
            text.append(" ".join(para))
            text = "\n".join(t for t in text)
        if chomp != "-" and body:
            text += "\n"
        return text, j


def load_yaml(path: str):
    with open(path, encoding="utf-8") as f:
        try:
            return _Reader(f.read()).parse()
        except YamlError as e:
            raise YamlError(f"{path}: {e}") from None


# --------------------------------------------------------------------------------------------
# Rules and dashboards
# --------------------------------------------------------------------------------------------


def rules_in(path: str) -> list[dict]:
    doc = load_yaml(path) or {}
    out = []
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            rule = dict(rule)
            rule["_group"] = group.get("name")
            out.append(rule)
    return out


def rule_files() -> list[str]:
    return sorted(glob.glob(RULES_GLOB))


def dashboard_files() -> list[str]:
    return sorted(glob.glob(DASHBOARDS_GLOB))


def all_panels(panels):
    for p in panels or []:
        yield p
        yield from all_panels(p.get("panels"))


def _is_prometheus(ds, default=True) -> bool:
    if ds is None:
        return default
    if isinstance(ds, str):
        return "prom" in ds.lower() or ds.startswith("$")
    return ds.get("type") in (None, "prometheus") or str(ds.get("uid", "")).startswith("$")


def dashboard_queries(dash: dict):
    """(where, expr, kind) for every Prometheus query of a dashboard; kind is 'expr' for a
    PromQL expression or 'variable' for a Grafana variable query (label_values(...) etc.)."""
    for p in all_panels(dash.get("panels")):
        panel_ds = p.get("datasource")
        for t in p.get("targets") or []:
            if "expr" not in t:
                continue
            if not _is_prometheus(t.get("datasource", panel_ds)):
                continue
            yield f"panel {p.get('id')} \"{p.get('title', '')}\" target {t.get('refId')}", t["expr"], "expr"
    for v in (dash.get("templating") or {}).get("list") or []:
        if v.get("type") != "query" or not _is_prometheus(v.get("datasource")):
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if q:
            yield f"variable {v.get('name')}", q, "variable"


def _is_loki(ds) -> bool:
    if isinstance(ds, dict):
        return ds.get("type") == "loki"
    return isinstance(ds, str) and "loki" in ds.lower()


def dashboard_log_queries(dash: dict):
    """(where, LogQL expr) for every Loki query of a dashboard: not PromQL, so
    dashboard_queries() leaves them out; scripts/check-monitoring.sh checks their labels."""
    for p in all_panels(dash.get("panels")):
        panel_ds = p.get("datasource")
        for t in p.get("targets") or []:
            if "expr" in t and _is_loki(t.get("datasource", panel_ds)):
                yield f"panel {p.get('id')} \"{p.get('title', '')}\" target {t.get('refId')}", t["expr"]


_STREAM_SELECTOR = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(?:,|$)""")


def logql_stream_labels(expr: str) -> tuple[set[str], list[str]]:
    """(label names, problems) of the stream selectors `{...}` of a LogQL expression; a
    selector must hold at least one matcher that cannot match the empty value (Loki refuses
    `{service=~".*"}` alone)."""
    labels: set[str] = set()
    problems: list[str] = []
    # Grafana's ${...} variables (in a line filter: "${__trace.traceId}") are not selectors.
    expr = re.sub(r"\$\{[^{}]*\}", "x", expr)
    selectors = _STREAM_SELECTOR.findall(expr)
    if not selectors:
        problems.append("no stream selector {...}")
    for body in selectors:
        pos, nonempty = 0, False
        while pos < len(body):
            m = _MATCHER.match(body, pos)
            if not m:
                problems.append(f"cannot read the selector {{{body}}}")
                break
            name, op, value = m.group(1), m.group(2), m.group(3)[1:-1]
            labels.add(name)
            # A Grafana variable's value is not known here; `$service` stands for a name.
            probe = re.sub(r"\$\{?\w+(?::\w+)?\}?", "x", value)
            if (op == "=" and probe != "") or (op == "=~" and not re.fullmatch(probe, "")):
                nonempty = True
            pos = m.end()
        if selectors and not nonempty:
            problems.append(f"{{{body}}} has no matcher that excludes the empty value (Loki refuses it)")
    return labels, problems


ALLOY_CONFIG = os.path.join(ROOT, "monitoring", "alloy", "config.alloy")


def alloy_loki_labels(path: str = ALLOY_CONFIG) -> set[str]:
    """The Loki labels the Alloy config can send: the union of its stage.label_keep lists
    (every loki.process ends with one, which scripts/check-deploy.py checks)."""
    with open(path, encoding="utf-8") as f:
        # `//` comments, but not inside strings ("unix:///var/run/docker.sock").
        text = re.sub(r'("(?:[^"\\]|\\.)*")|//[^\n]*', lambda m: m.group(1) or "", f.read())
    out: set[str] = set()
    for values in re.findall(r"stage\.label_keep\s*\{\s*values\s*=\s*\[([^\]]*)\]", text):
        out |= set(re.findall(r'"([^"]+)"', values))
    return out


_VAR_FUNC = re.compile(r"^\s*(label_values|query_result|label_names|metrics)\s*\((.*)\)\s*$", re.S)


def variable_query_expr(query: str) -> str | None:
    """The PromQL inside a Grafana variable query, or None when it holds none."""
    m = _VAR_FUNC.match(query)
    if not m:
        return query
    func, args = m.group(1), m.group(2).strip()
    if func == "query_result":
        return args
    if func == "label_values":
        depth, quote = 0, None
        for i, ch in enumerate(args):
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                return args[:i].strip()
        return None  # label_values(label): no metric
    return None


# --------------------------------------------------------------------------------------------
# PromQL: which metric names does an expression select?
# --------------------------------------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}
_AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()
    s, i, n = expr, 0, len(expr)

    def skip_ws(k):
        while k < n and s[k] in " \t\r\n":
            k += 1
        return k

    def skip_string(k):
        q = s[k]
        k += 1
        while k < n and s[k] != q:
            k += 2 if s[k] == "\\" and q != "`" else 1
        return k + 1

    def skip_group(k, open_ch, close_ch):
        depth = 0
        start = k
        while k < n:
            ch = s[k]
            if ch in "\"'`":
                k = skip_string(k)
                continue
            if ch == open_ch:
                depth += 1
            elif ch == close_ch:
                depth -= 1
                if depth == 0:
                    return k + 1, s[start : k + 1]
            k += 1
        return k, s[start:k]

    while i < n:
        ch = s[i]
        if ch == "#":
            while i < n and s[i] != "\n":
                i += 1
            continue
        if ch in "\"'`":
            i = skip_string(i)
            continue
        if ch == "{":
            i, body = skip_group(i, "{", "}")
            for m in _NAME_MATCHER.finditer(body):
                names.add(m.group(1) if m.group(1) is not None else m.group(2))
            continue
        if ch == "[":
            i, _ = skip_group(i, "[", "]")
            continue
        if ch == "$":  # Grafana variable: $var, ${var}, ${var:fmt}
            i += 1
            if i < n and s[i] == "{":
                i, _ = skip_group(i, "{", "}")
            else:
                m = _IDENT.match(s, i)
                i = m.end() if m else i
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and s[i + 1].isdigit()):
            while i < n and (s[i].isalnum() or s[i] in "._"):
                i += 1
            continue
        m = _IDENT.match(s, i)
        if not m:
            i += 1
            continue
        word = m.group(0)
        i = m.end()
        low = word.lower()
        nxt = skip_ws(i)
        if low in _LABEL_LIST_KEYWORDS:
            if nxt < n and s[nxt] == "(":
                i, _ = skip_group(nxt, "(", ")")
            continue
        if low in _KEYWORDS or low in _AGGREGATORS:
            continue
        if nxt < n and s[nxt] == "(":
            continue  # a function call
        names.add(word)
    return names


# --------------------------------------------------------------------------------------------
# Referenced names
# --------------------------------------------------------------------------------------------


def referenced() -> tuple[dict[str, set[str]], set[str]]:
    """({metric name: files using it}, recording rule names defined)."""
    uses: dict[str, set[str]] = {}
    recorded: set[str] = set()
    for path in rule_files():
        rel = os.path.relpath(path, ROOT)
        for rule in rules_in(path):
            if rule.get("record"):
                recorded.add(rule["record"])
            for name in metric_names(str(rule.get("expr") or "")):
                uses.setdefault(name, set()).add(rel)
    for path in dashboard_files():
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        for _where, query, kind in dashboard_queries(dash):
            expr = query if kind == "expr" else variable_query_expr(query)
            if expr:
                for name in metric_names(expr):
                    uses.setdefault(name, set()).add(rel)
    for name in recorded:
        uses.pop(name, None)
    return uses, recorded


def load_allowlist(path: str = ALLOWLIST) -> tuple[list[str], list[str]]:
    allow, deny = [], []
    if not os.path.exists(path):
        return allow, deny
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            (deny if line.startswith("!") else allow).append(line.lstrip("!").strip())
    return allow, deny


def allowlisted(name: str, allow: list[str], deny: list[str]) -> bool:
    if any(fnmatch.fnmatchcase(name, p) for p in deny):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in allow)


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names(text: str) -> set[str]:
    names: set[str] = set()
    typed: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                typed[parts[2]] = parts[3]
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            names.add(m.group(0))
    out = set(names)
    for name in names:
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                if typed.get(base) in (None, "histogram", "summary", "gaugehistogram"):
                    out.add(base)
    for base, kind in typed.items():
        if base in names or any(base + s in names for s in _HISTOGRAM_SUFFIXES):
            out.add(base)
    return out


def fetch(url: str, timeout: float = 10.0) -> str:
    req = urllib.request.Request(url, headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read().decode("utf-8", errors="replace")


def check(urls: list[str], allowlist_path: str) -> int:
    uses, _recorded = referenced()
    allow, deny = load_allowlist(allowlist_path)
    exported: set[str] = set()
    failed_fetch = False
    for url in urls:
        try:
            names = exported_names(fetch(url))
        except (urllib.error.URLError, OSError, ValueError) as e:
            print(f"metrics_referenced: cannot fetch {url}: {e}", file=sys.stderr)
            failed_fetch = True
            continue
        print(f"metrics_referenced: {url}: {len(names)} names", file=sys.stderr)
        exported |= names
    missing = []
    for name in sorted(uses):
        stripped = {name[: -len(s)] for s in _HISTOGRAM_SUFFIXES if name.endswith(s)}
        if name in exported or stripped & exported:
            continue
        if allowlisted(name, allow, deny):
            continue
        missing.append(name)
    for name in missing:
        print(f"missing: {name} (referenced by {', '.join(sorted(uses[name]))})", file=sys.stderr)
    ok = not missing and not failed_fetch
    print(
        f"metrics_referenced: {len(uses)} referenced, {len(missing)} exported by no URL"
        + ("" if not failed_fetch else ", some URLs could not be fetched"),
        file=sys.stderr,
    )
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` is fine
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--check", nargs="+", metavar="URL", help="/metrics URLs of a running stack")
    ap.add_argument("--allowlist", default=ALLOWLIST, help="globs of names no URL needs to export")
    ap.add_argument("--where", action="store_true", help="also print the files using each name")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.check, args.allowlist)
    uses, _ = referenced()
    for name in sorted(uses):
        print(f"{name}\t{' '.join(sorted(uses[name]))}" if args.where else name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
