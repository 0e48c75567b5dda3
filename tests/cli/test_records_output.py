"""What `runbook show` and `runbook records` print where it is easy to get wrong: an id prefix
that matches several records lists them, and a table written into a pipe keeps every row whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.core.errors import ArchiveError
from runbook_lib.record.archive import LocalArchive
from tests.helpers import cli


def _index(archive: LocalArchive, rid: str, runbook: str, status: str = "succeeded") -> None:
    """A record with its three files and its index line (nothing is run)."""
    record = {"id": rid, "runbook": runbook, "status": status}
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text("<html></html>")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)


def test_an_ambiguous_prefix_lists_the_records_it_matches(tmp_path: Path) -> None:
    root = tmp_path / "executed"
    archive = LocalArchive(root)
    _index(archive, "20261127T145329Z-triage-0000000a", "triage", "failed")
    _index(archive, "20261127T150000Z-high-error-rate-0000000b", "high-error-rate")
    _index(archive, "20261128T090000Z-triage-0000000c", "triage")

    res = cli("show", "20261127", env={"RUNBOOK_ARCHIVE": str(root)})
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert lines[0] == "runbook: archive error: '20261127' matches 2 records; give more of the id:"
    assert lines[1:] == [  # newest first, each with its runbook, start and status from the index
        "  20261127T150000Z-high-error-rate-0000000b  high-error-rate  started 2026-11-27T15:00:00Z  succeeded",
        "  20261127T145329Z-triage-0000000a  triage  started 2026-11-27T14:53:29Z  failed",
    ]


def test_more_than_ten_matches_list_ten_and_count_the_rest(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path / "executed")
    ids = [f"20261127T1000{i:02d}Z-triage-{i:08x}" for i in range(13)]
    for rid in ids:
        _index(archive, rid, "triage")
    with pytest.raises(ArchiveError, match="matches 13 records") as caught:
        archive.find("2026")
    lines = str(caught.value).splitlines()
    assert [line.split()[0] for line in lines[1:11]] == ids[::-1][:10]
    assert lines[11:] == ["  and 3 more"]
    assert archive.find(ids[4][-8:]) == ids[4]  # a unique suffix still finds its record


def test_a_table_into_a_pipe_keeps_every_row_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """capsys's stdout is not a terminal, like `runbook records | cat`: a row far wider than 120
    characters is neither cut nor stripped of the padding that lines the columns up."""
    from runbook_lib.cli.common import print_table

    long = "w" * 150
    print_table([{"a": "x", "b": long, "c": "end"}, {"a": "xx", "b": "z", "c": "c"}], ["a", "b", "c"])
    header, first, second = capsys.readouterr().out.splitlines()
    assert first == f"x   {long}  end"
    assert second == "xx  " + "z".ljust(150) + "  c"
    assert header.index("C") == first.index("end") == second.rindex("c")
