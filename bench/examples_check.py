"""Checks for bench/examples.sh: what each example printed, the cost records tollgate
wrote for it, and the manifests that cannot run here (Kubernetes, Compose).

Standard library only, except PyYAML for the manifests. Each command exits non-zero
with a message saying what is wrong.

    examples_check.py ports N                      N free TCP ports on 127.0.0.1
    examples_check.py field NAME < json            one field of a JSON object
    examples_check.py answers FILE EXPECTED        "answer:" and "streamed:" lines
    examples_check.py gemini FILE EXPECTED         curl output: JSON, then SSE events
    examples_check.py records ADMIN QUERY COUNT [FILE]
                                                   COUNT priced records for QUERY (and
                                                   the request ids FILE printed)
    examples_check.py operator ADMIN PROJECT COUNT what an operator sees of the calls: the
                                                   dashboard (signed in through its form)
                                                   and /metrics, against the cost records
    examples_check.py kubernetes FILE OUT          the manifest; its tollgate.toml to OUT
    examples_check.py compose FILE                 the Compose file
"""

import http.cookiejar
import json
import os
import re
import socket
import sys
import time
import urllib.request
from decimal import Decimal


def fail(message):
    sys.exit(f"examples_check: {message}")


def ports(n):
    sockets = [socket.socket() for _ in range(int(n))]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in sockets))
    for s in sockets:
        s.close()


def field(name):
    value = json.load(sys.stdin)[name]
    print(value)


def answers(path, expected):
    lines = open(path, encoding="utf-8").read().splitlines()
    for prefix in ("answer:", "streamed:"):
        got = [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]
        if got and got != [expected] * len(got):
            fail(f"{path}: {prefix} {got}, expected {expected!r}")
    if not any(line.startswith("answer:") for line in lines):
        fail(f"{path}: no answer line")


def gemini(path, expected):
    text = open(path, encoding="utf-8").read()
    first, _, rest = text.partition("\n")
    plain = json.loads(first)
    answer = "".join(p["text"] for p in plain["candidates"][0]["content"]["parts"]).strip()
    if answer != expected:
        fail(f"{path}: generateContent said {answer!r}, expected {expected!r}")
    events = [line[len("data:") :].strip() for line in rest.splitlines() if line.startswith("data:")]
    if not events:
        fail(f"{path}: no stream events")
    streamed = "".join(
        p.get("text", "") for e in events for c in json.loads(e).get("candidates", []) for p in c["content"]["parts"]
    ).strip()
    if streamed != expected:
        fail(f"{path}: streamGenerateContent said {streamed!r}, expected {expected!r}")


def admin_get(admin, path):
    request = urllib.request.Request(f"{admin}{path}")
    token = os.environ.get("TOLLGATE_ADMIN_TOKEN")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def records(admin, query, count, printed=None):
    count = int(count)
    deadline = time.monotonic() + 10
    while True:
        data = admin_get(admin, f"/v1/cost-records?{query}&limit=1000")["data"]
        if len(data) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if len(data) != count:
        fail(f"{query}: {len(data)} cost records, expected {count}")
    for r in data:
        problems = []
        if r["status_code"] != 200:
            problems.append(f"status {r['status_code']}")
        if r["usage_source"] != "reported":
            problems.append(f"usage_source {r['usage_source']}")
        if not r["priced"] or Decimal(r["cost_usd"]) <= 0:
            problems.append(f"cost {r['cost_usd']} (priced {r['priced']})")
        if not r["output_tokens"]:
            problems.append("no output tokens")
        if problems:
            fail(f"{query}: record {r['request_id']} ({r['model']}): {', '.join(problems)}")
    if printed:
        ids = {r["request_id"] for r in data}
        for line in open(printed, encoding="utf-8").read().splitlines():
            if line.startswith("request id:") and line.split(":", 1)[1].strip() not in ids:
                fail(f"{printed}: {line!r} is not among the records of {query}")
    streamed = sorted(r["streamed"] for r in data)
    total = sum(Decimal(r["cost_usd"]) for r in data)
    print(f"{count} records ({', '.join(sorted({r['model'] for r in data}))}; streamed {streamed}), ${total}")


def load_yaml(path):
    import yaml

    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kubernetes(path, out):
    docs = {d["kind"]: d for d in load_yaml(path)}
    for kind in ("ConfigMap", "Secret", "Deployment"):
        if kind not in docs:
            fail(f"{path}: no {kind}")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    if [c["name"] for c in sidecars] != ["tollgate"]:
        fail(f"{path}: expected one native sidecar named tollgate")
    tollgate = sidecars[0]
    for probe, path_ in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if tollgate.get(probe, {}).get("httpGet", {}).get("path") != path_:
            fail(f"{path}: tollgate {probe} should GET {path_}")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in tollgate["volumeMounts"]}
    if "configMap" not in volumes[mounts["/etc/tollgate"]]:
        fail(f"{path}: /etc/tollgate should be the ConfigMap")
    if not set(volumes[mounts["/var/lib/tollgate"]]) & {"emptyDir", "persistentVolumeClaim"}:
        fail(f"{path}: the journal directory should be a volume")
    secret_keys = set(docs["Secret"]["stringData"])
    for env in tollgate["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] not in secret_keys:
            fail(f"{path}: {env['name']} names a key the Secret lacks: {ref['key']}")
    config = docs["ConfigMap"]["data"]["tollgate.toml"]
    if 'mode = "headers"' not in config:
        fail(f"{path}: the sidecar config should set auth.mode = \"headers\"")
    with open(out, "w", encoding="utf-8") as f:
        f.write(config)
    print(f"{len(docs)} documents: {', '.join(docs)}; sidecar probes and volumes as expected")


def compose(path):
    (doc,) = load_yaml(path)
    services = doc["services"]
    if not {"db", "tollgate-1", "tollgate-2"} <= set(services):
        fail(f"{path}: expected services db, tollgate-1 and tollgate-2")
    context = os.path.join(os.path.dirname(path), services["tollgate-1"]["build"])
    if not os.path.isfile(os.path.join(context, "Dockerfile")):
        fail(f"{path}: build context {context} has no Dockerfile")
    journals = {services[s]["volumes"][0] for s in ("tollgate-1", "tollgate-2")}
    if len(journals) != 2:
        fail(f"{path}: the replicas must not share a journal volume")
    print(f"services {', '.join(services)}; build context has the Dockerfile")

def operator(admin, project, count):
    """Signs in to the dashboard as a browser does (form, then cookie), reads the project's
    spend there, and the request count on /metrics (loopback: no token)."""
    count = int(count)
    data = admin_get(admin, f"/v1/cost-records?project_id={project}&limit=1000")["data"]
    total = sum(Decimal(r["cost_usd"]) for r in data)
    if len(data) != count:
        fail(f"project {project}: {len(data)} cost records, expected {count}")
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = f"token={os.environ['TOLLGATE_ADMIN_TOKEN']}".encode()
    with browser.open(f"{admin}/dashboard/login", data=form, timeout=10) as page:
        html = page.read().decode()
        if page.geturl() != f"{admin}/dashboard":
            fail(f"signing in led to {page.geturl()}")
    if not any(c.name == "tollgate_session" for c in jar):
        fail("signing in set no session cookie")
    row = re.search(rf'data-group="{project}".*?class="n cost"><span title="[^"]*" data-usd="([^"]+)"', html, re.S)
    if not row:
        fail(f"the dashboard shows no row for project {project}")
    if Decimal(row.group(1)) != total:
        fail(f"the dashboard shows ${row.group(1)} for the project, its cost records sum to ${total}")
    with urllib.request.urlopen(f"{admin}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    counted = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("tollgate_requests_total{")
    )
    if counted < count:
        fail(f"/metrics counts {counted} requests, expected at least {count}")
    print(f"dashboard: project ${total} = its {count} records; /metrics: {counted:g} requests")


COMMANDS = {
    "operator": operator,
    "ports": ports,
    "field": field,
    "answers": answers,
    "gemini": gemini,
    "records": records,
    "kubernetes": kubernetes,
    "compose": compose,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
