"""deploy/kubernetes/: every manifest is an object the kubernetes client knows, field for field
(a misspelled or mistyped field fails), and the manifests say what the project needs: the
package's HPA on the workers, requests and limits everywhere, probes on /healthz, secrets only by
reference, one receiver with its journal on a claim, a configuration that loads. Pure: no
cluster, no network."""

from __future__ import annotations

import inspect
import io
import json
import re
import shutil
import sys
import tomllib
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration

from runbook_lib.core.credentials import SECRET_ENV_MAP, password_of
from runbook_lib.core.settings import CapacitySettings, ReceiverSettings, load_settings

HOME = Path(__file__).resolve().parent.parent
DEPLOY = HOME / "deploy" / "kubernetes"
NAMESPACE = "omnihub-runbooks"
SECRET = "runbook-credentials"
SECRET_VARS = set(SECRET_ENV_MAP) | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

# apiVersion + kind -> the client's model. A kind not listed here fails the loader: add it.
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("batch/v1", "CronJob"): "V1CronJob",
}


class ManifestError(AssertionError):
    pass


class _Response:
    """What older clients' ApiClient.deserialize takes: an object whose .data is the JSON text."""

    def __init__(self, data: str) -> None:
        self.data = data


def _normalised(value: Any) -> Any:
    """JSON types only, no null-valued keys (the client leaves unset fields out)."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _differences(want: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}.{k}: {'dropped' if k not in got else 'added'}" for k in sorted(set(want) ^ set(got))]
        for k in sorted(set(want) & set(got)):
            out += _differences(want[k], got[k], f"{path}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (w, g) in enumerate(zip(want, got, strict=True)) for d in _differences(w, g, f"{path}[{i}]")]
    return [] if want == got and type(want) is type(got) else [f"{path}: {want!r} became {got!r}"]


def load_manifest(doc: Any, where: str = "manifest") -> Any:
    """The client's model of one manifest; ManifestError when the client does not know the kind,
    cannot deserialize it, or serializes it back to anything but the original (the deserializer
    drops unknown keys silently, so a misspelled ``readinessprobe`` shows up only here)."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: not a mapping")
    model_name = MODELS.get((doc.get("apiVersion"), doc.get("kind")))
    if model_name is None:
        raise ManifestError(
            f"{where}: no client model for apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r}"
        )
    original = _normalised(json.loads(json.dumps(doc)))
    text = json.dumps(original)
    client = ApiClient()
    try:
        if "response_text" in inspect.signature(client.deserialize).parameters:  # pydantic models (>= 35)
            model = client.deserialize(text, model_name, "application/json")
        else:
            model = client.deserialize(_Response(text), model_name)
    except Exception as exc:
        raise ManifestError(f"{where}: the client cannot deserialize it as {model_name}: {exc}") from None
    back = _normalised(client.sanitize_for_serialization(model))
    diff = _differences(original, back)
    if diff:
        raise ManifestError(f"{where}: not a {model_name} field for field (unknown or mistyped): {'; '.join(diff[:8])}")
    return model


def manifest_files() -> list[Path]:
    """What `kubectl apply -f deploy/kubernetes/` applies, then examples/ (not applied)."""
    return sorted(DEPLOY.glob("*.yaml")) + sorted((DEPLOY / "examples").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


APPLIED = [d for p in sorted(DEPLOY.glob("*.yaml")) for d in documents(p)]
EXAMPLES = [d for p in sorted((DEPLOY / "examples").glob("*.yaml")) for d in documents(p)]


def find(kind: str, name: str, docs: list[dict[str, Any]] = APPLIED) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/kubernetes/, found {len(found)}"
    return found[0]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in APPLIED if d["kind"] == kind]


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod(deployment)
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def configured_env(container: dict[str, Any]) -> dict[str, str]:
    """The literal environment a container gets: its ConfigMaps (envFrom) and env values."""
    out: dict[str, str] = {}
    for source in container.get("envFrom", []):
        out.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
    out.update({n: e["value"] for n, e in env_of(container).items() if "value" in e})
    return out


RECEIVER = find("Deployment", "runbook-receiver")
WORKER = find("Deployment", "runbook-worker")


# -- the loader ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_deserializes_field_for_field(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path}: no YAML document"
    for i, doc in enumerate(docs):
        load_manifest(doc, f"{path.name}[{i}]")


def test_the_manifests_are_all_there() -> None:
    names = {p.name for p in manifest_files()}
    assert {"rbac.yaml", "secret.example.yaml"} <= names
    kinds = {(d["kind"], d["metadata"]["name"]) for d in APPLIED}
    for wanted in [
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "runbook"),
        ("ServiceAccount", "runbook-receiver"),
        ("ConfigMap", "runbook-parameters"),
        ("Deployment", "runbook-receiver"),
        ("Service", "runbook-receiver"),
        ("Deployment", "runbook-worker"),
        ("HorizontalPodAutoscaler", "runbook-worker"),
        ("Role", "runbook-diagnose"),
        ("Role", "runbook-resolve"),
        ("RoleBinding", "runbook-diagnose"),
    ]:
        assert wanted in kinds, f"{wanted} missing from deploy/kubernetes/"
    # the namespace comes first when the directory is applied in file-name order
    first = documents(sorted(DEPLOY.glob("*.yaml"))[0])[0]
    assert (first["kind"], first["metadata"]["name"]) == ("Namespace", NAMESPACE)


def _deployment(**spec_changes: Any) -> dict[str, Any]:
    container = {
        "name": "c",
        "image": "example/image:1",
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 9095}},
        "resources": {"requests": {"cpu": "100m"}},
    }
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [container]}},
        },
    }
    for dotted, value in spec_changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key][0] if isinstance(node[key], list) else node[key]
        if value is KeyError:
            node.pop(last)
        else:
            node[last] = value
    return doc


def test_the_loader_takes_a_good_manifest() -> None:
    model = load_manifest(_deployment())
    assert type(model).__name__ == "V1Deployment"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        # misspelled field names, at three depths
        ({"spec__replicass": 3}, "spec.replicass"),
        (
            {"spec__template__spec__containers__readinessprobe": {"httpGet": {"path": "/healthz", "port": 1}}},
            "readinessprobe",
        ),
        ({"spec__template__spec__containers__resources__request": {"cpu": "1"}}, "request"),
        # wrong types
        ({"spec__replicas": "one"}, "replicas"),
        ({"spec__replicas": "3"}, "replicas"),
        ({"spec__template__spec__containers": {"name": "c", "image": "i"}}, "V1Container"),
        ({"spec__template__spec__containers__resources__requests": {"cpu": 1}}, "cpu"),
        # a required field missing
        ({"spec__selector": KeyError}, "selector"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else next(iter(v)).replace("__", "."),
)
def test_the_loader_refuses_unknown_fields_and_wrong_types(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ManifestError) as err:
        load_manifest(_deployment(**change), "built in the test")
    assert "built in the test" in str(err.value) and why in str(err.value)


def test_the_loader_refuses_a_kind_without_a_model() -> None:
    with pytest.raises(ManifestError, match="no client model"):
        load_manifest({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"})
    with pytest.raises(ManifestError, match="no client model"):
        load_manifest({**_deployment(), "apiVersion": "extensions/v1beta1"})


# -- what the manifests must say ----------------------------------------------------------------
def test_the_hpa_is_the_packages_policy_on_the_worker_deployment() -> None:
    hpa = find("HorizontalPodAutoscaler", "runbook-worker")
    spec = hpa["spec"]
    package = CapacitySettings()
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 20) == (package.hpa_min_replicas, package.hpa_max_replicas)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER["metadata"]["name"]}
    targets = {
        m["resource"]["name"]: (
            m["type"],
            m["resource"]["target"]["type"],
            m["resource"]["target"]["averageUtilization"],
        )
        for m in spec["metrics"]
    }
    assert targets == {"cpu": ("Resource", "Utilization", 70), "memory": ("Resource", "Utilization", 80)}
    assert (package.cpu_trigger, package.memory_trigger) == (0.7, 0.8)
    # the HPA owns the worker count: a replicas field would reset it at every apply
    assert "replicas" not in WORKER["spec"]


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    assert m and m[2] in units, f"unreadable quantity {value!r}"
    return float(m[1]) * units[m[2]]


@pytest.mark.parametrize("deployment", [RECEIVER, WORKER], ids=lambda d: d["metadata"]["name"])
def test_every_container_has_requests_and_limits(deployment: dict[str, Any]) -> None:
    for container in containers(deployment):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            assert request and limit, f"{container['name']}: {resource} needs a request and a limit"
            assert _quantity(request) <= _quantity(limit), f"{container['name']}: {resource} request above limit"


def _declared_ports(container: dict[str, Any]) -> dict[Any, int]:
    ports: dict[Any, int] = {}
    for p in container.get("ports", []):
        ports[p["containerPort"]] = p["containerPort"]
        if "name" in p:
            ports[p["name"]] = p["containerPort"]
    return ports


def _probe_target(probe: dict[str, Any], container: dict[str, Any]) -> tuple[str, int]:
    """(path, container port) a probe asks; fails on a probe that does not ask over HTTP."""
    ports = _declared_ports(container)
    if "httpGet" in probe:
        get = probe["httpGet"]
        assert get["port"] in ports, f"{container['name']}: probe port {get['port']!r} is not declared"
        return get["path"], ports[get["port"]]
    assert "exec" in probe, f"{container['name']}: probe neither httpGet nor exec: {probe}"
    urls = re.findall(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^\"' ]*)", " ".join(probe["exec"]["command"]))
    assert len(set(urls)) == 1, f"{container['name']}: an exec probe must ask one local URL, found {urls}"
    port, path = int(urls[0][0]), urls[0][1]
    assert port in ports.values(), f"{container['name']}: exec probe asks port {port}, which is not declared"
    return path, port


@pytest.mark.parametrize("deployment", [RECEIVER, WORKER], ids=lambda d: d["metadata"]["name"])
def test_probes_ask_healthz_on_a_declared_port(deployment: dict[str, Any]) -> None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert "livenessProbe" in container and "readinessProbe" in container, container["name"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                path, _ = _probe_target(container[kind], container)
                assert path == "/healthz", f"{container['name']} {kind} asks {path}"


# The receiver's exec probes read /healthz's answer. What it must decide, per answer:
# (HTTP status, body) -> (alive, ready)
HEALTHZ_ANSWERS = {
    "ok": (200, {"status": "ok", "queued": 0, "running": 0, "workers": 3}, True, True),
    "no workers (broker shows no consumer)": (503, {"status": "no workers", "workers": 0}, True, True),
    "broker down": (
        503,
        {"status": "degraded", "workers": 2, "problems": [{"component": "broker", "reason": "x", "for_s": 3}]},
        True,
        True,
    ),
    "full disk: cannot commit": (
        503,
        {"status": "degraded", "problems": [{"component": "journal", "reason": "disk full", "for_s": 60}]},
        True,
        False,
    ),
    "journal unavailable": (503, {"status": "journal unavailable", "error": "I/O error"}, True, False),
    "journal writer stopped": (503, {"status": "journal writer stopped", "workers": 3}, False, False),
    "not answering": (None, None, False, False),
}


def _run_probe(command: list[str], answer: tuple[int | None, Any], monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run an exec probe's `python3 -c SCRIPT ARG` in this process with /healthz answering
    ``answer``; True when it exits 0 (the kubelet's success)."""
    assert command[:2] == ["python3", "-c"], command
    script, args = command[2], command[3:]
    status, body = answer

    def urlopen(url: str, timeout: float) -> Any:
        assert url.endswith("/healthz")
        if status is None:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        data = io.BytesIO(json.dumps(body).encode())
        if status >= 400:
            raise urllib.error.HTTPError(url, status, "Service Unavailable", Message(), data)
        return data

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(sys, "argv", ["-c", *args])
    try:
        exec(compile(script, "<probe>", "exec"), {"__name__": "__main__"})  # noqa: S102 (our manifest's probe)
    except SystemExit as done:
        return done.code in (0, None)
    except Exception:
        return False  # python3 exits 1 on an uncaught exception
    return True


@pytest.mark.parametrize("case", list(HEALTHZ_ANSWERS))
def test_receiver_probes_fail_readiness_when_it_cannot_journal_and_liveness_only_when_restarting_helps(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, body, alive, ready = HEALTHZ_ANSWERS[case]
    container = pod(RECEIVER)["containers"][0]
    for kind, want in (("livenessProbe", alive), ("startupProbe", alive), ("readinessProbe", ready)):
        got = _run_probe(container[kind]["exec"]["command"], (status, body), monkeypatch)
        assert got is want, f"{kind} on /healthz {case!r}: {'success' if got else 'failure'}"


def test_the_statuses_the_probes_read_are_the_receivers() -> None:
    """The probe scripts match /healthz's status strings: they must be the ones app.py answers."""
    app = (HOME / "runbook_lib" / "receiver" / "app.py").read_text()
    script = pod(RECEIVER)["containers"][0]["readinessProbe"]["exec"]["command"][2]
    statuses = re.findall(r'status == "([^"]+)"', script)
    assert statuses
    for status in statuses:
        assert f'"{status}"' in app, f"the probe reads status {status!r}, which runbook_lib/receiver/app.py never sets"
    components = re.findall(r'get\("component"\) == "([^"]+)"', script)
    assert components == ["journal"]
    assert 'health.degraded("journal"' in app, (
        "the receiver no longer reports a journal that cannot commit as 'journal'"
    )


@pytest.mark.parametrize("deployment", [RECEIVER, WORKER], ids=lambda d: d["metadata"]["name"])
def test_secrets_are_references_to_the_operators_secret(deployment: dict[str, Any]) -> None:
    for container in containers(deployment):
        env = env_of(container)
        for name, entry in env.items():
            if name in SECRET_VARS or name.removesuffix("_FILE") in SECRET_VARS:
                assert "value" not in entry, f"{container['name']}: {name} has a literal value"
                ref = entry["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == (SECRET, name), f"{container['name']}: {name} -> {ref}"
            elif "value" in entry:
                assert not password_of(entry["value"]), f"{container['name']}: {name} holds a password"
        for source in container.get("envFrom", []):
            assert "secretRef" not in source or source["secretRef"]["name"] == SECRET
            assert "configMapRef" in source or "secretRef" in source
        # both sides reach the broker; the receiver checks the webhook token; the workers query
        assert env["RUNBOOK_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
        assert env["RUNBOOK_BROKER_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    receiver_env = env_of(pod(RECEIVER)["containers"][0])
    worker_env = env_of(pod(WORKER)["containers"][0])
    assert "valueFrom" in receiver_env["RUNBOOK_WEBHOOK_TOKEN"]
    for name in ("RUNBOOK_POSTGRES_DSN", "RUNBOOK_REDIS_URL", "RUNBOOK_RABBITMQ_URL"):
        assert "valueFrom" in worker_env[name], name


def test_no_secret_value_is_shipped() -> None:
    assert not of_kind("Secret"), "a Secret among the applied manifests: it belongs in examples/ only"
    for cm in of_kind("ConfigMap"):
        for key, value in cm.get("data", {}).items():
            assert key not in SECRET_VARS, f"ConfigMap {cm['metadata']['name']}: {key} is a secret"
            for line in value.splitlines():
                for word in re.findall(r"\S+://\S+", line):
                    assert not password_of(word), f"ConfigMap {cm['metadata']['name']}: {key} holds a password"
    example = find("Secret", SECRET, EXAMPLES)
    values = example["stringData"]
    assert all("CHANGE_ME" in v for v in values.values()), "every example value must be a marked placeholder"
    # the example names every key a Deployment may ask for, so that it documents them all
    referenced = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for d in (RECEIVER, WORKER)
        for c in containers(d)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert referenced <= set(values), referenced - set(values)
    assert set(values) <= SECRET_VARS, set(values) - SECRET_VARS


def test_the_service_selects_the_receiver_pods_and_only_them() -> None:
    service = find("Service", "runbook-receiver")
    selector = service["spec"]["selector"]
    receiver_labels = RECEIVER["spec"]["template"]["metadata"]["labels"]
    worker_labels = WORKER["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= receiver_labels.items()
    assert not selector.items() <= worker_labels.items(), "the Service would send webhooks to the workers"
    assert RECEIVER["spec"]["selector"]["matchLabels"].items() <= receiver_labels.items()
    assert WORKER["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == ReceiverSettings().port == 9095
    assert _declared_ports(pod(RECEIVER)["containers"][0])[port["targetPort"]] == 9095


def test_the_receiver_is_one_replica_with_its_journal_on_the_claim() -> None:
    spec = RECEIVER["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    (container,) = pod(RECEIVER)["containers"]
    assert container["args"][0] == "serve"  # the image's entrypoint is `runbook`
    args = " ".join(container["args"])
    assert "--executor celery" in args and "--host 0.0.0.0" in args
    assert configured_env(container)["RUNBOOK_EXECUTOR"] == "celery"
    journal = PurePosixPath(configured_env(container)["RUNBOOK_JOURNAL"])
    assert journal.is_absolute()
    volumes = {v["name"]: v for v in pod(RECEIVER)["volumes"]}
    mounts = [m for m in container["volumeMounts"] if journal.parent.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1 and "subPath" not in mounts[0], mounts
    claim = volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = find("PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["spec"]["resources"]["requests"]["storage"]


def _shipped_settings(tmp_path: Path, container: dict[str, Any]) -> Any:
    """Settings as the container would load them: the image's parameters/ (this checkout), the
    environment file from its ConfigMap mount, its literal environment."""
    environ = configured_env(container)
    env_name = environ["RUNBOOK_ENV"]
    target = PurePosixPath(environ["RUNBOOK_HOME"]) / "parameters" / "environments" / f"{env_name}.yaml"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(target)]
    volume = next(
        v
        for v in pod(RECEIVER if container in containers(RECEIVER) else WORKER)["volumes"]
        if v["name"] == mount["name"]
    )
    env_file = find("ConfigMap", volume["configMap"]["name"])["data"][mount["subPath"]]
    home = tmp_path / "home"
    shutil.copytree(HOME / "parameters", home / "parameters")
    (home / "parameters" / "environments" / f"{env_name}.yaml").write_text(env_file)
    return load_settings(environ={**environ, "RUNBOOK_HOME": str(home), "RUNBOOK_RUNBOOKS_DIR": str(HOME / "runbooks")})


@pytest.mark.parametrize("deployment", [RECEIVER, WORKER], ids=lambda d: d["metadata"]["name"])
def test_the_shipped_configuration_loads(deployment: dict[str, Any], tmp_path: Path) -> None:
    (container,) = pod(deployment)["containers"]
    settings = _shipped_settings(tmp_path, container)
    assert settings.env == "production" and settings.receiver.executor == "celery"
    assert settings.archive.path.startswith("s3://")
    diagnosed = {d["metadata"]["namespace"] for d in of_kind("Role")}
    assert diagnosed == {settings.kubernetes.namespace} == {"omnihub-prod"}
    assert settings.prometheus.url and settings.notify.record_base_url


def test_the_worker_runs_runbook_worker_and_outlives_one_run(tmp_path: Path) -> None:
    (container,) = pod(WORKER)["containers"]
    args = container["args"]
    assert args[0] == "worker"  # the image's entrypoint is `runbook`
    health_port = int(args[args.index("--health-port") + 1])
    assert health_port in _declared_ports(container).values()
    kernels = _shipped_settings(tmp_path, container).kernels
    # SIGTERM lets the run in progress finish: one cell's timeout plus a cold kernel's start
    assert pod(WORKER)["terminationGracePeriodSeconds"] >= kernels.cell_timeout_s + kernels.start_timeout_s
    liveness = container["livenessProbe"]
    assert liveness.get("terminationGracePeriodSeconds", 0) < pod(WORKER)["terminationGracePeriodSeconds"]


def test_the_workers_kubeconfig_reaches_the_api_as_the_bound_service_account(tmp_path: Path) -> None:
    spec = pod(WORKER)
    (container,) = spec["containers"]
    binding = find("RoleBinding", "runbook-diagnose")
    assert binding["roleRef"]["name"] == "runbook-diagnose"
    assert {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": NAMESPACE} in binding["subjects"]
    find("ServiceAccount", spec["serviceAccountName"])
    assert spec.get("automountServiceAccountToken", True)
    # the receiver runs no runbook: no token, and no binding
    receiver_sa = pod(RECEIVER)["serviceAccountName"]
    assert find("ServiceAccount", receiver_sa)["automountServiceAccountToken"] is False
    assert pod(RECEIVER)["automountServiceAccountToken"] is False
    assert all(s["name"] != receiver_sa for b in of_kind("RoleBinding") for s in b["subjects"])

    kubeconfig = PurePosixPath(configured_env(container)["KUBECONFIG"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(kubeconfig.parent)]
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    text = find("ConfigMap", volume["configMap"]["name"])["data"][kubeconfig.name]
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert f"{sa_dir}/token" in text and f"{sa_dir}/ca.crt" in text
    # the client the runbooks use loads it (paths moved to files of this test)
    (tmp_path / "token").write_text("the-pods-token")  # a projected token has no newline
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "config").write_text(text.replace(sa_dir, str(tmp_path)))
    cfg = Configuration()
    k8s_config.load_kube_config(config_file=str(tmp_path / "config"), client_configuration=cfg, persist_config=False)
    assert cfg.host == "https://kubernetes.default.svc"
    headers = {a["key"]: a["value"] for a in cfg.auth_settings().values() if a["in"] == "header"}
    assert headers == {"authorization": "Bearer the-pods-token"}
    assert cfg.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert yaml.safe_load(text)["contexts"][0]["context"]["namespace"] == "omnihub-prod"


def test_everything_lives_in_its_namespace_and_references_what_exists() -> None:
    for doc in APPLIED:
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "Namespace":
            continue
        if kind in ("Role", "RoleBinding"):
            assert meta["namespace"] == "omnihub-prod", meta  # rbac.yaml: where the runbooks look
        else:
            assert meta.get("namespace") == NAMESPACE, f"{kind} {meta['name']}"
    images = set()
    for deployment in (RECEIVER, WORKER):
        spec = pod(deployment)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                find("ConfigMap", volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        names = {v["name"] for v in spec.get("volumes", [])}
        for container in containers(deployment):
            images.add(container["image"])
            assert {m["name"] for m in container.get("volumeMounts", [])} <= names
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    find("ConfigMap", source["configMapRef"]["name"])
            # the restricted Pod Security Standard the namespace enforces
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert len(images) == 1, f"receiver and workers must run one image: {images}"


def test_the_manifests_run_the_image_make_image_builds_with_valid_runbook_args() -> None:
    """`make image` tags scripts/image-name.sh's reference (the version in pyproject.toml); every
    manifest runs exactly that image, and its args are a `runbook` command line the CLI accepts
    (the Containerfile's entrypoint is `runbook`)."""
    import subprocess

    from runbook_lib.cli import build_parser

    built = subprocess.run(
        [str(HOME / "scripts" / "image-name.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert built.endswith(":" + tomllib.loads((HOME / "pyproject.toml").read_text())["project"]["version"])
    containerfile = (HOME / "Containerfile").read_text()
    assert 'ENTRYPOINT ["runbook"]' in containerfile and "USER 10001:10001" in containerfile
    seen = 0
    for path in sorted((HOME / "deploy" / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _all_containers(doc):
                assert container["image"] == built, f"{path.name}: {container['image']} is not what make image builds"
                args = build_parser().parse_args(container["args"])
                assert callable(args.func), (path.name, container["args"])
                seen += 1
    assert seen >= 3  # receiver, worker, digest


def _all_containers(doc: object) -> list[dict]:
    """Every container spec anywhere in a manifest (Deployments, CronJobs)."""
    found: list[dict] = []
    if isinstance(doc, dict):
        if "image" in doc and "name" in doc and ("args" in doc or "command" in doc):
            found.append(doc)
        for value in doc.values():
            found += _all_containers(value)
    elif isinstance(doc, list):
        for value in doc:
            found += _all_containers(value)
    return found
