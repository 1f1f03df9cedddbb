#!/usr/bin/env python3
"""The alert drill: proves the monitoring pipeline end to end on the real binaries.

1. Starts the stack (scripts/dev-stack.sh, its own database), a real Prometheus scraping every
   process with the rules of monitoring/prometheus/rules/ (windows and `for` durations
   shortened in a test copy, so the drill takes a minute, not an hour), and a real
   Alertmanager routing every alert to a webhook receiver this script runs.
2. Turns on fault injection: video-service's GetVideo answers UNAVAILABLE. Drives traffic
   through the gateway and waits for HighErrorRate{service="video-service"} to reach the
   webhook. Every call failing, the gateway's circuit breaker for video-service opens: its
   answers become 503 dependency_unavailable with Retry-After, at once, and
   CircuitBreakerOpen{service="gateway", upstream="video-service"} must reach the webhook.
   Turns the fault off, drives healthy traffic, waits for both resolved notifications.
   Then feeds alerts to a second Alertmanager running the shipped alertmanager.yml (delivery
   redirected here): critical → PagerDuty, warning → team webhook, and a critical inhibits
   the warnings of its own service only.
   Videos: the stack's object store is an s3s-fs this script runs. One user (a new name each
   run) uploads a real video (ffmpeg's test pattern) through the gateway and waits for it
   to be processed (`ready`). Then the object store is stopped: uploads through the gateway
   answer 503 and count as `failed`, and VideoUploadFailure{service="video-service"} must
   reach the webhook. The store is started again on the same data, a real upload goes
   through and becomes `ready`, and the resolved notification must arrive.
   The ledger: after the payments traffic (step 3) one account's balance is moved in SQL;
   LedgerImbalance{service="payments-service"} must reach the webhook as critical, and resolve
   once the balance is set back to the sum of its postings.
3. Drives the rest of the traffic the dashboards show (logins that fail, lock an account,
   look like credential stuffing and hit the rate limit; authenticated requests; 4xx; views
   counted and rejected, likes of a video, a comment and a post, the trending list; payments:
   a declined card, then a subscription, an admin's ad revenue batch and payout run; load
   shedding: the drill's gateway has http.max_in_flight 8, and with GetVideo held 2 s by a
   latency fault a burst of 24 requests must get 503 overloaded with Retry-After: 1 for all
   but the ones in flight, /health staying 200), then:
   - every metric any rule or dashboard references is exported by some process
     (scripts/metrics_referenced.py --check), exporter metrics excepted;
   - every dashboard panel's query returns data through Prometheus' HTTP API, except panels
     that only query exporter metrics (node-exporter, postgres-exporter, redis-exporter),
     which `make run` does not start, and Loki panels (the drill runs no Loki).
   The blackbox exporter runs with monitoring/blackbox/blackbox.yml and probes the gateway's
   public routes as compose's `blackbox` job does: its probes must succeed, and the uptime
   panels get their data from it (all but the TLS expiry panel: the gateway here is plain
   HTTP, so there is no certificate to measure).
Bounded in time; stops every process it started. Last line: `alert-drill: N passed, M failed`.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import metrics_referenced as mr  # noqa: E402

GATEWAY = "http://127.0.0.1:8000"
ADMIN = {
    "gateway": 9000,
    "user-service": 9001,
    "video-service": 9002,
    "engagement-service": 9003,
    "payments-service": 9004,
}
VIDEO = "0190b000-0000-7000-8000-000000000002"
SHORT_WINDOW = "20s"
DEADLINE_ALERT = 150
DEADLINE_RESOLVE = 150
DEADLINE_READY = 90
# The gateway's cache.video_ttl_ms (its default), in seconds (see shed_drill).
VIDEO_CACHE_TTL_S = 1.0
# The drill's gateway's http.max_in_flight (see shed_drill).
MAX_IN_FLIGHT = 8
# A file video-service takes for an MP4 by its first bytes (an `ftyp` box): enough to be
# stored, not to be processed. Sent only while the object store is down.
FAKE_MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
FAKE_MP4 += b"\x00" * (600 - len(FAKE_MP4))

results: list[tuple[bool, str]] = []


def say(msg: str) -> None:
    print(f"alert-drill: {msg}", flush=True)


def check(ok: bool, what: str) -> bool:
    results.append((ok, what))
    say(("ok   " if ok else "FAIL ") + what)
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, body=None, headers=None, timeout=10.0, raw: bytes | None = None):
    """JSON `body`, or `raw` bytes with the Content-Type of `headers`."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if raw is None and data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode()


def stable_port() -> int:
    """A free port below Linux's ephemeral range: one a stopped server can bind again, since
    no outgoing connection takes it as its local port meanwhile."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in range(max(1024, low - 2000), low):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def wait_until(what: str, deadline_s: float, probe, every=0.5) -> bool:
    end = time.time() + deadline_s
    while time.time() < end:
        if probe():
            return True
        time.sleep(every)
    say(f"gave up waiting for {what} after {deadline_s:.0f} s")
    return False


# ----------------------------------------------------------------------------- webhook


class Webhook:
    def __init__(self) -> None:
        self.notifications: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                payload["_path"] = self.path
                with hook.lock:
                    hook.notifications.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def pagerduty_events(self) -> list[dict]:
        with self.lock:
            return [n for n in self.notifications if n["_path"] == "/pagerduty"]

    def alerts(self, name: str, service: str, status: str, path: str = "/") -> list[dict]:
        with self.lock:
            return [
                a
                for n in self.notifications
                if n["_path"] == path
                for a in n.get("alerts", [])
                if a.get("labels", {}).get("alertname") == name
                and a.get("labels", {}).get("service") == service
                and a.get("status") == status
            ]


# ----------------------------------------------------------------------------- configs


def shorten_rules(text: str) -> str:
    """Test copy of a rule file: every range window and `for` becomes short."""
    text = re.sub(r"\[\s*\d+[smhdw](?:\s*:\s*\d*[smhdw]?)?\s*\]", f"[{SHORT_WINDOW}]", text)
    text = re.sub(r"(^\s*for:\s*)\S+", r"\g<1>1s", text, flags=re.M)
    return text


# What the blackbox job probes in compose (monitoring/prometheus/prometheus.yml), on the
# drill's gateway.
PROBED = [f"{GATEWAY}/health", f"{GATEWAY}/api/v1/videos"]


def write_configs(tmp: str, am_port: int, hook_port: int, bb_port: int) -> tuple[str, str]:
    rules_dir = os.path.join(tmp, "rules")
    os.makedirs(rules_dir)
    for path in mr.rule_files():
        with open(path) as f:
            text = shorten_rules(f.read())
        with open(os.path.join(rules_dir, os.path.basename(path)), "w") as f:
            f.write(text)
    scrape = "\n".join(
        f"""  - job_name: {name}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
        labels:
          service: {name}"""
        for name, port in ADMIN.items()
    )
    # The blackbox job as in monitoring/prometheus/prometheus.yml, pointed at the drill's
    # exporter and gateway. Every 5 s, not every second: its GETs of /api/v1/videos count
    # against the same per-address rate limit as the drill's own traffic.
    scrape += f"""
  - job_name: blackbox
    scrape_interval: 5s
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: {json.dumps(PROBED)}
        labels:
          service: blackbox
          probed_service: gateway
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{bb_port}"""
    prom = os.path.join(tmp, "prometheus.yml")
    with open(prom, "w") as f:
        f.write(
            f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules_dir}/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
{scrape}
"""
        )
    am = os.path.join(tmp, "alertmanager.yml")
    with open(am, "w") as f:
        f.write(
            f"""route:
  receiver: drill
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: drill
    webhook_configs:
      - url: http://127.0.0.1:{hook_port}/
        send_resolved: true
"""
        )
    return prom, am


def real_alertmanager_config(tmp: str, hook_port: int) -> str:
    """monitoring/alertmanager/alertmanager.yml as shipped, with only delivery redirected:
    PagerDuty's API URL and the warnings webhook point at this script, secrets come from the
    repo's fake local files, and waits are 1 s. Routing and inhibition are untouched."""
    src = os.path.join(ROOT, "monitoring", "alertmanager")
    dst = os.path.join(tmp, "real-am")
    shutil.copytree(src, dst)
    path = os.path.join(dst, "alertmanager.yml")
    with open(path) as f:
        text = f.read()
    secrets = os.path.join(ROOT, "deploy", "compose", "secrets", "alertmanager") + "/"
    text = text.replace("/etc/alertmanager/secrets/", secrets)
    text = re.sub(r"(^\s*- )routing_key_file:(.*)$",
                  rf"\1routing_key_file:\2\n        url: http://127.0.0.1:{hook_port}/pagerduty",
                  text, flags=re.M)
    text = re.sub(r"url: \"http://alert-webhook:8080/alertmanager\"",
                  f'url: "http://127.0.0.1:{hook_port}/team"', text)
    text = re.sub(r"(^\s*group_(?:wait|interval):\s*)\S+", r"\g<1>1s", text, flags=re.M)
    with open(path, "w") as f:
        f.write(text)
    return path


def check_routing_and_inhibition(tmp: str, hook: "Webhook", procs: list) -> None:
    """The shipped Alertmanager config, fed alerts through its API: a critical pages
    PagerDuty, a warning goes to the team webhook, and a critical inhibits the warnings of
    its own service only."""
    port = free_port()
    cfg = real_alertmanager_config(tmp, hook.port)
    procs.append(subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp}/real-am-data",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=open(os.path.join(tmp, "real-alertmanager.log"), "w"), stderr=subprocess.STDOUT,
    ))
    api = f"http://127.0.0.1:{port}/api/v2/alerts"
    if not check(wait_until("the shipped Alertmanager config", 60,
                            lambda: request("GET", f"http://127.0.0.1:{port}/-/ready")[0] == 200),
                 "Alertmanager starts with monitoring/alertmanager/alertmanager.yml"):
        return

    def alert(name: str, service: str, severity: str) -> dict:
        return {"labels": {"alertname": name, "service": service, "severity": severity},
                "annotations": {"summary": f"drill {name}", "runbook_url": "docs/runbooks/README.md"}}

    request("POST", api, [alert("DrillOutage", "video-service", "critical")])
    check(wait_until("PagerDuty event", 30, lambda: any(
        "DrillOutage" in json.dumps(e) for e in hook.pagerduty_events())),
        "a critical alert reaches the PagerDuty receiver")
    request("POST", api, [alert("DrillSlow", "video-service", "warning"),
                          alert("DrillSlow", "payments-service", "warning")])
    check(wait_until("warning for payments-service", 30,
                     lambda: bool(hook.alerts("DrillSlow", "payments-service", "firing", "/team"))),
          "a warning reaches the team-warnings webhook")

    def state(service: str) -> dict:
        _, body = request("GET", api + "?" + urllib.parse.urlencode({"filter": f'service="{service}"'}))
        found = [a for a in json.loads(body or b"[]") if a["labels"]["alertname"] == "DrillSlow"]
        return found[0]["status"] if found else {}

    suppressed = state("video-service")
    check(suppressed.get("state") == "suppressed" and bool(suppressed.get("inhibitedBy")),
          f"the critical on video-service inhibits its warning ({suppressed})")
    check(state("payments-service").get("state") == "active",
          "a warning on another service is not inhibited")
    check(not hook.alerts("DrillSlow", "video-service", "firing", "/team"),
          "the inhibited warning is never delivered")


# ----------------------------------------------------------------------------- traffic


def get_video(n: int) -> list[int]:
    return [request("GET", f"{GATEWAY}/api/v1/videos/{VIDEO}")[0] for _ in range(n)]


def security_traffic() -> None:
    """Logins that fail, lock an account, look like credential stuffing and hit the rate
    limit; an authenticated user; a few 4xx. The drill's stack allows a login burst of 15."""
    password = "drill passphrase 2026"
    for name in ("drill_victim", "drill_user"):
        request("POST", f"{GATEWAY}/api/v1/auth/register", {
            "email": f"{name}@example.com", "username": name,
            "password": password, "display_name": name,
        })
    status, body = request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": "drill_user", "password": password})
    token = json.loads(body).get("access_token", "") if status == 200 else ""
    for _ in range(3):
        request("GET", f"{GATEWAY}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    for _ in range(5):  # locks drill_victim
        request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": "drill_victim", "password": "wrong password 123"})
    request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": "drill_victim", "password": password})
    for i in range(5):  # one address failing on many accounts
        request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": f"nobody_{i}", "password": "wrong password 123"})
    for _ in range(6):  # over the login limit
        request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": "drill_user", "password": password})
    for _ in range(3):
        request("GET", f"{GATEWAY}/api/v1/videos/not-a-uuid")
        request("GET", f"{GATEWAY}/api/v1/users/{VIDEO}")


def engagement_traffic(uploader: "Uploader") -> None:
    """What engagement-service's series need to appear (counters and histograms are exported
    from their first event): a view counted, then rejected as a duplicate and as too short;
    likes of a video, a comment and a post; a comment and a post; the trending list twice (a
    rebuild, then the cache). content_performance_score follows at the next scores run (every
    second in the drill) for the post and the video; engagement_view_flush_lag_seconds is
    there from the start."""
    auth = uploader.auth()

    def send(method: str, path: str, body=None) -> tuple[int, dict]:
        status, reply = request(method, f"{GATEWAY}/api/v1{path}", body, headers=auth)
        try:
            return status, json.loads(reply or b"{}")
        except ValueError:
            return status, {}

    views = []
    for watch in (30, 30, 1):
        status, reply = send("POST", f"/videos/{VIDEO}/views", {"watch_seconds": watch})
        views.append((status, reply.get("counted"), reply.get("reason")))
    check(views == [(200, True, None), (200, False, "duplicate"), (200, False, "too_short")],
          f"a view is counted, then rejected as duplicate and as too short ({views})")
    statuses = {"like video": send("PUT", f"/videos/{VIDEO}/like")[0]}
    status, comment = send("POST", f"/videos/{VIDEO}/comments", {"text": "drill comment"})
    statuses["comment"] = status
    statuses["like comment"] = send("PUT", f"/comments/{comment.get('id', 'none')}/like")[0]
    status, post = send("POST", "/posts", {"text": "drill post"})
    statuses["post"] = status
    statuses["like post"] = send("PUT", f"/posts/{post.get('id', 'none')}/like")[0]
    statuses["trending"] = request("GET", f"{GATEWAY}/api/v1/videos/trending")[0]
    statuses["trending again"] = request("GET", f"{GATEWAY}/api/v1/videos/trending")[0]
    check(statuses == {"like video": 200, "comment": 201, "like comment": 200, "post": 201,
                       "like post": 200, "trending": 200, "trending again": 200},
          f"likes, a comment, a post and trending through the gateway ({statuses})")


def payments_traffic(uploader: "Uploader", database_url: str) -> None:
    """What payments-service's series need to appear (all but ledger_imbalance from their first
    event): the uploader's card is declined (4000000000000002: payment_attempts_total
    `declined`), then it subscribes (4242424242424242: `succeeded`, revenue_total
    `subscription`, revenue_subscriptions_total), and the same request again with the same
    Idempotency-Key is answered from the key, charging nothing. Then the uploader becomes an
    admin (users.users.role in SQL; the refreshed access token carries the role: a refresh,
    not a login, because security_traffic spent the address's login budget) and posts ad
    revenue for the seeded VIDEO (revenue_total `ads`, revenue_ads_total) and runs the
    payouts: the period's revenue is shared by the watch time gained, which
    engagement_traffic's counted view of VIDEO gave its owner, so once that view is in
    Postgres the run pays them (payouts.min_payout_minor is 1 in the drill: revenue_total
    `creator_payout`, revenue_creator_payouts_total)."""

    def send(method: str, path: str, body=None, token: str = "", key: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token or uploader.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        status, reply = request(method, f"{GATEWAY}/api/v1{path}", body, headers=headers, timeout=30)
        try:
            return status, json.loads(reply or b"{}")
        except ValueError:
            return status, {"raw": reply[:200].decode(errors="replace")}

    run = uuid.uuid4().hex[:12]
    status, reply = send("POST", "/subscriptions", {"plan_id": "premium", "payment_method": "4000000000000002"},
                         key=f"drill-sub-declined-{run}")
    check(status == 402, f"a declined card answers 402 (HTTP {status}: {reply})")
    body = {"plan_id": "premium", "payment_method": "4242424242424242"}
    status, sub = send("POST", "/subscriptions", body, key=f"drill-sub-{run}")
    check(status == 201 and sub.get("status") == "active",
          f"the drill's user subscribes to premium with the test card 4242... (HTTP {status}: {sub})")
    status, again = send("POST", "/subscriptions", body, key=f"drill-sub-{run}")
    check(status == 201 and again.get("id") == sub.get("id"),
          f"the same subscription request with the same Idempotency-Key answers the same subscription "
          f"(HTTP {status}: {again.get('id')} vs {sub.get('id')})")

    status, reply = send("POST", "/admin/payouts/run", key=f"drill-payouts-forbidden-{run}")
    check(status == 403, f"an admin route refuses a token without the admin role (HTTP {status}: {reply})")
    promoted = subprocess.run(
        ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-qtAc",
         f"UPDATE users.users SET role = 'admin' WHERE username = '{uploader.name}' RETURNING id"],
        capture_output=True, text=True)
    if not check(promoted.returncode == 0 and promoted.stdout.strip() != "",
                 f"{uploader.name} is made an admin in SQL ({(promoted.stdout or promoted.stderr).strip()[:200]})"):
        return
    # An anonymous route: the address's budget (rate_limit.anonymous) may still be low after
    # the fault's traffic. A 429 never reaches user-service, so retrying it is safe.
    end = time.time() + 30
    while True:
        status, reply = request("POST", f"{GATEWAY}/api/v1/auth/refresh", {"refresh_token": uploader.refresh_token})
        if status != 429 or time.time() >= end:
            break
        time.sleep(1)
    try:
        tokens = json.loads(reply or b"{}") if status == 200 else {}
    except ValueError:
        tokens = {}
    admin = tokens.get("access_token", "")
    try:  # the token's claims (its middle part, base64url JSON); the gateway checks the signature
        part = admin.split(".")[1]
        role = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))).get("role")
    except (IndexError, ValueError):
        role = None
    if not check(role == "admin", f"the refreshed access token carries the admin role (HTTP {status}, role {role!r})"):
        return
    uploader.refresh_token = tokens.get("refresh_token", "")

    status, reply = send("POST", "/admin/ad-revenue",
                         {"events": [{"video_id": VIDEO, "kind": "click", "amount_minor": 250, "currency": "USD"}]},
                         token=admin, key=f"drill-ads-{run}")
    check(status == 201 and reply.get("totals") == [{"amount_minor": 250, "currency": "USD"}],
          f"an admin posts ad revenue for {VIDEO} (HTTP {status}: {reply})")

    # The payout run shares the period's revenue by the watch time each creator's videos
    # gained: wait for engagement_traffic's counted view to be flushed into Postgres
    # (views.flush_interval_ms, 2 s).
    def watched() -> bool:
        out = subprocess.run(
            ["psql", database_url, "-qtAc",
             f"SELECT watch_seconds > 0 FROM engagement.video_stats WHERE video_id = '{VIDEO}'"],
            capture_output=True, text=True)
        return out.stdout.strip() == "t"

    check(wait_until(f"watch time of {VIDEO} in Postgres", 30, watched),
          f"the counted view's watch time of {VIDEO} reached engagement.video_stats")
    status, reply = send("POST", "/admin/payouts/run", token=admin, key=f"drill-payouts-{run}")
    paid = reply.get("paid") or []
    check(status == 200 and any(p.get("currency") == "USD" and p.get("amount_minor", 0) > 0 for p in paid),
          f"an admin's payout run pays the creator of {VIDEO} (HTTP {status}: {reply})")


def ledger_drill(hook: "Webhook", database_url: str) -> None:
    """LedgerImbalance through the real pipeline: one account's balance is moved behind the
    service's back (SQL, as a hand-run fix gone wrong would), payments-service's ledger check
    (every second in the drill) counts it, and the alert must reach the webhook as critical;
    the balance is set back to the sum of its postings and the alert must resolve."""

    def psql(sql: str) -> str:
        out = subprocess.run(["psql", database_url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
                             capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    account = psql("UPDATE payments.accounts SET balance = balance - 1 WHERE id = ("
                   "SELECT id FROM payments.accounts WHERE kind = 'platform_revenue' ORDER BY id LIMIT 1) "
                   "RETURNING id")
    if not check(bool(account), f"an account's balance is moved by hand in SQL (account {account or 'none'})"):
        return
    try:
        if check(wait_until("LedgerImbalance firing", DEADLINE_ALERT,
                            lambda: bool(hook.alerts("LedgerImbalance", "payments-service", "firing")), every=1),
                 "the webhook received LedgerImbalance for payments-service"):
            alert = hook.alerts("LedgerImbalance", "payments-service", "firing")[0]
            check(alert["labels"].get("severity") == "critical"
                  and alert["annotations"].get("runbook_url", "").endswith("LedgerImbalance.md"),
                  "the notification carries severity=critical and its runbook_url")
    finally:
        fixed = psql("UPDATE payments.accounts a SET balance = (SELECT coalesce(sum(p.amount), 0) "
                     f"FROM payments.postings p WHERE p.account_id = a.id) WHERE a.id = '{account}' RETURNING id")
    check(fixed == account, "the account's balance is set back to the sum of its postings")
    check(wait_until("LedgerImbalance resolved", DEADLINE_RESOLVE,
                     lambda: bool(hook.alerts("LedgerImbalance", "payments-service", "resolved")), every=1),
          "the webhook received LedgerImbalance's resolved notification")


# ----------------------------------------------------------------------------- reliability


def get_with_headers(url: str, headers=None, timeout=20.0) -> tuple[int, str | None, str | None, float]:
    """(status, Retry-After, the error body's `code`, seconds taken) of a GET."""
    started = time.time()
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, retry_after, body = r.status, r.headers.get("Retry-After"), r.read()
    except urllib.error.HTTPError as e:
        status, retry_after, body = e.code, e.headers.get("Retry-After"), e.read()
    except (urllib.error.URLError, OSError) as e:
        status, retry_after, body = 0, None, str(e).encode()
    try:
        code = (json.loads(body or b"{}").get("error") or {}).get("code")
    except (ValueError, AttributeError):
        code = None
    return status, retry_after, code, time.time() - started


def breaker_alerts(hook: "Webhook", status: str) -> list[dict]:
    return [a for a in hook.alerts("CircuitBreakerOpen", "gateway", status)
            if a.get("labels", {}).get("upstream") == "video-service"]


def breaker_drill(hook: "Webhook", uploader: "Uploader | None") -> None:
    """While video-service's GetVideo answers UNAVAILABLE (the fault of step 2), the gateway's
    breaker for video-service has seen at least 10 calls, half of them failed or more: it is
    open. Its answers come at once as 503 dependency_unavailable with Retry-After, without
    calling video-service, and CircuitBreakerOpen{service="gateway", upstream="video-service"}
    (a warning) must reach the webhook. The calls checked go as the uploader: the address's
    anonymous rate limit may be spent by the fault's traffic (a 429 never reaches the
    breaker). Of three calls in a row, the first may be the probe of a half-open breaker
    (it fails, and the breaker opens again for grpc_client.breaker.open_ms, 5 s): the third
    meets an open breaker."""
    headers = uploader.auth() if uploader else {}
    for _ in range(2):
        get_with_headers(f"{GATEWAY}/api/v1/videos/{VIDEO}", headers)
    status, retry_after, code, took = get_with_headers(f"{GATEWAY}/api/v1/videos/{VIDEO}", headers)
    check(status == 503 and code == "dependency_unavailable" and (retry_after or "").isdigit(),
          f"with the breaker open the gateway answers 503 dependency_unavailable with Retry-After "
          f"(HTTP {status}, code {code}, Retry-After {retry_after}, {took * 1000:.0f} ms)")

    def firing() -> bool:
        get_video(2)
        return bool(breaker_alerts(hook, "firing"))

    if check(wait_until("CircuitBreakerOpen firing", DEADLINE_ALERT, firing),
             "the webhook received CircuitBreakerOpen for the gateway's breaker to video-service"):
        alert = breaker_alerts(hook, "firing")[0]
        check(alert["labels"].get("severity") == "warning"
              and alert["annotations"].get("runbook_url", "").endswith("CircuitBreakerOpen.md"),
              "the notification carries severity=warning and its runbook_url")


def shed_drill(uploader: "Uploader | None") -> None:
    """Load shedding on the real gateway, whose http.max_in_flight is MAX_IN_FLIGHT here:
    video-service's GetVideo is held 2 s by a latency fault (an answer, so the breaker counts
    successes), and 3 x MAX_IN_FLIGHT requests for one video go at once (as the uploader: its
    per-user rate limit has room, the address's may not). The ones in flight are served
    (200); the others must be answered at once with 503 overloaded and Retry-After: 1, /health
    must answer 200 meanwhile (never shed), and the gateway's
    http_requests_shed_total{endpoint="/api/v1/videos/{id}"} must count every shed request."""
    faults = f"http://127.0.0.1:{ADMIN['video-service']}/admin/faults/GetVideo"
    status, _ = request("PUT", faults, {"kind": "latency", "delay_ms": 2000, "ratio": 1.0})
    if not check(status == 200, "fault injection turned on (video-service GetVideo held 2 s)"):
        return
    # The gateway keeps a public video's answer for cache.video_ttl_ms (1 s by default): let
    # the one of the earlier healthy reads expire, so that the burst reaches video-service.
    time.sleep(VIDEO_CACHE_TTL_S + 0.3)
    headers = uploader.auth() if uploader else {}
    answers: list[tuple[int, str | None, str | None, float]] = []
    lock = threading.Lock()

    def one() -> None:
        answer = get_with_headers(f"{GATEWAY}/api/v1/videos/{VIDEO}", headers)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(3 * MAX_IN_FLIGHT)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        health = request("GET", f"{GATEWAY}/health")[0]
        for t in threads:
            t.join(30)
    finally:
        status, _ = request("DELETE", faults)
    check(status == 204, "fault injection turned off")
    served = [a for a in answers if a[0] == 200]
    shed = [a for a in answers if a[0] == 503]
    summary: dict[str, int] = {}
    for a in answers:
        key = f"{a[0]} {a[2] or ''}".strip()
        summary[key] = summary.get(key, 0) + 1
    check(len(answers) == len(threads) and len(served) + len(shed) == len(answers)
          and 1 <= len(served) <= MAX_IN_FLIGHT and len(shed) >= len(answers) - MAX_IN_FLIGHT,
          f"{len(threads)} requests at once: at most {MAX_IN_FLIGHT} served, the rest shed ({summary})")
    slowest = max((a[3] for a in shed), default=0.0)
    check(bool(shed) and all(a[1] == "1" and a[2] == "overloaded" for a in shed) and slowest < 1.5,
          "every shed request is answered at once with 503 overloaded and Retry-After: 1 "
          f"(Retry-After {sorted({str(a[1]) for a in shed})}, slowest {slowest * 1000:.0f} ms)")
    check(health == 200, f"/health answers 200 while the gateway sheds (HTTP {health})")
    _, body = request("GET", f"http://127.0.0.1:{ADMIN['gateway']}/metrics")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode(errors="replace").splitlines()
        if line.startswith("http_requests_shed_total{") and 'endpoint="/api/v1/videos/{id}"' in line
    )
    check(counted == len(shed),
          f'http_requests_shed_total{{endpoint="/api/v1/videos/{{id}}"}} counts the shed requests ({counted} vs {len(shed)})')


# ----------------------------------------------------------------------------- videos


class ObjectStore:
    """The stack's S3-compatible store: an s3s-fs this script runs (scripts/dev-stack.sh uses
    any store that answers on SOCIALFLOW__S3__ENDPOINT and starts none then), so the drill
    can stop it and start it again on the same data."""

    def __init__(self, tmp: str, env: dict) -> None:
        self.port = stable_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.root = os.path.join(tmp, "s3")
        os.makedirs(self.root)
        self.log = os.path.join(tmp, "s3s-fs.log")
        self.keys = (env.get("SOCIALFLOW__S3__ACCESS_KEY", "socialflow"),
                     env.get("SOCIALFLOW__S3__SECRET_KEY", "socialflow-dev-secret"))
        self.proc: subprocess.Popen | None = None

    def answers(self) -> bool:
        return request("GET", self.endpoint, timeout=2)[0] != 0

    def start(self) -> bool:
        self.proc = subprocess.Popen(
            ["s3s-fs", "--host", "127.0.0.1", "--port", str(self.port),
             "--access-key", self.keys[0], "--secret-key", self.keys[1], self.root],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
        )
        return wait_until(f"s3s-fs on {self.endpoint}", 30, self.answers, every=0.2)

    def stop(self) -> bool:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return not self.answers()


def multipart(fields: list[tuple[str, str]], filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body: the text fields, then `file`."""
    boundary = f"sf-drill-{uuid.uuid4().hex}"
    out = b""
    for name, value in fields:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n").encode()
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: video/mp4\r\n\r\n").encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


class Uploader:
    """One user (a new name each run: the register and login rate limits are per address,
    so the drill makes one registration and one login) uploading through the gateway."""

    def __init__(self) -> None:
        self.token = ""
        self.refresh_token = ""
        self.name = f"drill_up_{os.getpid()}_{int(time.time()) % 100000}"

    def sign_in(self) -> bool:
        password = "drill uploads passphrase 2026"
        status, _ = request("POST", f"{GATEWAY}/api/v1/auth/register", {
            "email": f"{self.name}@example.com", "username": self.name,
            "password": password, "display_name": "Drill uploader",
        })
        if status not in (200, 201):
            say(f"register {self.name}: {status}")
            return False
        status, body = request("POST", f"{GATEWAY}/api/v1/auth/login", {"login": self.name, "password": password})
        if status != 200:
            say(f"login {self.name}: {status}")
            return False
        tokens = json.loads(body)
        self.token = tokens.get("access_token", "")
        self.refresh_token = tokens.get("refresh_token", "")
        return bool(self.token)

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(self, content: bytes, title: str) -> tuple[int, dict]:
        body, content_type = multipart([("title", title), ("visibility", "public")], "drill.mp4", content)
        status, reply = request("POST", f"{GATEWAY}/api/v1/videos", headers={**self.auth(), "Content-Type": content_type},
                                raw=body, timeout=60)
        try:
            return status, json.loads(reply or b"{}")
        except ValueError:
            return status, {"raw": reply[:200].decode(errors="replace")}

    def status_of(self, video_id: str) -> str:
        status, body = request("GET", f"{GATEWAY}/api/v1/videos/{video_id}", headers=self.auth())
        if status != 200:
            return f"HTTP {status}"
        return json.loads(body).get("status", "?")

    def upload_until_ready(self, content: bytes, title: str, retry_for: float = 0) -> bool:
        """Uploads (again while it fails, for up to `retry_for` s) and waits for `ready`."""
        end = time.time() + retry_for
        while True:
            status, reply = self.upload(content, title)
            if status == 202 or time.time() >= end:
                break
            time.sleep(1)
        if not check(status == 202 and bool(reply.get("video_id")),
                     f"a real video uploaded through the gateway is accepted (HTTP {status}, expected 202: {reply})"):
            return False
        video_id = reply["video_id"]
        seen: list[str] = []

        def ready() -> bool:
            seen.append(self.status_of(video_id))
            return seen[-1] in ("ready", "failed")

        wait_until(f"video {video_id} processed", DEADLINE_READY, ready)
        return check(bool(seen) and seen[-1] == "ready",
                     f"video {video_id} is processed into `ready` (last seen: {seen[-1] if seen else None})")


def real_video(tmp: str) -> bytes:
    """One second of ffmpeg's test pattern, MPEG-4 in MP4: small, and decodable."""
    out = os.path.join(tmp, "drill.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
                    "-pix_fmt", "yuv420p", "-c:v", "mpeg4", out], check=True)
    with open(out, "rb") as f:
        return f.read()


def object_store_drill(store: ObjectStore, uploader: Uploader, video: bytes, hook: "Webhook") -> None:
    """The object store goes away under real uploads: they fail (503, `failed`) and
    VideoUploadFailure fires; it comes back: uploads work again and the alert resolves."""
    check(store.stop(), f"the object store is stopped (s3s-fs on {store.endpoint})")
    statuses = [uploader.upload(FAKE_MP4, "drill upload while the store is down")[0] for _ in range(3)]
    check(all(s == 503 for s in statuses), f"uploads answer 503 while the object store is down ({statuses})")

    def firing() -> bool:
        uploader.upload(FAKE_MP4, "drill upload while the store is down")
        time.sleep(0.2)
        return bool(hook.alerts("VideoUploadFailure", "video-service", "firing"))

    if check(wait_until("VideoUploadFailure firing", DEADLINE_ALERT, firing),
             "the webhook received VideoUploadFailure for video-service"):
        alert = hook.alerts("VideoUploadFailure", "video-service", "firing")[0]
        check(alert["labels"].get("severity") == "critical"
              and alert["annotations"].get("runbook_url", "").endswith("VideoUploadFailure.md"),
              "the notification carries severity=critical and its runbook_url")

    if not check(store.start(), f"the object store is started again on the same data ({store.endpoint})"):
        return
    # The first attempts may still meet the client's stale connections: retry a little.
    uploader.upload_until_ready(video, "drill video after the outage", retry_for=30)
    check(wait_until("VideoUploadFailure resolved", DEADLINE_RESOLVE,
                     lambda: bool(hook.alerts("VideoUploadFailure", "video-service", "resolved")), every=1),
          "the webhook received VideoUploadFailure's resolved notification")


# ----------------------------------------------------------------------------- dashboards

SERVICES = list(ADMIN)


def variants(expr: str) -> list[str]:
    base = (
        expr.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m")
        .replace("$__interval", "30s").replace("${__interval}", "30s")
        .replace("$__range", "5m").replace("${__range}", "5m")
    )
    if not re.search(r"\$\{?service\}?", base):
        out = [base]
    else:
        out = [re.sub(r"\$\{?service\}?", s, base) for s in [".*", *SERVICES]]
    return [re.sub(r"\$\{?[A-Za-z_]\w*(?::\w+)?\}?", ".*", e) for e in out]


def has_data(prom_port: int, expr: str) -> bool:
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = request("GET", url)
    if status != 200:
        return False
    result = json.loads(body).get("data", {}).get("result", [])
    return bool(result)


# Exporter metrics the drill's own processes provide: `up` is Prometheus', probe_* of a
# plain-HTTP target come from the drill's blackbox exporter.
DRILL_PROVIDES = {"up", "probe_success", "probe_duration_seconds"}
# Why a panel on these cannot have data here, though the metric is allowlisted.
NOT_HERE = {"probe_ssl_earliest_cert_expiry": "the drill's gateway serves plain HTTP: no certificate to measure"}


def check_dashboards(prom_port: int) -> None:
    allow, deny = mr.load_allowlist()
    for path in mr.dashboard_files():
        with open(path) as f:
            dash = json.load(f)
        for where, _logql in mr.dashboard_log_queries(dash):
            say(f"skip {os.path.basename(path)} {where}: a Loki (LogQL) panel; the drill runs no Loki "
                "(scripts/check-monitoring.sh checks its labels, check-deploy.py --live the trace link)")
        for where, expr, kind in mr.dashboard_queries(dash):
            if kind != "expr":
                continue
            names = mr.metric_names(expr)
            label = f"{os.path.basename(path)} {where}"
            reasons = sorted({NOT_HERE[n] for n in names if n in NOT_HERE})
            if reasons:
                say(f"skip {label}: {'; '.join(reasons)}")
                continue
            if names and all(n not in DRILL_PROVIDES and mr.allowlisted(n, allow, deny) for n in names):
                say(f"skip {label}: exporter metrics only ({', '.join(sorted(names))})")
                continue
            ok = any(has_data(prom_port, e) for e in variants(expr))
            check(ok, f"{label} returns data")


# ----------------------------------------------------------------------------- main


def main() -> int:
    for tool in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter", "psql", "s3s-fs", "ffmpeg"):
        if not shutil.which(tool):
            say(f"{tool} is missing: run scripts/install-test-deps.sh")
            print("alert-drill: 0 passed, 1 failed")
            return 1
    for port in (8000, *ADMIN.values()):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                say(f"port {port} is in use: stop 'make run' first")
                print("alert-drill: 0 passed, 1 failed")
                return 1

    tmp = tempfile.mkdtemp(prefix="sf-drill-")
    pg = os.environ.get("SOCIALFLOW_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
    db = f"sf_drill_{int(time.time())}_{os.getpid()}"
    env = dict(os.environ)
    env["SOCIALFLOW__DATABASE__URL"] = pg.rsplit("/", 1)[0] + "/" + db
    env["SOCIALFLOW__RATE_LIMIT__LOGIN__BURST"] = "15"
    env["SOCIALFLOW__SERVER__FAULT_INJECTION"] = "true"
    env["SOCIALFLOW__ACTIVITY__REFRESH_SECS"] = "1"
    # content_performance_score is observed at each scores run (5 minutes by default).
    env["SOCIALFLOW__SCORES__INTERVAL_SECS"] = "1"
    # The payout run pays a creator's share of the period's revenue (the drill's subscription
    # and ad revenue, a few dollars) only from payouts.min_payout_minor ($10.00 by default):
    # at 1 it pays, and revenue_creator_payouts_total gets its first value.
    env["SOCIALFLOW__PAYOUTS__MIN_PAYOUT_MINOR"] = "1"
    # ledger_imbalance is recomputed every 30 s by default: every second here, so that
    # LedgerImbalance fires and resolves within seconds.
    env["SOCIALFLOW__LEDGER__CHECK_INTERVAL_SECS"] = "1"
    # http_requests_shed_total appears at the gateway's first shed request. 8 requests in
    # flight at once (256 by default): the drill's own traffic is one request at a time (plus
    # the blackbox probes), so only shed_drill's burst goes over it.
    env["SOCIALFLOW__HTTP__MAX_IN_FLIGHT"] = str(MAX_IN_FLIGHT)
    env["SOCIALFLOW__REDIS__KEY_PREFIX"] = f"drill:{os.getpid()}:"
    # The stack runs on the built-in development keys, refused without this.
    env["SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY"] = "true"
    procs: list[subprocess.Popen] = []
    hook = Webhook()
    am_port, prom_port, bb_port = free_port(), free_port(), free_port()
    store = ObjectStore(tmp, env)
    env["SOCIALFLOW__S3__ENDPOINT"] = store.endpoint
    uploader = Uploader()
    try:
        if not check(store.start(), f"the object store (s3s-fs) answers on {store.endpoint}"):
            return 1
        say("starting the stack")
        stack = subprocess.Popen(
            [os.path.join(ROOT, "scripts", "dev-stack.sh")], env=env,
            stdout=open(os.path.join(tmp, "stack.log"), "w"), stderr=subprocess.STDOUT,
        )
        procs.append(stack)
        if not check(
            wait_until("the stack", 300, lambda: request("GET", f"{GATEWAY}/health/detailed")[0] == 200),
            "the stack is up (/health/detailed 200)",
        ):
            print(open(os.path.join(tmp, "stack.log")).read()[-4000:])
            return 1
        subprocess.run([os.path.join(ROOT, "scripts", "seed.sh")], env=env, check=True, stdout=subprocess.DEVNULL)

        prom_cfg, am_cfg = write_configs(tmp, am_port, hook.port, bb_port)
        procs.append(subprocess.Popen(
            ["prometheus-blackbox-exporter",
             f"--config.file={os.path.join(ROOT, 'monitoring', 'blackbox', 'blackbox.yml')}",
             f"--web.listen-address=127.0.0.1:{bb_port}"],
            stdout=open(os.path.join(tmp, "blackbox.log"), "w"), stderr=subprocess.STDOUT,
        ))
        procs.append(subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={am_cfg}", f"--storage.path={tmp}/am",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            stdout=open(os.path.join(tmp, "alertmanager.log"), "w"), stderr=subprocess.STDOUT,
        ))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s"],
            stdout=open(os.path.join(tmp, "prometheus.log"), "w"), stderr=subprocess.STDOUT,
        ))
        check(
            wait_until("Prometheus", 60, lambda: request("GET", f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200)
            and wait_until("Alertmanager", 60, lambda: request("GET", f"http://127.0.0.1:{am_port}/-/ready")[0] == 200)
            and wait_until("the blackbox exporter", 60,
                           lambda: request("GET", f"http://127.0.0.1:{bb_port}/-/healthy")[0] == 200),
            "Prometheus, Alertmanager and the blackbox exporter are up with the test copy of the rules",
        )

        # Uptime: monitoring/blackbox/blackbox.yml's http_2xx (2xx, JSON body, no redirect)
        # accepts the real gateway's public routes, through Prometheus' blackbox job.
        def probes_up() -> bool:
            _, body = request("GET", f"http://127.0.0.1:{prom_port}/api/v1/query?"
                              + urllib.parse.urlencode({"query": 'probe_success{job="blackbox"}'}))
            try:
                result = json.loads(body).get("data", {}).get("result", [])
            except ValueError:
                return False
            return {r["metric"].get("instance") for r in result if r["value"][1] == "1"} == set(PROBED)

        check(wait_until("successful probes", 60, probes_up),
              f"the blackbox exporter's http_2xx probes of {', '.join(PROBED)} succeed")

        # --- a video, uploaded and processed, for the video panels and as the baseline
        video = real_video(tmp)
        signed_in = check(uploader.sign_in(), f"a new user ({uploader.name}) registers and logs in")
        if signed_in:
            uploader.upload_until_ready(video, "drill video")

        # --- the fault
        status, _ = request("PUT", "http://127.0.0.1:9002/admin/faults/GetVideo",
                            {"kind": "error", "code": "UNAVAILABLE", "ratio": 1.0})
        check(status == 200, "fault injection turned on (video-service GetVideo → UNAVAILABLE)")
        statuses = get_video(3)
        check(all(s == 503 for s in statuses), f"the gateway answers 503 while the fault is on ({statuses})")

        def firing() -> bool:
            get_video(5)
            return bool(hook.alerts("HighErrorRate", "video-service", "firing"))

        if check(wait_until("HighErrorRate firing", DEADLINE_ALERT, firing),
                 "the webhook received HighErrorRate for video-service"):
            alert = hook.alerts("HighErrorRate", "video-service", "firing")[0]
            check(alert["labels"].get("severity") == "critical"
                  and alert["annotations"].get("runbook_url", "").endswith("HighErrorRate.md"),
                  "the notification carries severity=critical and its runbook_url")

        breaker_drill(hook, uploader if signed_in else None)

        status, _ = request("DELETE", "http://127.0.0.1:9002/admin/faults/GetVideo")
        check(status == 204, "fault injection turned off")

        security_traffic()
        if signed_in:
            engagement_traffic(uploader)
            payments_traffic(uploader, env["SOCIALFLOW__DATABASE__URL"])
            ledger_drill(hook, env["SOCIALFLOW__DATABASE__URL"])

        def resolved() -> bool:
            get_video(5)
            return bool(hook.alerts("HighErrorRate", "video-service", "resolved"))

        check(wait_until("HighErrorRate resolved", DEADLINE_RESOLVE, resolved),
              "the webhook received the resolved notification")

        # The fault is off: the next call after open_ms (5 s) probes video-service, succeeds
        # and closes the breaker; the alert resolves once no open state is left in its window.
        def breaker_resolved() -> bool:
            get_video(1)
            return bool(breaker_alerts(hook, "resolved"))

        check(wait_until("CircuitBreakerOpen resolved", DEADLINE_RESOLVE, breaker_resolved),
              "the webhook received CircuitBreakerOpen's resolved notification")

        check_routing_and_inhibition(tmp, hook, procs)

        # --- the object store fails under real uploads: VideoUploadFailure
        if signed_in:
            object_store_drill(store, uploader, video, hook)

        # --- the gateway at capacity: requests over http.max_in_flight are shed
        shed_drill(uploader if signed_in else None)

        # --- every referenced metric is exported; every dashboard panel has data
        urls = [f"http://127.0.0.1:{p}/metrics" for p in ADMIN.values()]
        rc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "metrics_referenced.py"), "--check", *urls])
        check(rc.returncode == 0, "every metric the rules and dashboards reference is exported")
        get_video(5)
        time.sleep(3)  # a few scrapes of the latest traffic
        check_dashboards(prom_port)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        store.stop()
        hook.server.shutdown()
        subprocess.run(
            f"redis-cli --scan --pattern '{env['SOCIALFLOW__REDIS__KEY_PREFIX']}*' | xargs -r redis-cli del",
            shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        subprocess.run(["psql", pg, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)

    passed = sum(1 for ok, _ in results if ok)
    failed = len(results) - passed
    print(f"alert-drill: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
