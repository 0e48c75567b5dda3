"""Kubernetes through the official client: rollout history (as kubectl reads it), pod logs,
top pods (metrics.k8s.io), and the two writes the actions need (rollback patch, scale)."""

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

from ...errors import SourceError, SourceNotConfigured, SourceUnavailable
from ...settings import Settings

NAME = "Kubernetes"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
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
            "patch": patch,
        }

    def patch_deployment(self, name: str, namespace: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call(
            f"patch deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type="application/json-patch+json",
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
