#!/usr/bin/python3
"""Every metric the Grafana dashboard and the Prometheus rules query is one outboxd exports.

    check_metric_names.py DASHBOARD_JSON RULES_YML METRICS_URL

METRICS_URL is a running relay's /metrics. Checks:
- the dashboard is valid JSON with the `instance` and `slot` variables, and each panel query
  names only exported metrics (histograms: NAME_bucket/_sum/_count) with labels they carry
  (or the scrape's own `instance` and `job`); it uses no recording rule, so it works
  without the rules file;
- every metric in the rules' expressions is exported, every recording rule an alert uses is
  defined in the file, and every label a selector names exists on that metric.

Prints one line per finding and "N passed, N failed" last; exits 1 on any finding.
"""
import json
import re
import sys
import urllib.request

import yaml

TARGET_LABELS = {"instance", "job"}
findings = []
passed = 0


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        findings.append(what)


def exported(url):
    """{series name: set of label names} from the exposition at url."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    series = {}
    types = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        series.setdefault(m.group(1), set()).update(labels)
    for name, kind in types.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                series.setdefault(name + suffix, set())
    return series


def selectors(expr):
    """(name, {label names}) of each metric or recording rule an expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, templates
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    # Grouping clauses name labels, not metrics.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?", expr):
        name = m.group(1)
        if name.startswith("outboxd_") or ":" in name:
            labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(3) or ""))
            out.append((name, labels))
    return out


def dashboard_exprs(dash):
    for panel in dash.get("panels", []):
        for t in panel.get("targets", []):
            yield f"panel '{panel.get('title')}'", t.get("expr", "")
        for sub in panel.get("panels", []):
            for t in sub.get("targets", []):
                yield f"panel '{sub.get('title')}'", t.get("expr", "")
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        if var.get("type") == "query":
            q = q.get("query", "") if isinstance(q, dict) else q
            # label_values(metric{...}, label): the metric and the label it lists.
            m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", q.strip())
            check(m is not None, f"variable {var.get('name')}: not label_values(...): {q}")
            if m:
                yield f"variable '{var.get('name')}'", m.group(1)
                sel = selectors(m.group(1))
                if sel:
                    yield f"variable '{var.get('name')}'", f'{sel[0][0]}{{{m.group(2)}=""}}'


def main(dashboard_path, rules_path, url):
    series = exported(url)
    check("outboxd_up" in series, f"{url} exported no outboxd_up: is it a relay?")

    def check_selector(where, name, labels, recorded=()):
        if ":" in name:
            check(name in recorded, f"{where}: {name} is no recording rule of {rules_path}")
            return
        check(name in series, f"{where}: {name} is not exported by outboxd")
        if name in series:
            unknown = labels - series[name] - TARGET_LABELS
            check(not unknown, f"{where}: {name} has no label {sorted(unknown)} (it has {sorted(series[name])})")

    with open(dashboard_path) as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            findings.append(f"{dashboard_path}: not valid JSON: {e}")
            dash = {}
    names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    check({"instance", "slot"} <= names, f"{dashboard_path}: variables {sorted(names)} lack instance or slot")
    queried = 0
    for where, expr in dashboard_exprs(dash):
        for name, labels in selectors(expr):
            queried += 1
            check(":" not in name, f"dashboard {where}: uses recording rule {name}; query raw metrics")
            check_selector(f"dashboard {where}", name, labels)
    check(queried >= 10, f"{dashboard_path}: only {queried} metric selectors found")

    with open(rules_path) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    for r in rules:
        where = f"rule {r.get('record') or r.get('alert')}"
        for name, labels in selectors(r["expr"]):
            if ":" in name:
                check_selector(where, name, labels, recorded)
            else:
                check_selector(where, name, labels)

    for f in findings:
        print("FAIL:", f)
    print(f"metric names: {passed} passed, {len(findings)} failed "
          f"({len(series)} series names exported, {queried} dashboard selectors, {len(rules)} rules)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
