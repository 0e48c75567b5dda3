"""An HTTP-level fake Kubernetes API server, for the real ``kubernetes`` client.

It serves the REST shapes of the endpoints the runbooks use (deployments, replicasets, pods,
pod logs, events, the scale subresource, metrics.k8s.io pod metrics), plus a generic store for
any other object by its REST path (POST to create, GET to read, DELETE; ``/api`` for
reachability; kinds in ``reject_kinds`` are refused as Invalid), answers errors as
``kind: Status``, requires a bearer token, applies JSON patches and merge patches, and
emulates the deployment controller's one behaviour that rollbacks depend on: when the pod
template changes to an existing ReplicaSet's, that ReplicaSet becomes the newest revision.
Every request is recorded for assertions.

Used by the tests and, through ``runbook demo``, by the loopback sandbox.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REVISION = "deployment.kubernetes.io/revision"
# Application secrets in the deployment-failure scenario's environment: no record may show them.
SANDBOX_SECRETS = ("wJalrXUtnFEMI-K7MDENG-old", "app-db-pw-Kq2", "wJalrXUtnFEMI-K7MDENG-new")


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKube:
    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.metrics: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}  # any other object, by its REST path
        self.reject_kinds: set[str] = set()  # POSTs of these kinds answer 422 Invalid
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scenario ----------------------------------------------------------------------------
    def add_api_gateway(
        self,
        namespace: str,
        rollout_at: datetime,
        name: str = "api-gateway",
        images: tuple[str, ...] = (
            "omnihub/api-gateway:1.41.0",
            "omnihub/api-gateway:1.42.0",
            "omnihub/api-gateway:1.43.0",
        ),
        replicas: int = 3,
        cpu_usage: str = "480m",
        error_lines: int = 40,
    ) -> None:
        """A deployment with one ReplicaSet per image (revisions 5, 6, 7...), the newest rolled
        out at ``rollout_at``; its pods log errors and run near their CPU limit."""
        uid = f"uid-{name}"
        labels = {"app": name}
        first_rev = 5
        for i, image in enumerate(images):
            rev = first_rev + i
            created = rollout_at - timedelta(days=2 * (len(images) - 1 - i))
            template = self._template(labels, image, f"hash{rev}")
            rs_name = f"{name}-hash{rev}"
            current = i == len(images) - 1
            self.replicasets[(namespace, rs_name)] = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "uid": f"uid-{rs_name}",
                    "creationTimestamp": _ts(created),
                    "labels": {**labels, "pod-template-hash": f"hash{rev}"},
                    "annotations": {
                        REVISION: str(rev),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "kubernetes.io/change-cause": f"deploy {image}",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": replicas if current else 0,
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
                "status": {"replicas": replicas if current else 0},
            }
        newest = first_rev + len(images) - 1
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "generation": 12,
                "creationTimestamp": _ts(rollout_at - timedelta(days=30)),
                "annotations": {REVISION: str(newest)},
                "labels": labels,
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": self._template(labels, images[-1], None),
            },
            "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas},
        }
        for p in range(replicas):
            pod_name = f"{name}-hash{newest}-pod{p}"
            self.pods[(namespace, pod_name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "labels": {**labels, "pod-template-hash": f"hash{newest}"},
                    "creationTimestamp": _ts(rollout_at),
                },
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": images[-1],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "512Mi"},
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                            },
                        }
                    ]
                },
                "status": {"phase": "Running"},
            }
            lines = []
            for n in range(120):
                if n % 3 == 0 and len([x for x in lines if "ERROR" in x]) < error_lines:
                    lines.append(
                        f"2026-11-26T14:{n % 60:02d}:00Z ERROR POST /api/v1/workflows/execute 500 "
                        f"upstream executor: connection refused (pool exhausted)"
                    )
                else:
                    lines.append(f"2026-11-26T14:{n % 60:02d}:00Z INFO GET /api/v1/workflows 200 12ms")
            self.logs[(namespace, pod_name)] = "\n".join(lines) + "\n"
            self.metrics[(namespace, pod_name)] = {
                "kind": "PodMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": pod_name, "namespace": namespace, "labels": {**labels}},
                "timestamp": _ts(datetime.now(UTC)),
                "window": "30s",
                "containers": [{"name": "api", "usage": {"cpu": cpu_usage, "memory": "300Mi"}}],
            }

    def crash_pods(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """The service-down scenario: of the deployment's pods, one is in CrashLoopBackOff after
        its process exited with an error, one was OOMKilled and is not ready, one is running; a
        fourth pod cannot be scheduled. Events say so, as the kubelet and scheduler would."""
        at = at or datetime.now(UTC)
        pods = sorted(k for k in self.pods if k[0] == namespace and k[1].startswith(name))
        states = [
            ("CrashLoopBackOff", "Error", 1, 14, False),
            ("", "OOMKilled", 137, 5, False),
            ("", "", None, 0, True),
        ]
        for key, (waiting, exit_reason, code, restarts, ready) in zip(pods, states, strict=False):
            pod = self.pods[key]
            status: dict[str, Any] = {"name": "api", "ready": ready, "restartCount": restarts, "image": "x"}
            status["state"] = (
                {"waiting": {"reason": waiting, "message": "back-off 5m0s restarting failed container"}}
                if waiting
                else {"running": {"startedAt": _ts(at - timedelta(minutes=1))}}
            )
            if exit_reason:
                status["lastState"] = {
                    "terminated": {
                        "reason": exit_reason,
                        "exitCode": code,
                        "finishedAt": _ts(at - timedelta(minutes=2)),
                    }
                }
            pod["status"] = {"phase": "Running", "containerStatuses": [status]}
            pod["spec"]["nodeName"] = "node-1"
        template = self.pods[pods[0]]
        pending = copy.deepcopy(template)
        pending["metadata"]["name"] = f"{name}-pending"
        pending["status"] = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }
        self.pods[(namespace, pending["metadata"]["name"])] = pending
        first, second = pods[0][1], pods[1][1]
        self.add_event(namespace, "Pod", first, "BackOff", "Back-off restarting failed container api", at, count=14)
        self.add_event(
            namespace, "Pod", second, "OOMKilling", "Memory cgroup out of memory: Killed process 1 (api)", at
        )
        self.add_event(
            namespace,
            "Pod",
            second,
            "Unhealthy",
            'Readiness probe failed: Get "http://10.0.0.12:8080/healthz": dial tcp: connection refused',
            at,
            count=9,
        )
        self.add_event(
            namespace,
            "Pod",
            f"{name}-pending",
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient memory.",
            at,
            count=3,
        )

    # -- one failure mode at a time (the fault matrix) -------------------------------------------
    def _own_pods(self, namespace: str, name: str) -> list[tuple[str, str]]:
        return sorted(k for k in self.pods if k[0] == namespace and k[1].startswith(f"{name}-"))

    def _container_status(
        self, pod: dict[str, Any], ready: bool, restarts: int, waiting: tuple[str, str] | None, last: dict[str, Any]
    ) -> None:
        container = pod["spec"]["containers"][0]
        status: dict[str, Any] = {
            "name": container["name"],
            "ready": ready,
            "restartCount": restarts,
            "image": container["image"],
        }
        status["state"] = (
            {"waiting": {"reason": waiting[0], "message": waiting[1]}}
            if waiting
            else {"running": {"startedAt": _ts(datetime.now(UTC) - timedelta(minutes=1))}}
        )
        if last:
            status["lastState"] = {"terminated": last}
        pod["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [status],
        }
        pod["spec"]["nodeName"] = "node-1"

    def oom_kill_pods(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """Every pod of the deployment is killed for memory over and over: its container waits in
        CrashLoopBackOff, its last run ended OOMKilled (exit 137); the kubelet's events say so."""
        at = at or datetime.now(UTC)
        for key in self._own_pods(namespace, name):
            self._container_status(
                self.pods[key],
                False,
                7,
                ("CrashLoopBackOff", "back-off 2m40s restarting failed container"),
                {"reason": "OOMKilled", "exitCode": 137, "finishedAt": _ts(at - timedelta(minutes=1))},
            )
            self.add_event(namespace, "Pod", key[1], "OOMKilling", "Memory cgroup out of memory: Killed process 1", at)
            self.add_event(namespace, "Pod", key[1], "BackOff", "Back-off restarting failed container api", at, 7)

    def crash_loop_pods(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """Every pod of the deployment exits with an error right after start (CrashLoopBackOff,
        last exit Error, code 1), and its log ends in the traceback."""
        at = at or datetime.now(UTC)
        for key in self._own_pods(namespace, name):
            self._container_status(
                self.pods[key],
                False,
                12,
                ("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
                {"reason": "Error", "exitCode": 1, "finishedAt": _ts(at - timedelta(minutes=1))},
            )
            self.logs[key] = (
                "2026-11-26T14:00:00Z INFO starting api-gateway\nTraceback (most recent call last):\n"
                "KeyError: 'FEATURE_BATCH_EXECUTE'\n"
            )
            self.add_event(namespace, "Pod", key[1], "BackOff", "Back-off restarting failed container api", at, 12)

    def unschedulable_pods(
        self,
        namespace: str,
        name: str = "api-gateway",
        pending: int = 2,
        message: str = "0/3 nodes are available: 3 Insufficient memory.",
        at: datetime | None = None,
    ) -> None:
        """``pending`` of the deployment's pods wait for a node (PodScheduled False, Unschedulable),
        the scheduler's FailedScheduling event saying why; the others run and are ready."""
        at = at or datetime.now(UTC)
        for i, key in enumerate(self._own_pods(namespace, name)):
            pod = self.pods[key]
            if i < pending:
                pod["spec"].pop("nodeName", None)
                pod["status"] = {
                    "phase": "Pending",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
                    ],
                }
                self.metrics.pop(key, None)
                self.add_event(namespace, "Pod", key[1], "FailedScheduling", message, at, count=5)
            else:
                self._container_status(pod, True, 0, None, {})

    def image_pull_pods(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """Every pod of the deployment (the newest revision, replaced all at once: the Recreate
        strategy) waits in ImagePullBackOff: its image tag does not exist in the registry."""
        at = at or datetime.now(UTC)
        for key in self._own_pods(namespace, name):
            pod = self.pods[key]
            image = pod["spec"]["containers"][0]["image"]
            self._container_status(pod, False, 0, ("ImagePullBackOff", f'Back-off pulling image "{image}"'), {})
            self.metrics.pop(key, None)
            self.add_event(
                namespace,
                "Pod",
                key[1],
                "Failed",
                f'Failed to pull image "{image}": rpc error: code = NotFound desc = manifest unknown',
                at,
                count=4,
            )
        self.deployments[(namespace, name)]["spec"]["strategy"] = {"type": "Recreate"}

    def wedge_pods(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """Every pod of the deployment runs without restarts but fails its readiness probe (a
        wedged process: a deadlock, an exhausted pool that never recovers)."""
        at = at or datetime.now(UTC)
        for key in self._own_pods(namespace, name):
            self._container_status(self.pods[key], False, 0, None, {})
            self.add_event(
                namespace,
                "Pod",
                key[1],
                "Unhealthy",
                'Readiness probe failed: Get "http://10.0.0.12:8080/healthz": context deadline exceeded',
                at,
                count=30,
            )

    def image_pull_rollout(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """The newest revision's image cannot be pulled: the previous revision's pods still serve,
        one new pod waits in ImagePullBackOff, and the rollout passed its progress deadline."""
        at = at or datetime.now(UTC)
        owned = sorted(
            (
                rs
                for (ns, _), rs in self.replicasets.items()
                if ns == namespace and rs["metadata"]["name"].startswith(name)
            ),
            key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
        )
        new, old = owned[-1], owned[-2]
        old_hash = old["metadata"]["labels"]["pod-template-hash"]
        old_image = old["spec"]["template"]["spec"]["containers"][0]["image"]
        new_image = new["spec"]["template"]["spec"]["containers"][0]["image"]
        replicas = int(self.deployments[(namespace, name)]["spec"]["replicas"])
        for key in self._own_pods(namespace, name):  # the old revision's pods serve on
            pod = self.pods.pop(key)
            metrics = self.metrics.pop(key, None)
            logs = self.logs.pop(key, "")
            renamed = key[1].replace(new["metadata"]["labels"]["pod-template-hash"], old_hash)
            pod["metadata"]["name"] = renamed
            pod["metadata"]["labels"]["pod-template-hash"] = old_hash
            pod["spec"]["containers"][0]["image"] = old_image
            self._container_status(pod, True, 0, None, {})
            self.pods[(namespace, renamed)] = pod
            self.logs[(namespace, renamed)] = logs
            if metrics:
                metrics["metadata"]["name"] = renamed
                self.metrics[(namespace, renamed)] = metrics
        old["spec"]["replicas"] = old["status"]["replicas"] = replicas
        new["spec"]["replicas"] = new["status"]["replicas"] = 1
        template = copy.deepcopy(next(iter(self.pods.values())) if self.pods else {})
        pulled = f"{name}-{new['metadata']['labels']['pod-template-hash']}-pull0"
        template["metadata"]["name"] = pulled
        template["metadata"]["labels"]["pod-template-hash"] = new["metadata"]["labels"]["pod-template-hash"]
        template["metadata"]["creationTimestamp"] = _ts(at - timedelta(minutes=12))
        template["spec"]["containers"][0]["image"] = new_image
        self._container_status(
            template,
            False,
            0,
            ("ImagePullBackOff", f'Back-off pulling image "{new_image}"'),
            {},
        )
        self.pods[(namespace, pulled)] = template
        self.add_event(
            namespace,
            "Pod",
            pulled,
            "Failed",
            f'Failed to pull image "{new_image}": rpc error: code = NotFound desc = manifest unknown',
            at,
            count=6,
        )
        self.add_event(namespace, "Pod", pulled, "BackOff", f'Back-off pulling image "{new_image}"', at, count=20)
        dep = self.deployments[(namespace, name)]
        dep["spec"]["progressDeadlineSeconds"] = 600
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": replicas + 1,
            "updatedReplicas": 1,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
                    "lastUpdateTime": _ts(at),
                }
            ],
        }

    def break_rollout(self, namespace: str, name: str = "api-gateway", at: datetime | None = None) -> None:
        """The deployment-failure scenario: the newest revision changed the image and the
        environment, one new pod is up, and the rollout passed its progress deadline."""
        at = at or datetime.now(UTC)
        owned = sorted(
            (
                rs
                for (ns, _), rs in self.replicasets.items()
                if ns == namespace and rs["metadata"]["name"].startswith(name)
            ),
            key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
        )
        env_old = [
            {"name": "DB_POOL_SIZE", "value": "20"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "AWS_SECRET_ACCESS_KEY", "value": SANDBOX_SECRETS[0]},
            {"name": "DATABASE_URL", "value": f"postgres://api:{SANDBOX_SECRETS[1]}@db:5432/omnihub"},
        ]
        env_new = [
            {"name": "DB_POOL_SIZE", "value": "5"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "AWS_SECRET_ACCESS_KEY", "value": SANDBOX_SECRETS[2]},
            {"name": "DATABASE_URL", "value": f"postgres://api:{SANDBOX_SECRETS[1]}@db-2:5432/omnihub"},
            {"name": "FEATURE_BATCH_EXECUTE", "value": "on"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "password"}}},
        ]
        for rs in owned[:-1]:
            rs["spec"]["template"]["spec"]["containers"][0]["env"] = copy.deepcopy(env_old)
        owned[-1]["spec"]["template"]["spec"]["containers"][0]["env"] = copy.deepcopy(env_new)
        dep = self.deployments[(namespace, name)]
        dep["spec"]["template"]["spec"]["containers"][0]["env"] = copy.deepcopy(env_new)
        dep["spec"]["progressDeadlineSeconds"] = 600
        replicas = int(dep["spec"]["replicas"])
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": replicas + 1,
            "updatedReplicas": 1,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": _ts(at),
                },
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{owned[-1]["metadata"]["name"]}" has timed out progressing.',
                    "lastUpdateTime": _ts(at),
                },
            ],
        }

    def add_event(
        self, namespace: str, kind: str, obj: str, reason: str, message: str, at: datetime, count: int = 1
    ) -> None:
        n = len(self.events)
        self.events.append(
            {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {"name": f"{obj}.{n:04x}", "namespace": namespace, "creationTimestamp": _ts(at)},
                "involvedObject": {"kind": kind, "name": obj, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": "Normal" if reason in ("Scheduled", "Pulled", "Created", "Started") else "Warning",
                "count": count,
                "firstTimestamp": _ts(at - timedelta(minutes=10)),
                "lastTimestamp": _ts(at - timedelta(seconds=30 * n)),
            }
        )

    @staticmethod
    def _template(labels: dict[str, str], image: str, pod_hash: str | None) -> dict[str, Any]:
        lab = dict(labels)
        if pod_hash:
            lab["pod-template-hash"] = pod_hash
        return {
            "metadata": {"labels": lab},
            "spec": {
                "containers": [
                    {"name": "api", "image": image, "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}}}
                ]
            },
        }

    # -- server --------------------------------------------------------------------------------
    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    # -- request handling ------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any, str]:
        with self.lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "content_type": headers.get("Content-Type", ""),
                    "body": json.loads(body) if body else None,
                }
            )
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, status(401, "Unauthorized", "Unauthorized"), "application/json"
            selector = _parse_selector((query.get("labelSelector") or [""])[0])
            m = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?", path)
            if m:
                ns, name, scale = m.groups()
                dep = self.deployments.get((ns, name))
                if dep is None and not scale and path in self.objects:  # created through the API (a drill)
                    return self._generic(method, path, body) or (405, status(405, "", ""), "application/json")
                if dep is None:
                    return 404, status(404, "NotFound", f'deployments.apps "{name}" not found'), "application/json"
                if method == "GET" and not scale:
                    return 200, dep, "application/json"
                if method == "PATCH" and scale:
                    dep["spec"]["replicas"] = int(json.loads(body)["spec"]["replicas"])
                    return (
                        200,
                        {
                            "kind": "Scale",
                            "apiVersion": "autoscaling/v1",
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"replicas": dep["spec"]["replicas"]},
                            "status": {"replicas": dep["status"]["replicas"]},
                        },
                        "application/json",
                    )
                if method == "PATCH" and headers.get("Content-Type") == "application/merge-patch+json":
                    patch = json.loads(body)
                    if not isinstance(patch, dict):
                        return 422, status(422, "Invalid", "a merge patch is an object"), "application/json"
                    _merge_patch(dep, patch)
                    return 200, dep, "application/json"
                if method == "PATCH":
                    if headers.get("Content-Type") != "application/json-patch+json":
                        return 415, status(415, "UnsupportedMediaType", "expected a JSON patch"), "application/json"
                    try:
                        _apply_json_patch(dep, json.loads(body))
                    except (KeyError, ValueError, TypeError) as exc:
                        return 422, status(422, "Invalid", f"patch could not be applied: {exc}"), "application/json"
                    self._controller(ns, name)
                    return 200, dep, "application/json"
                return 405, status(405, "MethodNotAllowed", "method not allowed"), "application/json"
            m = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/replicasets", path)
            if m and method == "GET":
                items = [rs for (ns, _), rs in self.replicasets.items() if ns == m.group(1) and _matches(rs, selector)]
                return (
                    200,
                    {"kind": "ReplicaSetList", "apiVersion": "apps/v1", "metadata": {}, "items": items},
                    "application/json",
                )
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
            if m and method == "GET":
                items = [p for (ns, _), p in self.pods.items() if ns == m.group(1) and _matches(p, selector)]
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}, "application/json"
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/events", path)
            if m and method == "GET":
                items = [e for e in self.events if e["metadata"]["namespace"] == m.group(1)]
                return (
                    200,
                    {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items},
                    "application/json",
                )
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", path)
            if m and method == "DELETE":  # no controller recreates it (a ReplicaSet would)
                pod = self.pods.pop((m.group(1), m.group(2)), None)
                if pod is None:
                    return 404, status(404, "NotFound", f'pods "{m.group(2)}" not found'), "application/json"
                return 200, pod, "application/json"
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", path)
            if m and method == "GET":
                text = self.logs.get((m.group(1), m.group(2)))
                if text is None:
                    return 404, status(404, "NotFound", f'pods "{m.group(2)}" not found'), "application/json"
                tail = int((query.get("tailLines") or ["0"])[0] or 0)
                lines = text.splitlines(keepends=True)
                return 200, "".join(lines[-tail:] if tail else lines), "text/plain"
            m = re.fullmatch(r"/apis/metrics.k8s.io/v1beta1/namespaces/([^/]+)/pods", path)
            if m and method == "GET":
                items = [x for (ns, _), x in self.metrics.items() if ns == m.group(1) and _matches(x, selector)]
                return (
                    200,
                    {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items},
                    "application/json",
                )
            if path == "/api" and method == "GET":
                return 200, {"kind": "APIVersions", "versions": ["v1"]}, "application/json"
            generic = self._generic(method, path, body)
            if generic is not None:
                return generic
            return 404, status(404, "NotFound", "the server could not find the requested resource"), "application/json"

    def _generic(self, method: str, path: str, body: bytes) -> tuple[int, Any, str] | None:
        """Create (POST to the collection), read (GET) and delete (DELETE) any object by path:
        /api/v1[/namespaces/NS]/PLURAL[/NAME] or /apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME]."""
        m = GENERIC.fullmatch(path)
        if m is None:
            return None
        plural, name = m.group("plural"), m.group("name")
        if method == "POST" and name is None:
            obj = json.loads(body) if body else {}
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if not isinstance(meta, dict) or not meta.get("name"):
                return 422, status(422, "Invalid", f"{plural}: metadata.name: Required value"), "application/json"
            if obj.get("kind") in self.reject_kinds:
                return (
                    422,
                    status(422, "Invalid", f'{plural} "{meta["name"]}" is invalid: {obj["kind"]} is not allowed here'),
                    "application/json",
                )
            key = f"{path}/{meta['name']}"
            if key in self.objects:
                return (
                    409,
                    status(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists'),
                    "application/json",
                )
            if m.group("ns"):
                meta["namespace"] = m.group("ns")
            meta.setdefault("uid", f"uid-{len(self.objects)}-{meta['name']}")
            meta.setdefault("creationTimestamp", _ts(datetime.now(UTC)))
            self.objects[key] = obj
            return 201, obj, "application/json"
        if name is None:
            return None
        obj = self.objects.get(path)
        if obj is None:
            return 404, status(404, "NotFound", f'{plural} "{name}" not found'), "application/json"
        if method == "GET":
            return 200, obj, "application/json"
        if method == "DELETE":
            del self.objects[path]
            return 200, status(200, "", f'{plural} "{name}" deleted') | {"status": "Success"}, "application/json"
        return 405, status(405, "MethodNotAllowed", "method not allowed"), "application/json"

    def _controller(self, ns: str, name: str) -> None:
        """After a template change: the ReplicaSet with the same template becomes the newest
        revision (what the deployment controller does on `rollout undo`)."""
        dep = self.deployments[(ns, name)]
        want = _strip_hash(dep["spec"]["template"])
        owned = [
            rs
            for (n, _), rs in self.replicasets.items()
            if n == ns
            and any(r.get("uid") == dep["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences", []))
        ]
        newest = max(int(rs["metadata"]["annotations"][REVISION]) for rs in owned)
        for rs in owned:
            if _strip_hash(rs["spec"]["template"]) == want:
                if int(rs["metadata"]["annotations"][REVISION]) != newest:
                    rs["metadata"]["annotations"][REVISION] = str(newest + 1)
                    dep["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
                break


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def log_message(self, *_args: Any) -> None:
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload, ctype = self.fake.handle(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve


GENERIC = re.compile(
    r"/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z0-9.-]+)(?:/(?P<name>[^/]+))?"
)


def _parse_selector(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    (t.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
    return t


def _merge_patch(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            _merge_patch(doc[key], value)
        else:
            doc[key] = copy.deepcopy(value)


def _apply_json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    if not isinstance(ops, list):
        raise ValueError("a JSON patch is a list of operations")
    for op in ops:
        if op.get("op") not in ("replace", "add"):
            raise ValueError(f"unsupported op {op.get('op')!r}")
        keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
        target = doc
        for key in keys[:-1]:
            target = target[key]
        if op["op"] == "replace" and keys[-1] not in target:
            raise KeyError(f"path {op['path']} does not exist")
        target[keys[-1]] = copy.deepcopy(op["value"])
