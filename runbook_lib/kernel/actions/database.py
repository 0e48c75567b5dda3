"""Options on the database: end sessions idle in transaction, cancel or terminate a session
that blocks others, record the row-count baseline the integrity check compares against."""

from __future__ import annotations

from typing import Any

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.actions.guard import Guard, Option
from runbook_lib.kernel.sources.postgres import ConnectFailed, activity, integrity, text_of


class DatabaseOptions(Guard):
    def terminate_idle(
        self,
        older_than_s: float | None = None,
        application: str | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """pg_terminate_backend for sessions idle in transaction longer than ``older_than_s``
        (default: the threshold), only ``application``'s when given (the application_name the
        finding names: never every application's on one application's leak). Their
        transactions roll back."""
        older = float(older_than_s if older_than_s is not None else self.rb.thresholds.postgres_idle_in_transaction_s)
        app = application or None
        statement = activity.terminate_idle(older, app)
        pg_where = self._pg_where()

        def plan() -> dict[str, Any]:
            try:
                now = self.rb.postgres.query(activity.idle_preview(older, app))
            except ConnectFailed as exc:  # the findings say why, once
                raise SourceError(
                    "PostgreSQL",
                    "no connection slot is free to list the sessions (see Connections in use); a superuser's "
                    "reserved slot can run the command"
                    if exc.failure.kind == "too_many_connections"
                    else "no connection to list the sessions (see Connections in use)",
                ) from None
            pids = [int(p) for p in now["pid"]]
            return {
                "sql": text_of(statement),
                "command": text_of(statement),
                "sessions_now": now.to_dict("records"),
                "pids": pids,
                "noop": not pids,
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            done = activity.run_returning(self.rb.postgres, statement)
            ended = [int(r["pid"]) for _, r in done.iterrows() if r["terminated"]]
            return {"terminated": ended, "count": len(ended)}

        scope = f" of {app}" if app else ""
        option = Option(
            "terminate_idle",
            f"Terminate sessions{scope} idle in transaction > {older:g} s",
            pg_where,
            text_of(statement),
            ("database_session", f"idle_in_transaction{':' + app if app else ''}"),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    def cancel_blocker(self, pid: int | None, *, recommended: bool | None = None, why: str = "") -> dict[str, Any]:
        """pg_cancel_backend(pid): stop the blocker's running statement; its session stays."""
        return self._end_blocker("cancel_blocker", pid, terminate=False, recommended=recommended, why=why)

    def terminate_blocker(self, pid: int | None, *, recommended: bool | None = None, why: str = "") -> dict[str, Any]:
        """pg_terminate_backend(pid): end the blocker's session; its transaction rolls back."""
        return self._end_blocker("terminate_blocker", pid, terminate=True, recommended=recommended, why=why)

    def _end_blocker(
        self, name: str, pid: int | None, *, terminate: bool, recommended: bool | None, why: str
    ) -> dict[str, Any]:
        statement = activity.end_backend(int(pid or 0), terminate)
        verb = "Terminate" if terminate else "Cancel"

        def plan() -> dict[str, Any]:
            if not pid:
                return {"sql": text_of(statement), "noop": True, "note": "no blocking session found"}
            waiting = activity.waiting(self.rb.postgres)
            blocked = [int(w["pid"]) for _, w in waiting.iterrows() if int(pid) in list(w["blocked_by"] or [])]
            session = activity.blockers(self.rb.postgres, [int(pid)])
            if session.empty:
                return {"sql": text_of(statement), "noop": True, "note": f"session {pid} has ended"}
            return {
                "sql": text_of(statement),
                "session": session.iloc[0].to_dict(),
                "blocks": blocked,
                "noop": not blocked,
                "note": "" if blocked else f"session {pid} no longer blocks anyone",
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            done = activity.run_returning(self.rb.postgres, statement)
            return {"pid": int(pid or 0), "signalled": bool(done.iloc[0]["done"]) if not done.empty else False}

        option = Option(
            name,
            f"{verb} blocking session {pid}" if pid else f"{verb} the blocking session",
            self._pg_where(),
            text_of(statement),
            ("database_session", str(pid or "")),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    def record_baseline(self, *, recommended: bool | None = None, why: str = "") -> dict[str, Any]:
        """Count the core tables now and store the counts (and newest created_at) in
        runbook_row_baseline, which the integrity check compares against next time."""
        tables = list(self.rb.settings.postgres.tables)
        operator = self.rb.operator or "<operator>"

        def plan() -> dict[str, Any]:
            counts = integrity.row_counts(self.rb.postgres, tables)
            statements = integrity.record_baseline_statements(counts, operator)
            missing = [t for t, e in zip(counts["table"], counts["exists"], strict=True) if not e]
            return {
                "sql": ";\n".join(text_of(s) for s in statements) + ";",
                "counts": counts.to_dict("records"),
                "tables_missing": missing,
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            pg = self.rb.postgres
            with pg.connect(read_only=False) as conn:
                counts = integrity.count_rows(conn, integrity.tables(pg, tables))
                for statement in integrity.record_baseline_statements(counts, self.rb.operator):
                    conn.execute(statement)
            return {"recorded": {r["table"]: int(r["rows"]) for r in counts.to_dict("records") if r["exists"]}}

        option = Option(
            "record_baseline",
            "Record the row-count baseline",
            f"{integrity.BASELINE_TABLE} on {self._pg_where()}",
            f"INSERT INTO {integrity.BASELINE_TABLE} ... (one row per table: {', '.join(tables)})",
            ("database_table", integrity.BASELINE_TABLE),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    def _pg_where(self) -> str:
        try:
            return self.rb.postgres.where
        except SourceError:
            return "PostgreSQL (not configured)"
