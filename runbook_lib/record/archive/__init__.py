"""The incident-record archive: a hash-chained index of records that never change after they are
indexed. :mod:`.base` is what every archive does; :mod:`.local` keeps it in a directory,
:mod:`.s3` in an ``s3://`` prefix (same layout, same index format), over the trees of
:mod:`.storage`; :mod:`.verify` checks it. Pick one with :func:`archive_for` (the settings) or
:func:`open_archive` (a location).
"""

from __future__ import annotations

from pathlib import Path

from runbook_lib.core.errors import ArchiveError
from runbook_lib.core.settings import Settings, archive_location
from runbook_lib.record.archive.base import Archive
from runbook_lib.record.archive.local import LocalArchive


def open_archive(location: str | Path, *, endpoint: str | None = None, work_dir: Path | None = None) -> Archive:
    """The archive at a directory, a ``file://`` URL or an ``s3://`` URL (``endpoint``: the S3
    service's URL; ``work_dir``: where runs stage for an archive in S3)."""
    if isinstance(location, Path):
        return LocalArchive(location)
    try:
        kind, where = archive_location(location)
    except ValueError as exc:
        raise ArchiveError(f"archive location: {exc}") from None
    if kind == "local":
        return LocalArchive(Path(where).expanduser())
    from runbook_lib.record.archive.s3 import S3Archive  # s3fs and botocore only when needed

    return S3Archive(where, endpoint=endpoint, work_dir=work_dir)


def archive_for(settings: Settings) -> Archive:
    """The archive the settings name (``archive.path``, RUNBOOK_ARCHIVE)."""
    if settings.archive_is_remote:
        from runbook_lib.record.archive.s3 import S3Archive

        return S3Archive(settings.archive_url, endpoint=settings.archive.endpoint, work_dir=settings.archive_path)
    return LocalArchive(settings.archive_path)


__all__ = ["Archive", "LocalArchive", "archive_for", "open_archive"]
