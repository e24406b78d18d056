"""Static checks of deploy/, run by deploy/check.sh in its venv (PyYAML, dockerfile-parse).

    python deploy/check.py CHECK [ARGS]

Each check prints what it looked at and exits 1 with every problem it found. The names the
files must use come from docs/metrics.md (the metrics and attributes) and docs/operations.md
(the documented alert rule and Datadog monitor), so a renamed metric fails here.
"""

import configparser
import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PROBLEMS = []

# What every receiver container must be told for its liveness (the image's HEALTHCHECK too).
LIVENESS = ["/usr/local/bin/supervisord-receiver", "status", "--liveness", "--admin", "127.0.0.1:8787"]
ENTRYPOINT = ["/usr/local/bin/supervisord-receiver"]
CMD = ["run", "--config", "/etc/supervisord-receiver/config.yaml"]


def problem(where, text):
    PROBLEMS.append(f"{where}: {text}")


def rel(path):
    return Path(path).resolve().relative_to(REPO).as_posix()


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- metric names: docs/metrics.md, and their Prometheus names --------------------------------

def metrics_doc():
    """{otlp name: (type, unit)} and the attribute names, from docs/metrics.md's tables."""
    metrics, attributes = {}, set()
    for line in (REPO / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            name = cells[0].strip("`")
            unit = cells[2].strip("`")
            if re.match(r"^(gauge|monotonic sum|histogram|counter|up-down counter)", cells[1]):
                metrics[name] = (cells[1], unit)
            else:
                attributes.add(name)
    if len(metrics) < 20 or "supervisord.can_connect" not in metrics:
        sys.exit("docs/metrics.md: cannot find its metric tables")
    return metrics, attributes


UNITS = {"By": "bytes", "s": "seconds", "ms": "milliseconds"}


def prometheus_names(name, kind, unit):
    """The names the Collector's prometheus exporter gives a metric (add_metric_suffixes on):
    tokens joined by '_', the unit's suffix unless the name has it ({...} units dropped), gauges
    of unit 1 get _ratio, monotonic sums _total, histograms _bucket/_sum/_count."""
    tokens = [t for t in re.split(r"[^a-zA-Z0-9]+", name) if t]
    monotonic = kind.startswith("monotonic sum") or kind.startswith("counter")
    if monotonic:
        tokens = [t for t in tokens if t != "total"]
    suffix = UNITS.get(unit)
    if suffix and suffix not in tokens:
        tokens.append(suffix)
    if unit == "1" and kind.startswith("gauge") and "ratio" not in tokens:
        tokens.append("ratio")
    if monotonic:
        tokens.append("total")
    base = "_".join(tokens)
    if kind.startswith("histogram"):
        return [base + "_bucket", base + "_sum", base + "_count"]
    return [base]


def prometheus_vocabulary():
    metrics, attributes = metrics_doc()
    names = {p for n, (k, u) in metrics.items() for p in prometheus_names(n, k, u)}
    labels = {re.sub(r"[^a-zA-Z0-9_]", "_", a) for a in attributes}
    # Set by the exporter (service.name, service.instance.id) and Prometheus itself.
    labels |= {"job", "instance", "le", "__name__"}
    return names, labels


PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan"}


def promql_names(expr):
    """(metric names, label names) a PromQL expression mentions."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = []
    for m in re.finditer(r"\{([^}]*)\}", s):
        labels += re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(1))
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for m in re.finditer(grouping, s):
        labels += [x.strip() for x in m.group(1).split(",") if x.strip()]
    s = re.sub(grouping, " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)  # Grafana variables ($__rate_interval, ...)
    names = []
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        word, before = m.group(0), s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == "." or word.lower() in PROMQL_WORDS:
            continue  # a number (1e6, 5m) or a keyword
        if s[m.end():].lstrip().startswith("("):
            continue  # a function
        names.append(word)
    return names, labels


def check_promql(where, expr, names, labels):
    found, used = promql_names(expr)
    if not found:
        problem(where, f"names no metric: {expr}")
    for n in found:
        if n not in names:
            problem(where, f"metric {n} is not one of docs/metrics.md's (Prometheus names): {expr}")
    for label in used:
        if label not in labels:
            problem(where, f"label {label} is not an attribute in docs/metrics.md: {expr}")
    return found


def grafana(path):
    names, labels = prometheus_vocabulary()
    dash = json.loads(Path(path).read_text(encoding="utf-8"))
    seen, count = set(), 0

    def walk(panels):
        nonlocal count
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                count += 1
                where = f"{rel(path)}: panel '{p.get('title')}' {t.get('refId')}"
                seen.update(check_promql(where, t.get("expr", ""), names, labels))
                for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")):
                    if label not in labels:
                        problem(where, f"legend names label {label}, not an attribute")
            if p.get("type") != "row" and not p.get("targets"):
                problem(rel(path), f"panel '{p.get('title')}' has no query")
    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        m = re.match(r"^\s*label_values\((.*),\s*(\w+)\)\s*$", query)
        if var.get("type") == "query":
            if not m:
                problem(rel(path), f"variable {var.get('name')}: expected label_values(...): {query}")
                continue
            check_promql(f"{rel(path)}: variable {var['name']}", m.group(1), names, labels)
            if m.group(2) not in labels:
                problem(rel(path), f"variable {var['name']}: label {m.group(2)} unknown")
    print(f"  {rel(path)}: {count} panel queries, {len(seen)} metrics, all in docs/metrics.md")


def rules(rules_path, tests_path):
    """Every rule's metrics exist, every alert is tested firing and not firing, and the rule
    docs/operations.md documents is here word for word."""
    names, labels = prometheus_vocabulary()
    doc = yaml.safe_load(Path(rules_path).read_text(encoding="utf-8"))
    alerts = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            alerts[rule["alert"]] = rule
            check_promql(f"{rel(rules_path)}: {rule['alert']}", rule["expr"], names, labels)
    tests = yaml.safe_load(Path(tests_path).read_text(encoding="utf-8"))
    fires, quiet = set(), set()
    for test in tests.get("tests", []):
        for t in test.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
            for series in test.get("input_series", []):
                check_promql(f"{rel(tests_path)}: {test['name']}", series["series"], names, labels)
    for name in alerts:
        if name not in fires:
            problem(rel(tests_path), f"{name} is never shown firing")
        if name not in quiet:
            problem(rel(tests_path), f"{name} is never shown staying quiet")
    ops = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(groups:.*?)```", ops, re.S)
    if not block:
        problem("docs/operations.md", "no alert rule block found")
    else:
        for rule in yaml.safe_load(block.group(1))["groups"][0]["rules"]:
            if alerts.get(rule["alert"]) != rule:
                problem(rel(rules_path), f"{rule['alert']} differs from docs/operations.md's")
    print(f"  {rel(rules_path)}: {len(alerts)} alerts, each tested firing and quiet; "
          "the documented rule is the same")


# --- Datadog --------------------------------------------------------------------------------

DD_QUERY = re.compile(r"\b(?:avg|sum|min|max|count):([\w.]+)\{([^}]*)\}(?:\s*by\s*\{([^}]*)\})?")


def check_datadog_query(where, query, metrics, tags):
    found = DD_QUERY.findall(query)
    if not found:
        problem(where, f"names no metric: {query}")
    for name, scope, by in found:
        if name not in metrics:
            problem(where, f"metric {name} is not in docs/metrics.md: {query}")
        keys = [t.split(":")[0] for t in scope.split(",") if ":" in t and not t.startswith("$")]
        keys += [t.strip() for t in by.split(",") if t.strip()]
        for key in keys:
            if key not in tags:
                problem(where, f"tag {key} is not an attribute in docs/metrics.md: {query}")
    return [f[0] for f in found]


def datadog(dashboard_path, monitors_path):
    metrics, attributes = metrics_doc()
    dash = json.loads(Path(dashboard_path).read_text(encoding="utf-8"))
    count = 0

    def walk(widgets):
        nonlocal count
        for w in widgets:
            d = w["definition"]
            walk(d.get("widgets", []))
            for r in d.get("requests", []):
                for q in r.get("queries", []):
                    count += 1
                    check_datadog_query(f"{rel(dashboard_path)}: '{d.get('title')}'",
                                        q["query"], metrics, attributes)
    for key in ("title", "layout_type", "widgets"):
        if key not in dash:
            problem(rel(dashboard_path), f"no {key}")
    walk(dash.get("widgets", []))
    print(f"  {rel(dashboard_path)}: {count} queries, metrics and tags in docs/metrics.md")

    monitors = json.loads(Path(monitors_path).read_text(encoding="utf-8"))
    queries = []
    for m in monitors:
        where = f"{rel(monitors_path)}: '{m.get('name')}'"
        for key in ("name", "type", "query", "message", "options"):
            if key not in m:
                problem(where, f"no {key}")
        check_datadog_query(where, m.get("query", ""), metrics, attributes)
        threshold = re.search(r"([<>]=?)\s*([\d.]+)\s*$", m.get("query", ""))
        critical = m.get("options", {}).get("thresholds", {}).get("critical")
        if not threshold or float(threshold.group(2)) != critical:
            problem(where, "options.thresholds.critical differs from the query's threshold")
        queries.append(m.get("query", ""))
    ops = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    documented = re.search(r"```text\n(max\(last_5m\):[^\n]*)\n```", ops)
    if not documented or documented.group(1) not in queries:
        problem(rel(monitors_path), "no monitor has docs/operations.md's query word for word")
    wanted = {"unreachable": "supervisord.can_connect{", "down but meant to run": "autostart:true",
              "restarts": "supervisord.process.restarts{", "FATAL": "state:fatal",
              "memory growth": "supervisord.process.memory.usage{"}
    for what, needle in wanted.items():
        if not any(needle in q for q in queries):
            problem(rel(monitors_path), f"no monitor for {what}")
    print(f"  {rel(monitors_path)}: {len(monitors)} monitors (unreachable, down but meant to run, "
          "FATAL, restarts, memory); the documented query is the same")


# --- Dockerfile and compose -----------------------------------------------------------------

def dockerfile(path):
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    where = rel(path)
    stages, current = [], None
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            current = {"from": ins["value"], "ins": []}
            stages.append(current)
        elif current is not None:
            current["ins"].append(ins)
    if len(stages) < 2:
        problem(where, "not multi-stage")
        return
    builder, final = stages[0], stages[-1]
    if not re.match(r"rust:\S+\s+AS\s+\w+", builder["from"], re.I):
        problem(where, f"the builder is not the official rust image: {builder['from']}")
    if not any("cargo build --profile dist --locked" in i["value"] for i in builder["ins"] if i["instruction"] == "RUN"):
        problem(where, "the builder does not run cargo build --profile dist --locked")
    if "distroless" not in final["from"]:
        problem(where, f"the final stage is not a minimal base: {final['from']}")

    def last(name):
        found = [i["value"] for i in final["ins"] if i["instruction"] == name]
        return found[-1] if found else None

    user = last("USER")
    if user is None or user.split(":")[0] in ("root", "0"):
        problem(where, f"final stage USER is not a non-root user: {user}")

    def exec_form(name, value):
        try:
            form = json.loads(value)
        except (TypeError, ValueError):
            form = None
        if not isinstance(form, list):
            problem(where, f"{name} is not in exec form: {value}")
        return form

    if exec_form("ENTRYPOINT", last("ENTRYPOINT")) != ENTRYPOINT:
        problem(where, f"ENTRYPOINT should be {ENTRYPOINT}")
    if exec_form("CMD", last("CMD")) != CMD:
        problem(where, f"CMD should be {CMD}")
    health = last("HEALTHCHECK")
    if health is None:
        problem(where, "no HEALTHCHECK")
    else:
        m = re.search(r"\bCMD\s+(\[.*\])\s*$", health, re.S)
        if not m or exec_form("HEALTHCHECK", m.group(1)) != LIVENESS:
            problem(where, f"HEALTHCHECK should be CMD {json.dumps(LIVENESS)}: {health}")
    if not any(i["instruction"] == "COPY" and "--from=" in i["value"]
               and i["value"].split()[-1] == ENTRYPOINT[0] for i in final["ins"]):
        problem(where, f"the final stage does not copy the binary to {ENTRYPOINT[0]}")
    # Every source the builder copies from the context exists at the repository root (the
    # context) and passes Dockerfile.dockerignore.
    ignore = Path(str(path) + ".dockerignore")
    kept = [line[1:].strip().strip("/") for line in ignore.read_text().splitlines()
            if line.startswith("!")] if ignore.exists() else None
    if ignore.exists() and "*" not in ignore.read_text().splitlines():
        problem(rel(ignore), "does not start from '*' (send nothing but what is listed)")
    for ins in (i for s in stages for i in s["ins"] if i["instruction"] == "COPY"):
        if "--from=" in ins["value"]:
            continue
        for src in ins["value"].split()[:-1]:
            src = src.strip("./") or "."
            if not (REPO / src).exists():
                problem(where, f"COPY {src}: not in the build context (the repository root)")
            if kept is not None and src.split("/")[0] not in kept:
                problem(rel(ignore), f"excludes {src}, which the Dockerfile copies")
    print(f"  {where}: {len(stages)} stages, final USER {user}, ENTRYPOINT, CMD and HEALTHCHECK "
          "in exec form, COPY sources in the context")


def compose(path):
    path = Path(path)
    base = path.parent
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = rel(path)
    services = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    for name in ("supervisord", "receiver", "otel-collector", "prometheus", "grafana"):
        if name not in services:
            problem(where, f"no {name} service")
    mounts = {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            problem(where, f"{name}: neither image nor build")
        build = svc.get("build")
        if build:
            ctx = base / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile_path = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not ctx.is_dir():
                problem(where, f"{name}: build context {rel(ctx) if ctx.exists() else ctx} is not a directory")
            elif not dockerfile_path.is_file():
                problem(where, f"{name}: no {dockerfile_path}")
        for dep in svc.get("depends_on", []):
            if dep not in services:
                problem(where, f"{name}: depends_on unknown service {dep}")
        pid = svc.get("pid", "")
        if pid.startswith("service:") and pid[8:] not in services:
            problem(where, f"{name}: pid {pid}: no such service")
        for vol in svc.get("volumes", []):
            src, target = vol.split(":")[:2]
            if src.startswith((".", "/")):
                if not (base / src).exists():
                    problem(where, f"{name}: mounts {src}, which does not exist")
                else:
                    mounts[(name, target)] = (base / src).resolve()
            elif src not in volumes:
                problem(where, f"{name}: volume {src} is not declared")
    # The pieces point at each other: receiver -> collector:4317, Prometheus -> collector:8889,
    # the rules and dashboard are mounted where their configs look.
    receiver_cfg = mounts.get(("receiver", "/etc/supervisord-receiver/config.yaml"))
    collector_cfg = mounts.get(("otel-collector", "/etc/otelcol-contrib/config.yaml"))
    prom_cfg = mounts.get(("prometheus", "/etc/prometheus/prometheus.yml"))
    if not (receiver_cfg and collector_cfg and prom_cfg):
        problem(where, "the receiver, collector or Prometheus config is not mounted where read")
        return
    collector = yaml.safe_load(collector_cfg.read_text())
    ports = {proto: str(p.get("endpoint", "")).rsplit(":", 1)[-1]
             for proto, p in collector["receivers"]["otlp"]["protocols"].items()}
    for exp, conf in yaml.safe_load(receiver_cfg.read_text()).get("exporters", {}).items():
        if not exp.startswith("otlp"):
            continue
        proto = "grpc" if conf.get("protocol", "grpc") == "grpc" else "http"
        m = re.match(r"https?://([^:/]+):(\d+)", str(conf.get("endpoint", "")))
        if not (m and m.group(1) in services and m.group(2) == ports.get(proto)):
            problem(rel(receiver_cfg), f"exporter {exp} ({proto}) does not point at a service on "
                    f"the Collector's OTLP/{proto} port {ports.get(proto)}")
    prom = yaml.safe_load(prom_cfg.read_text())
    exporter_port = str(collector["exporters"]["prometheus"]["endpoint"]).rsplit(":", 1)[-1]
    targets = [t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    if f"otel-collector:{exporter_port}" not in targets:
        problem(rel(prom_cfg), f"does not scrape otel-collector:{exporter_port}")
    for rule_file in prom.get("rule_files", []):
        if ("prometheus", f"/etc/prometheus/{rule_file}") not in mounts:
            problem(where, f"prometheus: {rule_file} is not mounted beside prometheus.yml")
    for (svc, target), src in mounts.items():
        if svc == "grafana" and target.endswith(".json"):
            provider = yaml.safe_load(mounts[("grafana", "/etc/grafana/provisioning/dashboards/supervisord.yaml")].read_text())
            dirs = [p["options"]["path"] for p in provider["providers"]]
            if str(Path(target).parent) not in dirs:
                problem(where, f"grafana: {target} is not in a provisioned dashboards path {dirs}")
    conf = base / "supervisord" / "supervisord.conf"
    ini = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=True)
    ini.read(conf)
    programs = [s for s in ini.sections() if s.startswith("program:")]
    socket = ini.get("unix_http_server", "file", fallback="")
    if not socket.startswith("/run/supervisor/"):
        problem(rel(conf), "the socket is not on the shared volume /run/supervisor")
    for section in programs:
        for word in ini.get(section, "command").split():
            if word.startswith("/opt/programs/") and not (conf.parent / "programs" / word[14:]).is_file():
                problem(rel(conf), f"{section}: {word} is not in supervisord/programs/")
    print(f"  {where}: {len(services)} services, every build context, mount and reference "
          f"found; supervisord.conf has {len(programs)} programs")


# --- OpenTelemetry Collector configs --------------------------------------------------------

KNOWN = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter", "transform", "resource", "attributes", "filter"},
    "exporters": {"prometheus", "debug", "datadog", "otlp", "otlphttp"},
    "extensions": {"health_check"},
}


def collector(where, doc):
    for key in doc:
        if key not in ("receivers", "processors", "exporters", "extensions", "connectors", "service"):
            problem(where, f"unknown top-level key {key}")
    for section, known in KNOWN.items():
        for name in doc.get(section) or {}:
            if name.split("/")[0] not in known:
                problem(where, f"{section}: unknown component type {name}")
    for ext in doc.get("service", {}).get("extensions", []):
        if ext not in (doc.get("extensions") or {}):
            problem(where, f"service.extensions: {ext} is not defined")
    pipelines = doc.get("service", {}).get("pipelines", {})
    if not pipelines:
        problem(where, "no pipelines")
    for pname, p in pipelines.items():
        if pname.split("/")[0] not in ("metrics", "logs", "traces"):
            problem(where, f"pipeline {pname}: unknown signal")
        for section in ("receivers", "processors", "exporters"):
            for comp in p.get(section, []):
                if comp not in (doc.get(section) or {}):
                    problem(where, f"pipeline {pname}: {section[:-1]} {comp} is not defined")
        if not p.get("receivers") or not p.get("exporters"):
            problem(where, f"pipeline {pname}: needs receivers and exporters")
    prom = (doc.get("exporters") or {}).get("prometheus")
    if prom is not None and not (prom.get("resource_to_telemetry_conversion") or {}).get("enabled"):
        problem(where, "prometheus exporter without resource_to_telemetry_conversion: supervisor_server would be lost")
    print(f"  {where}: {len(pipelines)} pipelines, every component defined")


def collectors(*paths):
    for path in paths:
        for doc in load_all(path):
            if doc.get("kind") == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    sub = yaml.safe_load(text)
                    if isinstance(sub, dict) and "receivers" in sub:
                        collector(f"{rel(path)}: ConfigMap {doc['metadata']['name']} {key}", sub)
            elif "receivers" in doc:
                collector(rel(path), doc)


# --- receiver configs, for `supervisord-receiver validate` ----------------------------------

def receiver_configs(out_dir, strip_admin):
    """Writes every receiver config in deploy/ (the compose one, the ConfigMaps') to out_dir,
    for deploy/check.sh to validate with the binary; without `admin:` when the binary predates
    it. Prints `file<TAB>origin` lines."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = [(rel(DEPLOY / "docker" / "receiver.yaml"), (DEPLOY / "docker" / "receiver.yaml").read_text())]
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    sub = yaml.safe_load(text)
                    if isinstance(sub, dict) and "targets" in sub:
                        found.append((f"{rel(path)}: ConfigMap {doc['metadata']['name']}", text))
    for i, (origin, text) in enumerate(found):
        doc = yaml.safe_load(text)
        if "admin" not in doc:
            problem(origin, "no admin: section (the liveness probe and HEALTHCHECK ask it)")
        elif doc["admin"] != {"endpoint": "127.0.0.1:8787"}:
            problem(origin, f"admin is not {{endpoint: 127.0.0.1:8787}}: {doc['admin']}")
        if strip_admin:
            doc.pop("admin", None)
            text = yaml.safe_dump(doc, sort_keys=False)
        target = out / f"receiver-{i}.yaml"
        target.write_text(text)
        print(f"{target}\t{origin}")


# --- Kubernetes: what the schemas do not say -------------------------------------------------

def kubernetes(*paths):
    docs = [(rel(p), d) for p in paths for d in load_all(p)]
    by_kind = {}
    for where, d in docs:
        by_kind.setdefault(d["kind"], []).append((where, d))
    names = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    workloads = [(w, d) for w, d in docs if d["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Pod")]
    receivers = 0
    for where, d in workloads:
        spec = d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"]
        labels = {} if d["kind"] == "Pod" else d["spec"]["template"]["metadata"].get("labels", {})
        here = f"{where}: {d['kind']} {d['metadata']['name']}"
        if d["kind"] != "Pod" and d["spec"]["selector"]["matchLabels"].items() - labels.items():
            problem(here, "selector does not match the pod labels")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            cm = v.get("configMap", {}).get("name")
            if cm and ("ConfigMap", cm) not in names:
                problem(here, f"volume {v['name']}: no ConfigMap {cm}")
        pod_sc = spec.get("securityContext", {})
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                claims = [t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])]
                if m["name"] not in volumes and m["name"] not in claims:
                    problem(here, f"{c['name']}: mounts unknown volume {m['name']}")
            for e in c.get("env", []):
                if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT":
                    service_endpoint(here, e["value"], by_kind)
            if not c["image"].startswith("supervisord-receiver"):
                continue
            receivers += 1
            sc = {**pod_sc, **c.get("securityContext", {})}
            name = f"{here} container {c['name']}"
            if not sc.get("runAsNonRoot") or sc.get("runAsUser", 65532) == 0:
                problem(name, "not runAsNonRoot")
            if not sc.get("readOnlyRootFilesystem"):
                problem(name, "root filesystem not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                problem(name, "allowPrivilegeEscalation not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problem(name, "capabilities not dropped (drop: [ALL])")
            for kind in ("requests", "limits"):
                if set(c.get("resources", {}).get(kind, {})) != {"cpu", "memory"}:
                    problem(name, f"resources.{kind} needs cpu and memory")
            probe = c.get("livenessProbe", {})
            if probe.get("exec", {}).get("command") != LIVENESS and probe.get("httpGet", {}).get("path") != "/healthz":
                problem(name, f"livenessProbe is neither exec {LIVENESS} nor httpGet /healthz")
            if not any(m["mountPath"] == "/etc/supervisord-receiver" for m in c.get("volumeMounts", [])):
                problem(name, "no config mounted at /etc/supervisord-receiver")
            env = {e["name"]: e for e in c.get("env", [])}
            args = c.get("args", [])
            if d["kind"] == "DaemonSet":
                if not any("hostPath" in volumes.get(m["name"], {}) for m in c["volumeMounts"]):
                    problem(name, "does not mount the node's supervisord socket (hostPath)")
                if "OTEL_EXPORTER_OTLP_ENDPOINT" not in env:
                    problem(name, "no OTEL_EXPORTER_OTLP_ENDPOINT")
            if d["kind"] == "StatefulSet":
                shard = args[args.index("--shard") + 1] if "--shard" in args else ""
                if shard != f"$(POD_NAME)/{d['spec']['replicas']}":
                    problem(name, f"--shard should be $(POD_NAME)/{d['spec']['replicas']} (the replicas), is {shard!r}")
                ref = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                if ref != "metadata.name":
                    problem(name, "POD_NAME does not come from the downward API (metadata.name)")
                svc = [s for _, s in by_kind.get("Service", []) if s["metadata"]["name"] == d["spec"]["serviceName"]]
                if not svc or svc[0]["spec"].get("clusterIP") != "None":
                    problem(name, f"serviceName {d['spec']['serviceName']} is not a headless Service")
            if d["kind"] == "Deployment" and len(spec["containers"]) > 1:
                shared = [m["name"] for m in c["volumeMounts"] if "emptyDir" in volumes.get(m["name"], {})]
                others = [m["name"] for o in spec["containers"] if o is not c for m in o.get("volumeMounts", [])]
                if not set(shared) & set(others):
                    problem(name, "shares no emptyDir with the supervisord container")
    for where, s in by_kind.get("Service", []):
        selector = s["spec"].get("selector", {})
        if not any(selector.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()
                   for _, d in workloads if d["kind"] != "Pod"):
            problem(where, f"Service {s['metadata']['name']} selects no workload")
    for kind in ("DaemonSet", "StatefulSet"):
        if kind not in by_kind:
            problem("deploy/kubernetes", f"no {kind}")
    # The receivers' configs send to the gateway Service, on a port it has.
    for where, d in by_kind.get("ConfigMap", []):
        for text in (d.get("data") or {}).values():
            sub = yaml.safe_load(text)
            if isinstance(sub, dict) and "targets" in sub:
                for exp in (sub.get("exporters") or {}).values():
                    service_endpoint(f"{where}: ConfigMap {d['metadata']['name']}", exp.get("endpoint", ""), by_kind)
    print(f"  {len(docs)} objects in {len(paths)} files: {receivers} receiver containers non-root, "
          "read-only, no capabilities, with resources and a liveness probe; references resolve")


def service_endpoint(where, url, by_kind):
    m = re.match(r"https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)", url)
    if not m:
        return
    for _, s in by_kind.get("Service", []):
        if (s["metadata"]["name"], s["metadata"].get("namespace")) == m.group(1, 2):
            if int(m.group(3)) not in [p["port"] for p in s["spec"]["ports"]]:
                problem(where, f"{url}: Service {m.group(1)} has no port {m.group(3)}")
            return
    problem(where, f"{url}: no Service {m.group(1)} in namespace {m.group(2)}")


# --- docs/deploy.md covers every file -------------------------------------------------------

def docs():
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for p in files:
        if not re.search(re.escape(rel(p)) + r"(?![\w.-])", text):
            problem("docs/deploy.md", f"does not mention {rel(p)}")
    print(f"  docs/deploy.md names all {len(files)} files under deploy/")


def main():
    check, args = sys.argv[1], sys.argv[2:]
    if check == "receiver-configs":
        receiver_configs(args[0], strip_admin=args[1:] == ["--strip-admin"])
    else:
        {"grafana": grafana, "rules": rules, "datadog": datadog, "dockerfile": dockerfile,
         "compose": compose, "collectors": collectors, "kubernetes": kubernetes,
         "docs": docs}[check](*args)
    if PROBLEMS:
        print("\n".join(f"FAIL {p}" for p in PROBLEMS), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
