#!/usr/bin/env bash
# Checks the monitoring code in monitoring/ with the real tools, offline (no Prometheus,
# Alertmanager or Grafana server is started):
#   - promtool check config / check rules, promtool test rules on every test file;
#   - every alert has a severity, a runbook (docs/runbooks/<alert>.md) and both a firing and
#     a non-firing unit test; the scrape config has a job per Social Flow process, and the
#     blackbox job probes URLs through the exporter with a module blackbox.yml defines
#     (checked by the exporter's own --config.check);
#   - amtool check-config, the notification templates render, and every routing case of
#     monitoring/alertmanager/route-tests.txt resolves to the receiver it names;
#   - every Grafana dashboard: valid JSON, a unique stable uid, known datasources, defined
#     variables and recording rules, and every PromQL expression parses (they are written
#     into a throwaway rules file, Grafana variables substituted, for `promtool check rules`);
#     every LogQL (Loki) query selects only on labels monitoring/alloy/config.alloy sends;
#   - scripts/metrics_referenced.py runs.
# Ends with "monitoring: N passed, M failed" and exits non-zero when anything failed.
#
# Needs promtool, amtool and the blackbox exporter (Debian packages prometheus,
# prometheus-alertmanager and prometheus-blackbox-exporter, which scripts/install-test-deps.sh
# installs) and python3 (standard library only).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# The helpers import scripts/metrics_referenced.py: leave no __pycache__ behind.
export PYTHONDONTWRITEBYTECODE=1

MON="monitoring"
PROM="${MON}/prometheus"
AM="${MON}/alertmanager"
GRAFANA="${MON}/grafana"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
failures=()

pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() {
  failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %s\n' "$1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      /'; fi
}
# check NAME COMMAND...: runs the command, passes when it exits 0, shows its output if not.
check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then pass "$name"; else fail "$name" "$out"; fi
}
# Reads "PASS<TAB>name" / "FAIL<TAB>name<TAB>detail" lines from the Python helpers.
collect() {
  local status name detail
  while IFS=$'\t' read -r status name detail; do
    case "$status" in
      PASS) pass "$name" ;;
      FAIL) fail "$name" "$(printf '%b' "$detail")" ;;
      '') ;;
      *) fail "unexpected helper output" "$status $name $detail" ;;
    esac
  done
}

# --- tools ----------------------------------------------------------------------------------
missing_tool=0
for tool in promtool amtool python3; do
  if command -v "$tool" >/dev/null 2>&1; then
    pass "tool present: ${tool}"
  else
    fail "tool present: ${tool}" "not on PATH; scripts/install-test-deps.sh installs promtool and amtool"
    missing_tool=1
  fi
done
if [ "$missing_tool" -ne 0 ]; then
  echo "monitoring: ${passed} passed, ${failed} failed"
  exit 1
fi

# --- Prometheus -----------------------------------------------------------------------------
# rule_files in prometheus.yml are relative to its own directory; promtool resolves them so.
check "promtool check config ${PROM}/prometheus.yml" promtool check config "${PROM}/prometheus.yml"

shopt -s nullglob
rule_files=("${PROM}"/rules/*.yml)
test_files=("${PROM}"/tests/*.yml)
dashboards=("${GRAFANA}"/dashboards/*.json)
shopt -u nullglob
[ "${#rule_files[@]}" -gt 0 ] || fail "rule files present" "no ${PROM}/rules/*.yml"
[ "${#test_files[@]}" -gt 0 ] || fail "rule test files present" "no ${PROM}/tests/*.yml"
[ "${#dashboards[@]}" -gt 0 ] || fail "dashboards present" "no ${GRAFANA}/dashboards/*.json"

for f in ${rule_files[@]+"${rule_files[@]}"}; do
  check "promtool check rules ${f}" promtool check rules "$f"
done
for f in ${test_files[@]+"${test_files[@]}"}; do
  # Test files name their rule files relative to their own directory.
  check "promtool test rules ${f}" promtool test rules "$f"
done

# Alerts: severity, annotations, runbook, a firing and a non-firing test each. Scrape jobs.
helper() { # NAME OUTFILE: runs the Python read from stdin; a crash is a failed check.
  local name="$1" outfile="$2"
  if ! python3 - "$ROOT" "$TMP" >"$outfile" 2>"${outfile}.err"; then
    fail "$name" "$(cat "${outfile}.err")"
  fi
}
helper "alert and scrape checks run" "${TMP}/alerts.out" <<'PY'
import glob, os, re, sys
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "scripts"))
import metrics_referenced as mr

def out(ok, name, detail=""):
    detail = detail.replace("\\", "\\\\").replace("\t", " ").replace("\n", "\\n")
    print(f"{'PASS' if ok else 'FAIL'}\t{name}\t{detail}")

alerts = {}
try:
    for path in mr.rule_files():
        for rule in mr.rules_in(path):
            if rule.get("alert"):
                alerts.setdefault(rule["alert"], []).append((os.path.relpath(path, root), rule))
except mr.YamlError as e:
    out(False, "rule files readable", str(e)); sys.exit(0)

# Which alerts the tests fire and which they expect silent.
fires, silent, test_errors = {}, {}, []
for path in sorted(glob.glob(os.path.join(root, "monitoring/prometheus/tests/*.yml"))):
    rel = os.path.relpath(path, root)
    try:
        doc = mr.load_yaml(path) or {}
    except mr.YamlError as e:
        test_errors.append(str(e)); continue
    for group in doc.get("tests") or []:
        for case in group.get("alert_rule_test") or []:
            name = case.get("alertname")
            exp = case.get("exp_alerts") or []
            (fires if exp else silent).setdefault(name, []).append(f"{rel} ({group.get('name', '?')})")
            for a in exp:
                labels = (a or {}).get("exp_labels") or {}
                ann = (a or {}).get("exp_annotations") or {}
                if "severity" not in labels or "runbook_url" not in ann:
                    test_errors.append(f"{rel}: a firing case of {name} does not check severity and runbook_url")
out(not test_errors, "rule tests readable and firing cases check labels and annotations", "\n".join(test_errors))

for name, defs in sorted(alerts.items()):
    problems = []
    for rel, rule in defs:
        labels = rule.get("labels") or {}
        ann = rule.get("annotations") or {}
        if labels.get("severity") not in ("critical", "warning"):
            problems.append(f"{rel}: severity must be critical or warning, is {labels.get('severity')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{rel}: annotation {key} missing")
        want = f"docs/runbooks/{name}.md"
        if ann.get("runbook_url") and ann["runbook_url"] != want:
            problems.append(f"{rel}: runbook_url is {ann['runbook_url']!r}, expected {want!r}")
    if not os.path.isfile(os.path.join(root, "docs", "runbooks", f"{name}.md")):
        problems.append(f"docs/runbooks/{name}.md does not exist")
    if name not in fires:
        problems.append("no unit test fires it (an alert_rule_test with exp_alerts)")
    if name not in silent:
        problems.append("no unit test where it must not fire (an alert_rule_test with exp_alerts: [])")
    out(not problems, f"alert {name}: severity, runbook, firing and non-firing tests", "\n".join(problems))

for name in sorted(set(fires) | set(silent)):
    if name not in alerts:
        out(False, f"tested alert {name} exists", "a test names an alert no rule file defines")

runbooks = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(root, "docs/runbooks/*.md"))}
stale = sorted(runbooks - set(alerts) - {"README"})
out(not stale, "every runbook belongs to an alert", "runbooks without an alert: " + ", ".join(stale))

# The scrape config: a job per Social Flow process, its `service` label the process name.
processes = {"gateway": 9000, "user-service": 9001, "video-service": 9002,
             "engagement-service": 9003, "payments-service": 9004}
cfg = mr.load_yaml(os.path.join(root, "monitoring/prometheus/prometheus.yml")) or {}
jobs = {j.get("job_name"): j for j in cfg.get("scrape_configs") or []}
problems = []
for proc, port in processes.items():
    job = jobs.get(proc)
    if not job:
        problems.append(f"no job {proc}"); continue
    sc = (job.get("static_configs") or [{}])[0]
    if f"{proc}:{port}" not in (sc.get("targets") or []):
        problems.append(f"job {proc} does not scrape {proc}:{port}")
    if (sc.get("labels") or {}).get("service") != proc:
        problems.append(f"job {proc} does not set service={proc}")
for exporter in ("node-exporter:9100", "postgres-exporter:9187", "redis-exporter:9121", "alertmanager:9093"):
    if not any(exporter in ((j.get("static_configs") or [{}])[0].get("targets") or []) for j in jobs.values()):
        problems.append(f"nothing scrapes {exporter}")
for name, job in jobs.items():
    if not ((job.get("static_configs") or [{}])[0].get("labels") or {}).get("service"):
        problems.append(f"job {name} sets no service label")
out(not problems, "scrape config: a job per process and exporter, each with a service label", "\n".join(problems))

# Uptime: the blackbox job asks the exporter for each URL, with a module blackbox.yml
# defines; its series keep `service` for the exporter (up{service="gateway"} counts gateway
# processes only) and name the probed process in `probed_service`, which EndpointDown uses.
problems = []
job = jobs.get("blackbox")
if not job:
    problems.append("no job blackbox")
else:
    bb = mr.load_yaml(os.path.join(root, "monitoring/blackbox/blackbox.yml")) or {}
    modules = set((bb.get("modules") or {}))
    wanted = (job.get("params") or {}).get("module") or []
    if job.get("metrics_path") != "/probe":
        problems.append(f"metrics_path is {job.get('metrics_path')!r}, not /probe")
    if not wanted or not set(wanted) <= modules:
        problems.append(f"module {wanted} not in monitoring/blackbox/blackbox.yml ({sorted(modules)})")
    relabels = job.get("relabel_configs") or []
    if not any(r.get("target_label") == "__param_target" and r.get("source_labels") == ["__address__"] for r in relabels):
        problems.append("the target URL is not passed as ?target=")
    if not any(r.get("target_label") == "instance" and r.get("source_labels") == ["__param_target"] for r in relabels):
        problems.append("instance is not the probed URL")
    if not any(r.get("target_label") == "__address__" and r.get("replacement") == "blackbox-exporter:9115" for r in relabels):
        problems.append("scrapes are not sent to blackbox-exporter:9115")
    for sc in job.get("static_configs") or []:
        labels = sc.get("labels") or {}
        if labels.get("service") in processes or not labels.get("probed_service"):
            problems.append(f"targets {sc.get('targets')}: service must be the exporter's and probed_service the process's ({labels})")
        for t in sc.get("targets") or []:
            if not re.match(r"^https?://", t):
                problems.append(f"target {t} is not a URL")
out(not problems, "scrape config: job blackbox probes URLs through blackbox-exporter:9115 with a defined module", "\n".join(problems))
PY
collect < "${TMP}/alerts.out"

# The probe modules, with the exporter itself when it is installed (Debian package
# prometheus-blackbox-exporter, which scripts/install-test-deps.sh installs for the drill).
if command -v prometheus-blackbox-exporter >/dev/null 2>&1; then
  check "prometheus-blackbox-exporter --config.check ${MON}/blackbox/blackbox.yml" \
    prometheus-blackbox-exporter --config.check --config.file="${MON}/blackbox/blackbox.yml"
else
  fail "prometheus-blackbox-exporter --config.check ${MON}/blackbox/blackbox.yml" \
    "prometheus-blackbox-exporter is not installed: run scripts/install-test-deps.sh"
fi

# --- Alertmanager -----------------------------------------------------------------------------
AM_CONFIG="${AM}/alertmanager.yml"
check "amtool check-config ${AM_CONFIG}" amtool check-config "$AM_CONFIG"

# The notification templates render (amtool fills them with example alerts).
check "amtool template render socialflow.title and socialflow.text" \
  amtool template render --template.glob="${AM}/templates/*.tmpl" \
    --template.text='{{ template "socialflow.title" . }}{{ template "socialflow.text" . }}'

# Routing: each case names the receiver(s) amtool must resolve for its labels.
if [ -f "${AM}/route-tests.txt" ]; then
  cases=0
  while read -r expected labels; do
    case "$expected" in ''|'#'*) continue ;; esac
    cases=$((cases + 1))
    # shellcheck disable=SC2086 # labels are separate words on purpose
    if got="$(amtool config routes test --config.file="$AM_CONFIG" $labels 2>"${TMP}/amtool.err")"; then
      got="$(printf '%s' "$got" | tr -d '[:space:]')"
      if [ "$got" = "$expected" ]; then
        pass "route ${labels} -> ${expected}"
      else
        fail "route ${labels} -> ${expected}" "amtool resolved: ${got}"
      fi
    else
      fail "route ${labels} -> ${expected}" "$(cat "${TMP}/amtool.err")"
    fi
  done < "${AM}/route-tests.txt"
  [ "$cases" -gt 0 ] || fail "routing cases present" "${AM}/route-tests.txt holds no case"
else
  fail "routing cases present" "${AM}/route-tests.txt is missing"
fi

# --- Grafana ----------------------------------------------------------------------------------
# Writes one throwaway rules file per dashboard (every expression a recording rule, Grafana
# variables substituted) and reports the structural checks.
helper "dashboard checks run" "${TMP}/grafana.out" <<'PY'
import glob, json, os, re, sys
root, tmp = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "scripts"))
import metrics_referenced as mr

def out(ok, name, detail=""):
    detail = detail.replace("\\", "\\\\").replace("\t", " ").replace("\n", "\\n")
    print(f"{'PASS' if ok else 'FAIL'}\t{name}\t{detail}")

# Grafana's built-in variables, as a dashboard at its defaults would expand them.
BUILTINS = {
    "__rate_interval": "5m", "__interval": "1m", "__interval_ms": "60000",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
    "__from": "1700000000000", "__to": "1700003600000",
}
# Example values for our variables where the default ("All") is not a label value.
EXAMPLES = {"service": "gateway", "node": "node-exporter:9100"}
VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")

provisioned = mr.load_yaml(os.path.join(root, "monitoring/grafana/provisioning/datasources/datasources.yml")) or {}
ds_uids = {d.get("uid"): d.get("type") for d in provisioned.get("datasources") or []}
out(all(ds_uids.get(u) == u for u in ("prometheus", "jaeger", "loki")),
    "datasources provisioned: Prometheus (uid prometheus), Jaeger (uid jaeger) and Loki (uid loki)", f"found {ds_uids}")
# Logs: the labels the dashboards' LogQL selects on are the ones Alloy sends.
try:
    loki_labels = mr.alloy_loki_labels()
except OSError as e:
    loki_labels = set()
    out(False, "monitoring/alloy/config.alloy readable", str(e))

recorded = set()
for path in mr.rule_files():
    recorded |= {r["record"] for r in mr.rules_in(path) if r.get("record")}

uids, titles = {}, {}
for path in sorted(glob.glob(os.path.join(root, "monitoring/grafana/dashboards/*.json"))):
    rel = os.path.relpath(path, root)
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        out(False, f"{rel}: valid JSON", str(e)); continue
    problems = []
    uid = dash.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
        problems.append(f"uid {uid!r} is missing or not a stable id ([A-Za-z0-9_-], at most 40)")
    elif uid in uids:
        problems.append(f"uid {uid!r} also used by {uids[uid]}")
    else:
        uids[uid] = rel
    title = dash.get("title")
    if not title:
        problems.append("no title")
    elif title in titles:
        problems.append(f"title {title!r} also used by {titles[title]}")
    else:
        titles[title] = rel
    if "dashboard" in dash and "panels" not in dash:
        problems.append("wrapped in {\"dashboard\": ...}: provisioning wants the dashboard object itself")
    ids = [p.get("id") for p in mr.all_panels(dash.get("panels"))]
    dupes = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
    if dupes or None in ids:
        problems.append(f"panel ids missing or repeated: {dupes}")
    # Datasources: provisioned uids only (or a variable, or Grafana's own).
    def ds_ok(ds):
        if ds is None:
            return True
        uid_ = ds if isinstance(ds, str) else ds.get("uid")
        return uid_ in ds_uids or str(uid_).startswith("$") or uid_ in ("-- Grafana --", "grafana", "-- Mixed --")
    for p in mr.all_panels(dash.get("panels")):
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets") or []]:
            if not ds_ok(ds):
                problems.append(f"panel {p.get('id')} uses an unprovisioned datasource {ds}")
    variables = {}
    for v in (dash.get("templating") or {}).get("list") or []:
        name = v.get("name")
        cur = (v.get("current") or {}).get("value")
        if isinstance(cur, list):
            cur = cur[0] if cur else None
        if v.get("type") in ("textbox", "constant"):
            cur = cur or v.get("query")
        if v.get("type") == "interval":
            cur = "5m"
        if not cur or str(cur).startswith("$"):
            cur = None
        variables[name] = EXAMPLES.get(name) or cur or "example"
        if v.get("datasource") is not None and not ds_ok(v.get("datasource")):
            problems.append(f"variable {name} uses an unprovisioned datasource")
    for p in mr.all_panels(dash.get("panels")):
        if p.get("repeat") and p["repeat"] not in variables:
            problems.append(f"panel {p.get('id')} repeats over undefined variable {p['repeat']}")

    def substitute(expr, where):
        def repl(m):
            name = m.group(1) or m.group(2) or m.group(3)
            if name in BUILTINS:
                return BUILTINS[name]
            if name in variables:
                return variables[name]
            problems.append(f"{where}: undefined variable ${name}")
            return "undefined"
        return VAR.sub(repl, expr)

    for where, logql in mr.dashboard_log_queries(dash):
        used, logql_problems = mr.logql_stream_labels(logql)
        problems += [f"{where}: {x}" for x in logql_problems]
        if used - loki_labels:
            problems.append(f"{where}: selects on {sorted(used - loki_labels)}, which Alloy never sends (it sends {sorted(loki_labels)})")
        for name in re.findall(r"\$\{?(\w+)", logql):
            if name not in variables and name not in BUILTINS and name not in ("__auto",):
                problems.append(f"{where}: undefined variable ${name}")

    rules = []
    queries = list(mr.dashboard_queries(dash))
    for where, query, kind in queries:
        expr = query if kind == "expr" else mr.variable_query_expr(query)
        if not expr:
            continue
        expr = substitute(expr, where)
        for name in mr.metric_names(expr):
            if ":" in name and name not in recorded:
                problems.append(f"{where}: {name} looks like a recording rule but no rule file records it")
        record = "grafana:" + re.sub(r"[^A-Za-z0-9_]", "_", where).strip("_")
        rules.append({"record": record, "expr": expr})
    if not rules:
        problems.append("no PromQL expression found")
    # Identical expressions twice would only be a lint warning; keep the first of each.
    seen, unique = set(), []
    for r in rules:
        if r["expr"] not in seen:
            seen.add(r["expr"]); unique.append(r)
    target = os.path.join(tmp, f"dashboard-{os.path.basename(path)[:-5]}.rules.json")
    with open(target, "w", encoding="utf-8") as f:
        json.dump({"groups": [{"name": f"dashboard {uid}", "rules": unique}]}, f, indent=1)
    out(not problems, f"{rel}: uid {uid}, datasources, variables, recording rules", "\n".join(problems))
    print(f"EXPRS\t{rel}\t{target}\t{len(rules)}")
PY
collect < <(grep -v '^EXPRS' "${TMP}/grafana.out" || true)

# Every dashboard expression parses (JSON is YAML, so the generated file is a rules file).
while IFS=$'\t' read -r tag rel file count; do
  [ "$tag" = "EXPRS" ] || continue
  check "${rel}: all ${count} PromQL expressions parse (promtool check rules)" promtool check rules "$file"
done < "${TMP}/grafana.out"

# --- the referenced-metrics helper ------------------------------------------------------------
if names="$(python3 scripts/metrics_referenced.py 2>&1)" && [ -n "$names" ]; then
  pass "scripts/metrics_referenced.py lists $(printf '%s\n' "$names" | wc -l | tr -d ' ') referenced metrics"
else
  fail "scripts/metrics_referenced.py lists the referenced metrics" "$names"
fi

# --- verdict ------------------------------------------------------------------------------------
if [ "$failed" -gt 0 ]; then
  printf '\nfailed:\n'
  printf '  %s\n' "${failures[@]}"
fi
echo "monitoring: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
