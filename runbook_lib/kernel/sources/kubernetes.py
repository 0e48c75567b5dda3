"""Kubernetes through the official client: rollout history and status (as kubectl reads them),
pod states and events, the difference between two ReplicaSets, pod logs, top pods
(metrics.k8s.io), the writes the actions need (rollback patch, restart, scale), and any object
by its REST path for the environment-restore drill (create, read, delete a manifest's object)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils import parse_quantity

from runbook_lib.core.credentials import password_of
from runbook_lib.core.errors import SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.settings import Settings

NAME = "Kubernetes"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
# kubectl's annotationsToSkip in `rollout undo`
SKIP_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
}


class Kubernetes:
    def __init__(self, kubeconfig: str, context: str | None, namespace: str, timeout_s: float = 10.0) -> None:
        self.namespace = namespace
        self.timeout = (min(5.0, timeout_s), timeout_s)
        cfg = k8s.Configuration()
        try:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
            )
        except (ConfigException, OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
            raise SourceError(NAME, f"kubeconfig {kubeconfig} cannot be used: {str(exc).splitlines()[0]}") from None
        cfg.retries = 0  # fail fast; the runbook reports and goes on
        self.where = cfg.host
        self.api = k8s.ApiClient(cfg)

    @classmethod
    def from_settings(cls, settings: Settings) -> Kubernetes:
        cfg = settings.kubernetes
        if not cfg.kubeconfig:
            raise SourceNotConfigured(NAME, "set KUBECONFIG (and RUNBOOK_KUBE_NAMESPACE)")
        return cls(cfg.kubeconfig, cfg.context, cfg.namespace, cfg.timeout_s)

    def close(self) -> None:
        self.api.close()

    # -- transport -------------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, raw: bool = False, **kwargs: Any) -> Any:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            raise SourceError(NAME, f"{what}: {_status_message(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SourceUnavailable(NAME, f"{self.where} unreachable during {what} ({type(reason).__name__})") from None
        body = resp.data.decode("utf-8", "replace")
        if raw:
            return body
        try:
            return json.loads(body)
        except ValueError:
            raise SourceError(NAME, f"{what}: the API server answered something that is not JSON") from None

    def _rest(
        self, method: str, path: str, body: Any = None, _preload_content: bool = False, _request_timeout: Any = None
    ) -> Any:
        """One request on a resource path through the client's transport (its auth, TLS and
        timeouts); a non-2xx answer raises ApiException as the typed APIs do."""
        headers = {"Accept": "application/json"} | ({"Content-Type": "application/json"} if body is not None else {})
        request = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api.call_api(*request, _request_timeout=_request_timeout)
        resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    # -- reads -------------------------------------------------------------------------------
    def deployment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        return self._call(f"get deployment {ns}/{name}", self.apps.read_namespaced_deployment, name, ns)

    def replica_sets(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """ReplicaSets controlled by the deployment (selector + controller owner reference)."""
        ns = deployment["metadata"]["namespace"]
        uid = deployment["metadata"].get("uid")
        selector = _selector(deployment)
        items = self._call(
            f"list replicasets in {ns}", self.apps.list_namespaced_replica_set, ns, label_selector=selector
        ).get("items", [])
        owned = []
        for rs in items:
            refs = rs["metadata"].get("ownerReferences") or []
            if any(r.get("controller") and r.get("uid") == uid for r in refs):
                owned.append(rs)
        return owned

    def rollout_history(self, name: str, namespace: str | None = None) -> pd.DataFrame:
        """Like ``kubectl rollout history``: one row per revision, newest first."""
        dep = self.deployment(name, namespace)
        current = _revision(dep["metadata"])
        rows = []
        for rs in self.replica_sets(dep):
            rev = _revision(rs["metadata"])
            if rev is None:
                continue
            containers = rs["spec"]["template"]["spec"].get("containers", [])
            rows.append(
                {
                    "revision": rev,
                    "created": pd.Timestamp(rs["metadata"]["creationTimestamp"]),
                    "images": ", ".join(c.get("image", "?") for c in containers),
                    "change_cause": (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, ""),
                    "replicas": (rs.get("status") or {}).get("replicas", 0),
                    "current": rev == current,
                    "replicaset": rs["metadata"]["name"],
                }
            )
        frame = pd.DataFrame(
            rows,
            columns=["revision", "created", "images", "change_cause", "replicas", "current", "replicaset"],
        )
        return frame.sort_values("revision", ascending=False).reset_index(drop=True)

    def pods(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        ns = deployment["metadata"]["namespace"]
        return self._call(
            f"list pods in {ns}", self.core.list_namespaced_pod, ns, label_selector=_selector(deployment)
        ).get("items", [])

    def pod_log(self, pod: Mapping[str, Any], tail_lines: int) -> str:
        meta = pod["metadata"]
        containers = pod["spec"].get("containers") or [{}]
        return self._call(
            f"logs of pod {meta['namespace']}/{meta['name']}",
            self.core.read_namespaced_pod_log,
            meta["name"],
            meta["namespace"],
            container=containers[0].get("name"),
            tail_lines=int(tail_lines),
            raw=True,
        )

    def log_patterns(self, name: str, patterns: Mapping[str, str], tail_lines: int = 200) -> pd.DataFrame:
        """Count each error pattern in the last ``tail_lines`` of every pod's log.

        Rows: pod, pattern, count, example (the newest matching line)."""
        compiled = {k: re.compile(v) for k, v in patterns.items()}
        dep = self.deployment(name)
        rows = []
        for pod in self.pods(dep):
            text = self.pod_log(pod, tail_lines)
            lines = text.splitlines()
            for key, rx in compiled.items():
                hits = [line for line in lines if rx.search(line)]
                rows.append(
                    {
                        "pod": pod["metadata"]["name"],
                        "pattern": key,
                        "count": len(hits),
                        "lines": len(lines),
                        "example": hits[-1][:300] if hits else "",
                    }
                )
        return pd.DataFrame(rows, columns=["pod", "pattern", "count", "lines", "example"])

    def top_pods(self, name: str) -> pd.DataFrame:
        """``kubectl top pods`` for the deployment's pods, with usage / limit ratios."""
        dep = self.deployment(name)
        ns = dep["metadata"]["namespace"]
        pods = {p["metadata"]["name"]: p for p in self.pods(dep)}
        metrics = self._call(
            "read metrics.k8s.io pod metrics",
            k8s.CustomObjectsApi(self.api).list_namespaced_custom_object,
            "metrics.k8s.io",
            "v1beta1",
            ns,
            "pods",
            label_selector=_selector(dep),
        ).get("items", [])
        rows = []
        for item in metrics:
            pod_name = item["metadata"]["name"]
            cpu = sum(_quantity(c["usage"].get("cpu", "0")) for c in item.get("containers", []))
            mem = sum(_quantity(c["usage"].get("memory", "0")) for c in item.get("containers", []))
            limits = [
                ((c.get("resources") or {}).get("limits") or {})
                for c in pods.get(pod_name, {}).get("spec", {}).get("containers", [])
            ]
            cpu_limit = sum(_quantity(lim["cpu"]) for lim in limits if "cpu" in lim) or None
            mem_limit = sum(_quantity(lim["memory"]) for lim in limits if "memory" in lim) or None
            rows.append(
                {
                    "pod": pod_name,
                    "cpu_millicores": round(cpu * 1000, 1),
                    "memory_mib": round(mem / 2**20, 1),
                    "cpu_limit_millicores": round(cpu_limit * 1000, 1) if cpu_limit else None,
                    "memory_limit_mib": round(mem_limit / 2**20, 1) if mem_limit else None,
                    "cpu_ratio": round(cpu / cpu_limit, 3) if cpu_limit else None,
                    "memory_ratio": round(mem / mem_limit, 3) if mem_limit else None,
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "pod",
                "cpu_millicores",
                "memory_mib",
                "cpu_limit_millicores",
                "memory_limit_mib",
                "cpu_ratio",
                "memory_ratio",
            ],
        )

    def pod_states(self, name: str) -> pd.DataFrame:
        """Like ``kubectl get pods`` with the why: one row per pod of the deployment, with its
        phase, readiness, restarts, what it waits on (CrashLoopBackOff, ImagePullBackOff) and
        how its last container run ended (OOMKilled, Error, exit code)."""
        rows = [_pod_row(p) for p in self.pods(self.deployment(name))]
        frame = pd.DataFrame(rows, columns=POD_COLUMNS)
        return frame.sort_values(["ready", "restarts"], ascending=[True, False]).reset_index(drop=True)

    def events(self, name: str) -> pd.DataFrame:
        """``kubectl get events`` for the deployment, its ReplicaSets and pods (objects named
        after it), newest first: time, type, reason, object, count, message."""
        dep = self.deployment(name)
        ns = dep["metadata"]["namespace"]
        items = self._call(f"list events in {ns}", self.core.list_namespaced_event, ns).get("items", [])
        rows = []
        for ev in items:
            obj = ev.get("involvedObject") or {}
            involved = str(obj.get("name", ""))
            if involved != name and not involved.startswith(f"{name}-"):
                continue
            when = ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp")
            rows.append(
                {
                    "time": pd.Timestamp(when) if when else pd.NaT,
                    "type": ev.get("type", ""),
                    "reason": ev.get("reason", ""),
                    "object": f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}",
                    "count": int(ev.get("count") or 1),
                    "message": str(ev.get("message", ""))[:300],
                }
            )
        frame = pd.DataFrame(rows, columns=["time", "type", "reason", "object", "count", "message"])
        return frame.sort_values("time", ascending=False).reset_index(drop=True)

    def rollout_status(self, name: str) -> dict[str, Any]:
        """What ``kubectl rollout status`` decides from: replica counts, whether the controller
        has seen the newest spec, and the Progressing/Available conditions."""
        dep = self.deployment(name)
        spec, status = dep.get("spec") or {}, dep.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        progressing = conditions.get("Progressing") or {}
        return {
            "deployment": name,
            "desired": int(spec.get("replicas") or 0),
            "updated": int(status.get("updatedReplicas") or 0),
            "ready": int(status.get("readyReplicas") or 0),
            "available": int(status.get("availableReplicas") or 0),
            "unavailable": int(status.get("unavailableReplicas") or 0),
            "observed": int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0),
            "paused": bool(spec.get("paused")),
            "deadline_exceeded": progressing.get("reason") == "ProgressDeadlineExceeded",
            "progress_deadline_s": int(spec.get("progressDeadlineSeconds") or 600),
            "conditions": [
                {k: c.get(k) for k in ("type", "status", "reason", "message", "lastUpdateTime")}
                for c in conditions.values()
            ],
        }

    def replica_set_diff(self, name: str) -> dict[str, Any]:
        """What changed between the newest ReplicaSet and the one before it: images and
        environment per container. Values of variables whose names look secret are hidden."""
        dep = self.deployment(name)
        by_rev = sorted(
            ((rev, rs) for rs in self.replica_sets(dep) if (rev := _revision(rs["metadata"])) is not None),
            key=lambda pair: pair[0],
        )
        if len(by_rev) < 2:
            raise SourceError(NAME, f"deployment {name} has fewer than two revisions to compare")
        (old_rev, old), (new_rev, new) = by_rev[-2], by_rev[-1]
        old_c, new_c = _containers(old), _containers(new)
        changes = []
        for cname in sorted(set(old_c) | set(new_c)):
            before, after = old_c.get(cname, {}), new_c.get(cname, {})
            if before.get("image") != after.get("image"):
                changes.append(
                    {
                        "container": cname,
                        "what": "image",
                        "name": "",
                        "from": before.get("image"),
                        "to": after.get("image"),
                    }
                )
            env_before, env_after = _env(before), _env(after)
            for var in sorted(set(env_before) | set(env_after)):
                was, now = env_before.get(var), env_after.get(var)
                if was != now:
                    changes.append(
                        {
                            "container": cname,
                            "what": "env",
                            "name": var,
                            "from": was[1] if was else None,
                            "to": now[1] if now else None,
                        }
                    )
        return {
            "deployment": name,
            "from_revision": old_rev,
            "to_revision": new_rev,
            "from_replicaset": old["metadata"]["name"],
            "to_replicaset": new["metadata"]["name"],
            "changes": changes,
        }

    def restart_plan(self, name: str) -> dict[str, Any]:
        """The merge patch ``kubectl rollout restart`` sends: a new restartedAt annotation on
        the pod template, so the controller replaces every pod."""
        dep = self.deployment(name)
        if (dep.get("spec") or {}).get("paused"):
            raise SourceError(NAME, f"deployment {name} is paused; resume it before restarting")
        now = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "deployment": name,
            "namespace": dep["metadata"]["namespace"],
            "revision": _revision(dep["metadata"]),
            "patch": {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}},
        }

    # -- rollback plan (kubectl rollout undo), and the writes ------------------------------
    def rollback_plan(self, name: str, to_revision: int | None = None) -> dict[str, Any]:
        """The JSON patch ``kubectl rollout undo`` would send, and the revisions involved."""
        dep = self.deployment(name)
        if (dep.get("spec") or {}).get("paused"):
            raise SourceError(NAME, f"deployment {name} is paused; resume it before rolling back")
        current = _revision(dep["metadata"])
        by_rev = {}
        for rs in self.replica_sets(dep):
            rev = _revision(rs["metadata"])
            if rev is not None:
                by_rev[rev] = rs
        if to_revision:
            target_rs = by_rev.get(to_revision)
            if target_rs is None:
                raise SourceError(NAME, f"unable to find the specified revision {to_revision} for deployment {name}")
            target = to_revision
        else:
            revs = sorted(by_rev)
            if len(revs) < 2:
                raise SourceError(NAME, f"no rollout history found for deployment {name}")
            target = revs[-2]
            target_rs = by_rev[target]
        template = json.loads(json.dumps(target_rs["spec"]["template"]))
        labels = (template.get("metadata") or {}).get("labels") or {}
        labels.pop("pod-template-hash", None)
        dep_template = json.loads(json.dumps(dep["spec"]["template"]))
        ((dep_template.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
        annotations = {k: v for k, v in (dep["metadata"].get("annotations") or {}).items() if k in SKIP_ANNOTATIONS}
        annotations.update(
            {k: v for k, v in (target_rs["metadata"].get("annotations") or {}).items() if k not in SKIP_ANNOTATIONS}
        )
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        return {
            "deployment": name,
            "namespace": dep["metadata"]["namespace"],
            "from_revision": current,
            "to_revision": target,
            "noop": template == dep_template,
            "images": [c.get("image") for c in template.get("spec", {}).get("containers", [])],
            "patch": _masked(patch),  # shown: environment values hidden as in the ReplicaSet diff
            "_patch": patch,  # sent
        }

    def patch_deployment(
        self, name: str, namespace: str, patch: list[dict[str, Any]] | dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON patch (a list of operations, as rollout undo sends) or a merge patch (an
        object, as rollout restart sends)."""
        kind = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        return self._call(
            f"patch deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type=kind,
        )

    def scale(self, name: str, namespace: str, replicas: int) -> dict[str, Any]:
        return self._call(
            f"scale deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": int(replicas)}},
            _content_type="application/merge-patch+json",
        )

    # -- any object by its REST path (the environment-restore drill) ------------------------
    def api_versions(self) -> dict[str, Any]:
        """GET /api: the cheapest answer that proves the API server is there and accepts us."""
        return self._call("get /api", self._rest, "GET", "/api")

    def object_path(self, manifest: Mapping[str, Any], with_name: bool = True) -> str:
        """The REST path of a manifest's object (its collection's with ``with_name=False``).
        The plural is the kind's lowercase plural (no discovery); a namespaced kind without a
        namespace goes to the configured one."""
        api_version, kind = str(manifest.get("apiVersion") or ""), str(manifest.get("kind") or "")
        name = str((manifest.get("metadata") or {}).get("name") or "")
        if not api_version or not kind or not name:
            raise SourceError(
                NAME, f"a manifest needs apiVersion, kind and metadata.name (got {kind or '?'}/{name or '?'})"
            )
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if kind not in CLUSTER_SCOPED:
            base += f"/namespaces/{object_namespace(manifest, self.namespace)}"
        lower = kind.lower()
        plural = lower[:-1] + "ies" if lower.endswith("y") else lower + ("es" if lower.endswith("s") else "s")
        return f"{base}/{plural}/{name}" if with_name else f"{base}/{plural}"

    def create_object(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """POST a manifest's object to its collection (like ``kubectl create -f``)."""
        body = json.loads(json.dumps(manifest))
        if body.get("kind") not in CLUSTER_SCOPED:
            body.setdefault("metadata", {})["namespace"] = object_namespace(manifest, self.namespace)
        return self._call(
            f"create {self.object_path(manifest)}", self._rest, "POST", self.object_path(manifest, False), body
        )

    def read_object(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(f"get {self.object_path(manifest)}", self._rest, "GET", self.object_path(manifest))

    def delete_object(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(f"delete {self.object_path(manifest)}", self._rest, "DELETE", self.object_path(manifest))


# Kinds without a namespace (the ones a deploy folder is likely to hold).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}


def object_namespace(manifest: Mapping[str, Any], default: str) -> str:
    return str((manifest.get("metadata") or {}).get("namespace") or default)


POD_COLUMNS = [
    "pod",
    "phase",
    "ready",
    "restarts",
    "waiting",
    "last_exit",
    "last_exit_code",
    "last_exit_at",
    "node",
    "age_s",
]


def _pod_row(pod: Mapping[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    init = {id(c) for c in status.get("initContainerStatuses") or []}
    waiting = next(
        (
            ("Init:" if id(c) in init else "") + c["state"]["waiting"].get("reason", "")
            for c in statuses
            if (c.get("state") or {}).get("waiting")
        ),
        "",
    )
    last = [
        (c.get("lastState") or {}).get("terminated") or (c.get("state") or {}).get("terminated") or {} for c in statuses
    ]
    last = [t for t in last if t]
    ended = max(last, key=lambda t: t.get("finishedAt") or "", default={})
    created = pod["metadata"].get("creationTimestamp")
    if not waiting and status.get("phase") == "Pending":
        cond = next((c for c in status.get("conditions") or [] if c.get("status") == "False"), {})
        waiting = cond.get("reason", "")
    return {
        "pod": pod["metadata"]["name"],
        "phase": status.get("phase", "Unknown"),
        "ready": _ready(status, status.get("containerStatuses") or []),
        "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
        "waiting": waiting,
        "last_exit": ended.get("reason", ""),
        "last_exit_code": ended.get("exitCode"),
        "last_exit_at": ended.get("finishedAt"),
        "node": (pod.get("spec") or {}).get("nodeName", ""),
        "age_s": (pd.Timestamp.now(tz="UTC") - pd.Timestamp(created)).total_seconds() if created else None,
    }


def _ready(status: Mapping[str, Any], statuses: list[dict[str, Any]]) -> bool:
    """The pod's Ready condition; else every container ready; else (no status yet) Running."""
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if cond is not None:
        return cond.get("status") == "True"
    if statuses:
        return all(c.get("ready") for c in statuses)
    return status.get("phase") == "Running"


def _containers(rs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("name", "?"): c for c in rs["spec"]["template"]["spec"].get("containers", [])}


# An environment variable whose name says it holds a secret: its value is never shown. Broader
# than the redaction pattern on purpose: these are the application's secrets, which no
# redactor of ours knows.
SECRET_NAME = re.compile(
    r"PASS|SECRET|TOKEN|KEY|PRIVATE|CRED|DSN|AUTH|MNEMONIC|SEED|COOKIE|SESSION|CERT|SIGN", re.IGNORECASE
)
# A value that looks like a key whatever its name: a long run of key characters, letters and digits.
KEY_LIKE = re.compile(r"(?=[A-Za-z0-9_+/=-]*\d)(?=[A-Za-z0-9_+/=-]*[A-Za-z])[A-Za-z0-9_+/=-]{20,}")


def _env(container: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """name -> (what is compared, what is shown). A value from a secretKeyRef shows as the
    reference; a value whose name looks secret, or that looks like a key, shows as "(hidden)"
    (the comparison still uses the value, so a change shows as a change); a password inside a
    URL is masked."""
    out = {}
    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        if "valueFrom" in var:
            ref = var["valueFrom"] if isinstance(var["valueFrom"], dict) else {}
            kind = next(iter(ref), "valueFrom")
            target = ref.get(kind) if isinstance(ref.get(kind), dict) else {}
            shown = f"<{kind} {target.get('name', '')}/{target.get('key', '')}>"
            out[name] = (json.dumps(ref, sort_keys=True, default=str), shown)
            continue
        value = str(var.get("value", ""))
        out[name] = (value, _shown_value(name, value))
    return out


def _masked(doc: Any) -> Any:
    """A copy of ``doc`` with every container environment value shown as :func:`_shown_value` shows it."""
    if isinstance(doc, list):
        return [_masked(x) for x in doc]
    if not isinstance(doc, dict):
        return doc
    out = {k: _masked(v) for k, v in doc.items()}
    if isinstance(doc.get("env"), list):
        out["env"] = [
            {**var, "value": _shown_value(str(var.get("name", "")), str(var["value"]))}
            if isinstance(var, dict) and "value" in var
            else var
            for var in doc["env"]
        ]
    return out


def _shown_value(name: str, value: str) -> str:
    if SECRET_NAME.search(name) or KEY_LIKE.search(value):
        return "(hidden)"  # not even a hash: a short secret's hash can be guessed
    for password in sorted(password_of(value), key=len, reverse=True):
        value = value.replace(password, "***")
    return value


def _selector(deployment: Mapping[str, Any]) -> str:
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


def _revision(meta: Mapping[str, Any]) -> int | None:
    value = (meta.get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _quantity(value: str) -> float:
    try:
        return float(parse_quantity(value))
    except (ValueError, TypeError):
        return 0.0


def _status_message(exc: ApiException) -> str:
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    if isinstance(status, dict) and status.get("kind") == "Status":
        return f"{status.get('reason') or exc.reason} ({status.get('code', exc.status)}): {status.get('message', '')}"
    return f"HTTP {exc.status} {exc.reason}"
