"""Is the data intact: foreign keys that point nowhere, row counts against the recorded
baseline, checksum failures, and amcheck over the core tables' B-tree indexes. Each finding
names the table and the check that failed (``details.table``, ``details.integrity_check``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.core.present import iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import integrity


@dataclass
class Integrity(Result):
    problems: list[dict[str, str]] = field(default_factory=list)  # {"table", "check"}
    has_baseline: bool = False


@check("Orphaned rows", Integrity, essential=True)
def orphans(rb: RunbookLike) -> Integrity:
    """Every foreign key: rows whose key matches no parent row."""
    keys = integrity.foreign_keys(rb.postgres)
    counted = integrity.orphans(rb.postgres, keys)
    rb.table(counted, title=f"Orphaned rows per foreign key ({len(keys)})")
    bad = counted[counted["orphans"] > 0] if not counted.empty else counted
    result = Integrity()
    if bad.empty:
        rb.finding(
            "Orphaned rows",
            "ok",
            f"No orphaned rows across {len(keys)} foreign key(s).",
            integrity_check="foreign_keys",
        )
        return result
    for _, r in bad.iterrows():
        result.problems.append({"table": r["child"], "check": "foreign_keys"})
        rb.finding(
            "Orphaned rows",
            "critical",
            f"{r['child']}: {int(r['orphans'])} row(s) whose {r['foreign_key']} matches no row (check: foreign keys, "
            f"constraint {r['constraint']}; e.g. {r['example']}). The constraint was bypassed (session_replication_role"
            " = replica, a partial restore, a tool writing around the app).",
            role="cause",
            cause="orphan_rows",
            table=r["child"],
            integrity_check="foreign_keys",
            constraint=r["constraint"],
            foreign_key=r["foreign_key"],
            orphans=int(r["orphans"]),
            example=r["example"],
        )
    return result


@check("Row counts", Integrity)
def row_counts(rb: RunbookLike) -> Integrity:
    """The core tables' rows against the recorded baseline: rows that went missing."""
    tables = list(rb.settings.postgres.tables)
    now = integrity.row_counts(rb.postgres, tables)
    base = integrity.baseline(rb.postgres)
    result = Integrity(has_baseline=base is not None and not base.empty)
    missing_tables = [t for t, e in zip(now["table"], now["exists"], strict=True) if not e]
    for t in missing_tables:
        result.problems.append({"table": t, "check": "row_counts"})
        rb.finding(
            "Row counts",
            "critical",
            f"{t}: the table does not exist.",
            role="cause",
            cause="row_count_drop",
            table=t,
            integrity_check="row_counts",
        )
    if not result.has_baseline:
        rb.table(now, title="Row counts now")
        rb.finding(
            "Row counts",
            "info",
            f"No baseline recorded yet ({integrity.BASELINE_TABLE}): counts are shown, not compared. Record one "
            "while the data is known good (Option 1).",
            integrity_check="row_counts",
            counts={r["table"]: r["rows"] for r in now.to_dict("records") if r["exists"]},
        )
        return result
    assert base is not None
    merged = now.merge(base, on="table", how="left", suffixes=("", "_baseline"))
    merged["change"] = merged["rows"] - merged["rows_baseline"]
    rb.table(
        merged[["table", "rows", "rows_baseline", "change", "recorded_at"]], title="Row counts against the baseline"
    )
    th = rb.thresholds.row_count_drop
    append_only = set(rb.settings.postgres.append_only)
    worst = "ok"
    for _, r in merged.iterrows():
        if pd.isna(r["rows_baseline"]) or pd.isna(r["rows"]) or r["change"] >= 0:
            continue
        lost = int(-r["change"])
        share = lost / r["rows_baseline"] if r["rows_baseline"] else 1.0
        verdict = "critical" if r["table"] in append_only or share >= 5 * th else "warning" if share >= th else "info"
        if verdict == "info":
            continue
        worst = "critical" if "critical" in (worst, verdict) else verdict
        why = "an append-only table lost rows: they were deleted" if r["table"] in append_only else "rows went missing"
        result.problems.append({"table": r["table"], "check": "row_counts"})
        rb.finding(
            "Row counts",
            verdict,
            f"{r['table']}: {int(r['rows'])} rows, {lost} fewer than the baseline of {iso(r['recorded_at'])} "
            f"({share:.1%}; check: row counts): {why}.",
            role="cause",
            cause="row_count_drop",
            table=r["table"],
            integrity_check="row_counts",
            rows=int(r["rows"]),
            baseline=int(r["rows_baseline"]),
            lost=lost,
        )
    if worst == "ok":
        rb.finding(
            "Row counts",
            "ok",
            f"No table has fewer rows than the baseline recorded {iso(merged['recorded_at'].max())}.",
            integrity_check="row_counts",
        )
    return result


@check("Checksum failures", Integrity)
def checksums(rb: RunbookLike) -> Integrity:
    """pg_stat_database.checksum_failures: pages PostgreSQL read back corrupt from disk."""
    info = integrity.checksums(rb.postgres)
    title = "Checksum failures"
    if not info.get("enabled"):
        rb.finding(
            title,
            "info",
            "Data checksums are off on this cluster: corrupt pages on disk go undetected (initdb --data-checksums, "
            "or pg_checksums --enable while stopped).",
            integrity_check="checksums",
            enabled=False,
        )
        return Integrity()
    failures = int(info.get("failures") or 0)
    if failures:
        rb.finding(
            title,
            "critical",
            f"{failures} checksum failure(s) in this database, the last at {iso(info.get('last_failure'))} "
            "(check: data checksums): a page on disk is corrupt; the server log names the relation and block.",
            role="cause",
            cause="checksum_failure",
            integrity_check="checksums",
            table=None,
            **info,
        )
        return Integrity(problems=[{"table": "", "check": "checksums"}])
    rb.finding(title, "ok", "Data checksums are on; no failure recorded.", integrity_check="checksums", **info)
    return Integrity()


@check("Index consistency (amcheck)", Integrity)
def indexes(rb: RunbookLike) -> Integrity:
    """amcheck's bt_index_check with heapallindexed on the core tables' B-tree indexes."""
    tables = list(rb.settings.postgres.tables)
    res = integrity.index_check(rb.postgres, tables)
    title = "Index consistency (amcheck)"
    if not res["available"]:
        rb.unchecked(title, f"PostgreSQL: {res['why']}")
        return Integrity.unchecked(res["why"])
    result = Integrity()
    for bad in res["corrupt"]:
        result.problems.append({"table": bad["table"], "check": "amcheck"})
        rb.finding(
            title,
            "critical",
            f"{bad['table']}: index {bad['index']} is corrupt (check: amcheck bt_index_check): {bad['error']}. "
            "REINDEX it; if the table itself is damaged, restore from backup.",
            role="cause",
            cause="corrupt_index",
            table=bad["table"],
            index=bad["index"],
            integrity_check="amcheck",
        )
    if not res["corrupt"]:
        how = " (amcheck created for this check only, then rolled back)" if res.get("created_for_check") else ""
        rb.finding(
            title,
            "ok",
            f"{len(res['checked'])} B-tree index(es) of {', '.join(tables)} verified against their tables{how}.",
            integrity_check="amcheck",
            indexes=res["checked"],
        )
    return result


def decision(rb: RunbookLike, counts: Integrity, *results: Integrity) -> None:
    """No action when every check ran and found nothing (and a baseline exists to compare
    against); otherwise Options 1 and 2 recommend (a baseline to record, SAFE_MODE while the
    damage is repaired), or, with checks unmade, the diagnosis escalates by default."""
    everything = (counts, *results)
    if any(r.problems for r in everything) or not all(r.checked for r in everything):
        return
    if counts.has_baseline:
        rb.no_action("every integrity check passed: no orphaned rows, no lost rows, no corrupt page or index")
