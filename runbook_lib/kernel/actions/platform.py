"""Options on the platform: roll a deployment back, restart it, scale it, switch
EXECUTION_SAFE_MODE on."""

from __future__ import annotations

from typing import Any

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.actions.guard import Guard, Option, sql_literal
from runbook_lib.kernel.sources.postgres import set_control


class PlatformOptions(Guard):
    def rollback(
        self,
        deployment: str | None = None,
        to_revision: int | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """``kubectl rollout undo``: JSON-patch the deployment's template back to a previous ReplicaSet's."""
        name = deployment or self.rb.service.deployment
        ns = self.rb.settings.kubernetes.namespace
        command = f"kubectl rollout undo deployment/{name} -n {ns}" + (
            f" --to-revision={to_revision}" if to_revision else ""
        )

        def plan() -> dict[str, Any]:
            return self.rb.kubernetes.rollback_plan(name, to_revision)

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            self.rb.kubernetes.patch_deployment(p["deployment"], p["namespace"], p["_patch"])
            return {
                "rolled_back_to": p["to_revision"],
                "from_revision": p["from_revision"],
                "images": p["images"],
            }

        option = Option(
            "rollback", "Rollback", f"deployment/{name} in {ns}", command, ("deployment", f"{ns}/{name}"), plan, perform
        )
        return self._run(option, recommended, why)

    def restart(
        self, deployment: str | None = None, *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """``kubectl rollout restart``: a new restartedAt annotation on the pod template, so every
        pod is replaced (the same revision, new processes)."""
        name = deployment or self.rb.service.deployment
        ns = self.rb.settings.kubernetes.namespace
        command = f"kubectl rollout restart deployment/{name} -n {ns}"

        def plan() -> dict[str, Any]:
            return self.rb.kubernetes.restart_plan(name)

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            self.rb.kubernetes.patch_deployment(p["deployment"], p["namespace"], p["patch"])
            return {"restarted": p["deployment"], "revision": p["revision"]}

        option = Option(
            "restart",
            "Rollout restart",
            f"deployment/{name} in {ns}",
            command,
            ("deployment", f"{ns}/{name}"),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    def scale(
        self,
        replicas: int | None,
        deployment: str | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """``kubectl scale --replicas=N`` through the scale subresource."""
        name = deployment or self.rb.service.deployment
        ns = self.rb.settings.kubernetes.namespace
        command = f"kubectl scale deployment/{name} -n {ns} --replicas={replicas or '<current + 50%>'}"

        def plan() -> dict[str, Any]:
            dep = self.rb.kubernetes.deployment(name)
            current = int((dep.get("spec") or {}).get("replicas") or 0)
            target = int(replicas) if replicas is not None else max(current + 1, current * 3 // 2)
            if target < 1:
                raise SourceError("Kubernetes", f"refusing to scale deployment/{name} to {target} replicas")
            return {
                "deployment": name,
                "namespace": ns,
                "from_replicas": current,
                "to_replicas": target,
                "noop": current == target,
                "patch": {"spec": {"replicas": target}},
                "command": f"kubectl scale deployment/{name} -n {ns} --replicas={target}",
            }

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            self.rb.kubernetes.scale(p["deployment"], p["namespace"], p["to_replicas"])
            return {"replicas": p["to_replicas"], "was": p["from_replicas"]}

        option = Option(
            "scale", "Scale up", f"deployment/{name} in {ns}", command, ("deployment", f"{ns}/{name}"), plan, perform
        )
        return self._run(option, recommended, why)

    def enable_safe_mode(
        self, reason: str | None = None, *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Set EXECUTION_SAFE_MODE in emergency_controls: disables all side effects."""
        reason = reason or f"{self.rb.alertname} incident"
        operator = self.rb.operator or "<operator>"
        sql = (
            "UPDATE emergency_controls SET execution_safe_mode = true, "
            f"reason = {sql_literal(reason)}, updated_by = {sql_literal(operator)}, updated_at = now();"
        )

        def plan() -> dict[str, Any]:
            current = self.rb.postgres.emergency_controls()
            return {
                "sql": sql,
                "currently_enabled": bool(current["execution_safe_mode"]),
                "noop": bool(current["execution_safe_mode"]),
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            with self.rb.postgres.connect(read_only=False) as conn:
                row = set_control(conn, "execution_safe_mode", True, reason, self.rb.operator)
            return {"execution_safe_mode": row["enabled"], "updated_by": row["updated_by"]}

        option = Option(
            "safe_mode",
            "Enable EXECUTION_SAFE_MODE",
            "emergency_controls",
            sql,
            ("emergency_control", "EXECUTION_SAFE_MODE"),
            plan,
            perform,
        )
        return self._run(option, recommended, why)
