#!/usr/bin/python3
"""Validates deploy/kubernetes/*.yaml (ctest ops_kubernetes_manifests).

    check_kubernetes.py MANIFEST_DIR OUTBOXD_BINARY

1. Schema: every document is checked against the Kubernetes API types of Debian's
   python3-kubernetes (models generated from the API's OpenAPI spec): unknown fields (a typo
   such as `livenesProbe` is silently ignored by a lenient apply), wrong types, missing
   required fields.
2. What the README and outboxd rely on: every OUTBOXD_* variable names a flag of
   `outboxd run`; probes on /healthz and /readyz at the port outboxd serves them on, bound
   beyond loopback; terminationGracePeriodSeconds above --shutdown_timeout; configuration
   from the ConfigMap and the Secret; scrape annotations; resource requests that hold the
   bench's measured RSS; the hot-standby Deployment differs from the single one only where
   it must.

Prints one line per finding and "N passed, N failed" last; exits 1 on any finding.
"""
import copy
import glob
import os
import re
import subprocess
import sys

import yaml
from kubernetes import client

KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("apps/v1", "Deployment"): "V1Deployment",
}
PRIMITIVES = {"str", "int", "bool", "float", "object", "datetime", "date"}
# The bench's peak RSS (a million-event transaction, README "Benchmarks"): requests must hold it.
BENCH_PEAK_RSS_BYTES = 42 * 1000 * 1000

findings = []
passed = 0


def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        findings.append(what)


def schema_errors(value, type_name, path):
    """Errors of `value` against the python-kubernetes type `type_name`."""
    if value is None:
        return []
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in schema_errors(v, m.group(1), f"{path}[{i}]")]
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        return [e for k, v in value.items() for e in schema_errors(v, m.group(1), f"{path}.{k}")]
    if type_name in PRIMITIVES:
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(type_name)
        if expected is not None and (not isinstance(value, expected) or
                                     (type_name != "bool" and isinstance(value, bool))):
            return [f"{path}: expected {type_name}, got {value!r}"]
        return []
    klass = getattr(client.models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name}), got {value!r}"]
    by_json_name = {json: attr for attr, json in klass.attribute_map.items()}
    errors = []
    for key, v in value.items():
        if key not in by_json_name:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        errors += schema_errors(v, klass.openapi_types[by_json_name[key]], f"{path}.{key}")
    if not errors:
        # The models' constructors reject missing required fields and values outside enums.
        try:
            client.ApiClient()._ApiClient__deserialize(value, type_name)
        except (ValueError, TypeError) as e:
            errors.append(f"{path}: {e}")
    return errors


def seconds(duration):
    """absl's duration text (10s, 1m30s, 500ms) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)


def memory_bytes(quantity):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(quantity))
    if not m:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    scale = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1e3, "M": 1e6, "G": 1e9}
    return int(m.group(1)) * scale[m.group(2)]


def run_flags(binary):
    out = subprocess.run([binary, "run", "--help"], capture_output=True, text=True, timeout=30)
    flags = set(re.findall(r"^\s+--([a-z_0-9]+)", out.stdout, re.M))
    check(len(flags) > 10, f"`{binary} run --help` listed no flags: {out.stdout[:200]}{out.stderr[:200]}")
    return flags


def main(manifest_dir, binary):
    docs = {}
    for path in sorted(glob.glob(os.path.join(manifest_dir, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                name = f"{os.path.basename(path)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                type_name = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
                check(type_name is not None, f"{name}: unexpected apiVersion/kind")
                if type_name:
                    errors = schema_errors(doc, type_name, name)
                    check(not errors, "\n".join(errors))
                docs.setdefault(os.path.basename(path), []).append(doc)

    def one(file, kind):
        found = [d for d in docs.get(file, []) if d.get("kind") == kind]
        check(len(found) == 1, f"{file}: expected one {kind}, found {len(found)}")
        return found[0] if found else {}

    configmap = one("configmap.yaml", "ConfigMap")
    secret = one("secret.yaml", "Secret")
    single = one("deployment.yaml", "Deployment")
    standby = one("deployment-hot-standby.yaml", "Deployment")
    config = configmap.get("data", {})
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))

    flags = run_flags(binary)
    for key in sorted(set(config) | secret_keys):
        if key.startswith("OUTBOXD_"):
            flag = key[len("OUTBOXD_"):].lower()
            check(flag in flags, f"{key} names no flag of `outboxd run` (--{flag})")
        else:
            check(key.startswith("PG"), f"{key}: neither an OUTBOXD_* nor a libpq PG* variable")
    check("PGPASSWORD" in secret_keys, "the Secret holds no PGPASSWORD")
    check("password" not in config.get("OUTBOXD_POSTGRES", ""),
          "OUTBOXD_POSTGRES in the ConfigMap carries a password; it belongs in the Secret")
    for key in ("OUTBOXD_POSTGRES", "OUTBOXD_BROKERS", "OUTBOXD_METRICS_LISTEN", "OUTBOXD_SHUTDOWN_TIMEOUT"):
        check(key in config, f"the ConfigMap does not set {key}")
    metrics_host, _, metrics_port = config.get("OUTBOXD_METRICS_LISTEN", ":").rpartition(":")
    check(metrics_host not in ("127.0.0.1", "localhost", "[::1]", ""),
          f"OUTBOXD_METRICS_LISTEN={config.get('OUTBOXD_METRICS_LISTEN')}: probes and Prometheus "
          "cannot reach a loopback address")
    shutdown = seconds(config.get("OUTBOXD_SHUTDOWN_TIMEOUT", "10s"))
    stall = seconds(config.get("OUTBOXD_STALL_TIMEOUT", "5m"))

    for file, dep in (("deployment.yaml", single), ("deployment-hot-standby.yaml", standby)):
        spec = dep.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        containers = pod.get("containers", [])
        check(len(containers) == 1, f"{file}: expected one container")
        c = containers[0] if containers else {}
        labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        selector = spec.get("selector", {}).get("matchLabels", {})
        check(selector and all(labels.get(k) == v for k, v in selector.items()),
              f"{file}: the selector does not match the pod's labels")
        check(c.get("args", [])[:1] == ["run"], f"{file}: the container does not run `outboxd run`")
        refs = {(next(iter(k for k in e if k.endswith("Ref"))), list(e.values())[0].get("name"))
                for e in c.get("envFrom", [])}
        check(("configMapRef", configmap.get("metadata", {}).get("name")) in refs,
              f"{file}: envFrom does not read the ConfigMap")
        check(("secretRef", secret.get("metadata", {}).get("name")) in refs,
              f"{file}: envFrom does not read the Secret")
        for e in c.get("env", []):
            check(not e.get("name", "").startswith("OUTBOXD_") or "valueFrom" in e,
                  f"{file}: {e.get('name')} set inline; configuration belongs in the ConfigMap")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}

        def probe(kind, path):
            get = c.get(kind, {}).get("httpGet", {})
            check(get.get("path") == path, f"{file}: {kind} is not an HTTP GET of {path}")
            port = ports.get(get.get("port"), get.get("port"))
            check(str(port) == metrics_port,
                  f"{file}: {kind} goes to port {port}, outboxd serves it on {metrics_port}")
            return c.get(kind, {})

        liveness = probe("livenessProbe", "/healthz")
        probe("startupProbe", "/healthz")
        # The kubelet restarts a stalled relay after failureThreshold failed probes; that must
        # not take longer than the stall itself (else the timeout means little).
        check(liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3) <= stall,
              f"{file}: liveness takes longer to act than OUTBOXD_STALL_TIMEOUT")
        probe("readinessProbe", "/readyz" if dep is single else "/healthz")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        check(grace > shutdown, f"{file}: terminationGracePeriodSeconds {grace} is not above "
              f"OUTBOXD_SHUTDOWN_TIMEOUT ({shutdown:g}s): the kubelet would SIGKILL a clean shutdown")
        annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
        check(annotations.get("prometheus.io/scrape") == "true", f"{file}: no prometheus.io/scrape annotation")
        check(annotations.get("prometheus.io/port") == metrics_port,
              f"{file}: prometheus.io/port is not outboxd's metrics port {metrics_port}")
        check(annotations.get("prometheus.io/path", "/metrics") == "/metrics", f"{file}: scrape path is not /metrics")
        resources = c.get("resources", {})
        request = memory_bytes(resources.get("requests", {}).get("memory", "0"))
        check(request >= BENCH_PEAK_RSS_BYTES,
              f"{file}: memory request {request} B is below the bench's peak RSS ({BENCH_PEAK_RSS_BYTES} B)")
        limit = resources.get("limits", {}).get("memory")
        check(limit is None or memory_bytes(limit) >= request, f"{file}: memory limit below the request")
        check("cpu" in resources.get("requests", {}), f"{file}: no CPU request")
        security = pod.get("securityContext", {})
        check(not security.get("runAsNonRoot") or isinstance(security.get("runAsUser"), int),
              f"{file}: runAsNonRoot needs a numeric runAsUser (the image's user is `nobody`)")

    check(single.get("spec", {}).get("replicas") == 1, "deployment.yaml: expected 1 replica")
    check(single.get("spec", {}).get("strategy", {}).get("type") == "Recreate",
          "deployment.yaml: a rolling update of a single relay would start a standby that never "
          "becomes ready; use Recreate")
    check(standby.get("spec", {}).get("replicas") == 2, "deployment-hot-standby.yaml: expected 2 replicas")
    rolling = standby.get("spec", {}).get("strategy", {}).get("rollingUpdate", {})
    check(rolling.get("maxSurge") == 0 and rolling.get("maxUnavailable") == 1,
          "deployment-hot-standby.yaml: replace one relay at a time (maxSurge 0, maxUnavailable 1)")
    check(single.get("metadata", {}).get("name") == standby.get("metadata", {}).get("name"),
          "the two Deployments must have one name (apply one or the other)")
    # Apart from readiness and anti-affinity, the two pods are the same.
    a = copy.deepcopy(single.get("spec", {}).get("template", {}))
    b = copy.deepcopy(standby.get("spec", {}).get("template", {}))
    for t in (a, b):
        t.get("spec", {}).pop("affinity", None)
        for c in t.get("spec", {}).get("containers", []):
            c.pop("readinessProbe", None)
    check(a == b, "deployment.yaml and deployment-hot-standby.yaml differ beyond readiness and affinity")

    for f in findings:
        print("FAIL:", f)
    print(f"kubernetes manifests: {passed} passed, {len(findings)} failed")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
