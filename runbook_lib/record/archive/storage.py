"""Where the archive's bytes live, behind the one small interface that reading and verifying use.

Two trees answer the same questions about paths relative to the archive root (``"2026/11/27/<id>/
record.json"``, ``"index.jsonl"``, ``""`` for the root):

- :class:`LocalTree`, a directory, through pathlib: exactly the system calls the archive made
  before there was an interface (symbolic links are seen and reported, never followed by the
  verifier's own walk).
- :class:`S3Tree`, an ``s3://bucket/prefix``, through s3fs (its session, credentials and
  listings) and, for the conditional writes the archive's lock and index need, the same
  client's ``put_object``/``delete_object`` with ``If-None-Match: *`` / ``If-Match: <etag>``.
  S3 has no symbolic links and no empty directories: a "directory" is a key prefix.

Only the tree knows about its medium. How the index is chained and locked is the archive's
business (:mod:`.local` for a directory, :mod:`.s3` for S3).

Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, an instance role); the endpoint from ``archive.endpoint`` (RUNBOOK_ARCHIVE_ENDPOINT),
else botocore's own AWS_ENDPOINT_URL, else AWS. Every error names the archive by its URL (which
never holds credentials: settings refuse one that does) and says what to do; none repeats a key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import ArchiveError, ArchiveUnavailable
from runbook_lib.core.layout import RECORD_ID

log = logging.getLogger("runbook.archive")

_YEAR = re.compile(r"[0-9]{4}")
_TWO = re.compile(r"[0-9]{2}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _order(rel: str) -> list[str]:
    """Sort key of a relative path: by its parts, as pathlib orders paths."""
    return rel.split("/")


class LocalTree:
    """The archive as a directory. ``is_dir``/``is_file``/``exists`` follow symbolic links (as
    pathlib does); ``kind`` and ``is_symlink`` do not."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def url(self, rel: str) -> str:
        return str(self.path(rel))

    def snapshot(self) -> LocalTree:
        """The tree as it is now; a directory needs no copy (its answers are always current)."""
        return self

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def is_file(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def is_dir(self, rel: str) -> bool:
        return self.path(rel).is_dir()

    def is_symlink(self, rel: str) -> bool:
        return self.path(rel).is_symlink()

    def kind(self, rel: str) -> str | None:
        """ "link", "dir", "file" or None (absent), without following a link."""
        path = self.path(rel)
        if path.is_symlink():
            return "link"
        if path.is_dir():
            return "dir"
        return "file" if path.exists() else None

    def read_bytes(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def sha256(self, rel: str) -> str:
        return sha256_file(self.path(rel))

    def version(self, rel: str) -> tuple[Any, ...] | None:
        """What changes whenever the file does: (size, mtime in ns); None when absent."""
        try:
            st = self.path(rel).stat()
        except FileNotFoundError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def iterdir(self, rel: str) -> list[str]:
        """Names in a directory, sorted ([] when it is none)."""
        path = self.path(rel)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def walk(self, rel: str) -> list[tuple[str, str]]:
        """Everything below a directory as (relative path, kind), in path order; symbolic links
        are listed, not entered."""
        out = []
        for path in sorted(self.path(rel).rglob("*")):
            sub = path.relative_to(self.root).as_posix()
            out.append((sub, "link" if path.is_symlink() else "dir" if path.is_dir() else "file"))
        return out

    def record_folders(self) -> Iterator[tuple[str, str]]:
        """(name, relative path) of every directory at ``YYYY/MM/DD/<name>``."""
        if not self.root.exists():
            return
        for year in sorted(self.root.glob("[0-9][0-9][0-9][0-9]")):
            for path in sorted(year.glob("[0-9][0-9]/[0-9][0-9]/*")):
                if path.is_dir():
                    yield path.name, path.relative_to(self.root).as_posix()

    def strays(self) -> Iterator[str]:
        """Relative paths in the date directories that are no part of the layout: files above a
        record directory, and directories at record depth whose name is not a record id."""
        if not self.root.exists():
            return
        for year in sorted(self.root.glob("[0-9][0-9][0-9][0-9]")):
            for path in sorted(year.rglob("*")):
                depth = len(path.relative_to(year).parts)
                if (depth <= 3 and not path.is_dir()) or (depth == 3 and not RECORD_ID.fullmatch(path.name)):
                    yield path.relative_to(self.root).as_posix()

    def date_links(self) -> Iterator[str]:
        """Year, month and day directories that are symbolic links (never followed)."""
        if not self.root.exists():
            return
        for year in sorted(self.root.glob("[0-9][0-9][0-9][0-9]")):
            if year.is_symlink():
                yield year.name
                continue
            for month in sorted(p for p in year.iterdir() if _TWO.fullmatch(p.name)):
                if month.is_symlink():
                    yield month.relative_to(self.root).as_posix()
                elif month.is_dir():
                    for day in sorted(p for p in month.iterdir() if _TWO.fullmatch(p.name)):
                        if day.is_symlink():
                            yield day.relative_to(self.root).as_posix()

    def link_target(self, rel: str) -> str:
        """Where a symbolic link points, and whether that is inside the archive."""
        link = self.path(rel)
        try:
            target = link.resolve()
        except (OSError, RuntimeError):  # a loop of links
            return f"{os.readlink(link)}, a loop of links"
        inside = target.is_relative_to(self.root.resolve())
        return f"{target}, {'inside' if inside else 'OUTSIDE'} the archive"


@dataclass
class Tagged:
    """An object's bytes with its ETag (what a conditional write names) and its server time."""

    data: bytes
    etag: str
    modified: datetime | None


class Conflict(Exception):
    """A conditional write lost: the object was created, replaced or deleted by someone else."""


# S3 error codes, as botocore reports them (a HEAD request has only the status as its code).
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


_DOING = {
    "head_bucket": "checking the bucket",
    "get_object": "reading",
    "head_object": "reading",
    "list_objects_v2": "listing",
    "put_object": "writing",
    "delete_object": "deleting",
}


def _code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


class S3Tree:
    """The archive as an ``s3://bucket/prefix``. Listings are never cached (other writers change
    the bucket); the s3fs filesystem is made on first use in each process (so a forked worker
    gets its own event loop), and that first use checks the bucket once, so a missing bucket,
    missing credentials or an unreachable endpoint is one clear error instead of an archive that
    looks empty."""

    remote = True

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        match = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url)
        if not match:
            raise ArchiveError(f"not an s3:// URL: {safe_endpoint(url)}")
        self.bucket = match.group(1)
        self.prefix = (match.group(2) or "").strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.endpoint = endpoint
        self._fs: Any = None
        self._pid = 0

    # -- names ------------------------------------------------------------------------------
    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix and rel else (rel or self.prefix)

    def url(self, rel: str) -> str:
        return f"{self.location}/{rel}" if rel else self.location

    def _fs_path(self, rel: str) -> str:
        key = self.key(rel)
        return f"{self.bucket}/{key}" if key else self.bucket

    def _where(self) -> str:
        return f"{self.location} (endpoint {safe_endpoint(self.endpoint)})" if self.endpoint else self.location

    # -- the connection -----------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        if self._fs is None or self._pid != os.getpid():
            import s3fs

            fs = s3fs.S3FileSystem(
                endpoint_url=self.endpoint,
                skip_instance_cache=True,
                use_listings_cache=False,
                config_kwargs={
                    "connect_timeout": 5,
                    "read_timeout": 30,
                    "retries": {"max_attempts": 3, "mode": "standard"},
                },
            )
            fs.retries = 2  # s3fs's own retries on top of botocore's: an outage is reported in seconds
            self._request(fs, "head_bucket", {})
            self._fs, self._pid = fs, os.getpid()
        return self._fs

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn what botocore and s3fs raise into an ArchiveUnavailable that names the archive
        and what to do. A missing key stays FileNotFoundError (callers decide what absent means)."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        try:
            yield
        except (NoCredentialsError, PartialCredentialsError):
            raise ArchiveUnavailable(
                f"{self._where()}: no S3 credentials while {doing}: set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or give the host an instance role)",
                "no S3 credentials",
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, TimeoutError, ConnectionError) as exc:
            raise ArchiveUnavailable(
                f"{self._where()}: cannot reach the S3 endpoint while {doing} ({type(exc).__name__}): check "
                f"RUNBOOK_ARCHIVE_ENDPOINT and that the storage service is up",
                "S3 endpoint unreachable",
            ) from None
        except (ClientError, OSError) as exc:
            code = _code(exc) or _code(exc.__cause__)
            if code == "NoSuchBucket" or (code == "404" and doing == _DOING["head_bucket"]):
                raise ArchiveUnavailable(
                    f"{self._where()}: the bucket {self.bucket!r} does not exist: create it, or fix RUNBOOK_ARCHIVE",
                    "bucket missing",
                ) from None
            if code in _DENIED or isinstance(exc, PermissionError):
                raise ArchiveUnavailable(
                    f"{self._where()}: access denied while {doing} ({code or 'PermissionError'}): check the "
                    f"credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that they may read and "
                    f"write this bucket",
                    "S3 access denied",
                ) from None
            if isinstance(exc, FileNotFoundError) or code in _MISSING_KEY:
                raise FileNotFoundError(self.location) from None
            if isinstance(exc, ClientError):
                raise ArchiveUnavailable(
                    f"{self._where()}: S3 answered {code or 'an error'} while {doing}", f"S3 error {code}"
                ) from None
            raise

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(self.fs, method, kwargs)

    def _request(self, fs: Any, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """One request through s3fs's client with its error codes kept (a conditional write's
        412 is a Conflict, not an error); the body of a GET is read before returning."""
        from botocore.exceptions import ClientError
        from fsspec.asyn import sync

        async def go() -> dict[str, Any]:
            await fs.set_session()
            client = await fs.get_s3(self.bucket)
            response = await getattr(client, method)(Bucket=self.bucket, **kwargs)
            if "Body" in response:
                async with response["Body"] as body:
                    response["Body"] = await body.read()
            return response

        with self.errors(_DOING.get(method, method)):
            try:
                return sync(fs.loop, go)
            except ClientError as exc:
                if _code(exc) in _CONFLICT:
                    raise Conflict(kwargs.get("Key", "")) from None
                raise

    # -- reading --------------------------------------------------------------------------------
    def snapshot(self) -> _Listing:
        """One listing of the whole archive, asked again and again: what a verifier walks."""
        return _Listing(self, self._list(""))

    def _list(self, rel: str) -> dict[str, str]:
        """{relative path: "file" | "dir"} of everything at and below ``rel``."""
        base = self._fs_path(rel)
        strip = len(self._fs_path("")) + 1
        with self.errors("listing"):
            found = self.fs.find(base, withdirs=True, detail=True)
        out = {}
        for name, info in found.items():
            sub = name[strip:].strip("/")
            if sub and (not rel or sub == rel or sub.startswith(rel + "/")):
                out[sub] = "dir" if info.get("type") == "directory" else "file"
        return out

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._call("get_object", Key=self.key(rel))["Body"]
        except FileNotFoundError:
            raise FileNotFoundError(self.url(rel)) from None

    def read_tagged(self, rel: str) -> Tagged | None:
        """The object with its ETag, or None when absent."""
        try:
            response = self._call("get_object", Key=self.key(rel))
        except FileNotFoundError:
            return None
        return Tagged(response["Body"], response["ETag"], response.get("LastModified"))

    def sha256(self, rel: str) -> str:
        return hashlib.sha256(self.read_bytes(rel)).hexdigest()

    def version(self, rel: str) -> tuple[Any, ...] | None:
        try:
            response = self._call("head_object", Key=self.key(rel))
        except FileNotFoundError:
            return None
        return (response.get("ContentLength"), response.get("ETag"))

    def exists(self, rel: str) -> bool:
        return self.is_file(rel) or self.is_dir(rel)

    def is_file(self, rel: str) -> bool:
        return self.version(rel) is not None

    def is_dir(self, rel: str) -> bool:
        response = self._call("list_objects_v2", Prefix=f"{self.key(rel)}/" if self.key(rel) else "", MaxKeys=1)
        return bool(response.get("KeyCount") or response.get("Contents"))

    def is_symlink(self, rel: str) -> bool:
        return False

    def kind(self, rel: str) -> str | None:
        return "file" if self.is_file(rel) else "dir" if self.is_dir(rel) else None

    def iterdir(self, rel: str) -> list[str]:
        return self.snapshot_of(rel).iterdir(rel)

    def walk(self, rel: str) -> list[tuple[str, str]]:
        return self.snapshot_of(rel).walk(rel)

    def record_folders(self) -> Iterator[tuple[str, str]]:
        return self.snapshot().record_folders()

    def strays(self) -> Iterator[str]:
        return self.snapshot().strays()

    def snapshot_of(self, rel: str) -> _Listing:
        return _Listing(self, self._list(rel))

    def link_target(self, rel: str) -> str:
        return "(S3 has no symbolic links)"

    # -- writing (conditional where the archive's consistency depends on it) -------------------
    def put(self, rel: str, data: bytes) -> str:
        return str(self._call("put_object", Key=self.key(rel), Body=data)["ETag"])

    def create(self, rel: str, data: bytes) -> str:
        """Write an object that must not exist yet (``If-None-Match: *``); its ETag. Raises
        Conflict when it exists."""
        return self._conditional_put(rel, data, IfNoneMatch="*")

    def replace(self, rel: str, data: bytes, etag: str | None) -> str:
        """Write over the version ``etag`` names (``If-Match``), or create when ``etag`` is None;
        the new ETag. Raises Conflict when the object is not (or no longer) that version."""
        if etag is None:
            return self.create(rel, data)
        return self._conditional_put(rel, data, IfMatch=etag)

    def _conditional_put(self, rel: str, data: bytes, **condition: str) -> str:
        try:
            return str(self._call("put_object", Key=self.key(rel), Body=data, **condition)["ETag"])
        except FileNotFoundError:  # If-Match on an object deleted meanwhile
            raise Conflict(rel) from None

    def delete(self, rel: str, etag: str | None = None) -> bool:
        """Delete an object (only the version ``etag`` names, when given); False when it was
        another version, or (with ``etag``) not there."""
        condition = {"IfMatch": etag} if etag else {}
        try:
            self._call("delete_object", Key=self.key(rel), **condition)
            return True
        except (Conflict, FileNotFoundError):
            return False


class _Listing:
    """An S3 archive as one listing saw it: the questions about kinds and names are answered
    from it, the bytes are read from the bucket."""

    remote = True

    def __init__(self, tree: S3Tree, kinds: dict[str, str]) -> None:
        self.tree, self.kinds = tree, kinds
        self.location = tree.location

    def url(self, rel: str) -> str:
        return self.tree.url(rel)

    def snapshot(self) -> _Listing:
        return self

    def kind(self, rel: str) -> str | None:
        return self.kinds.get(rel) if rel else "dir"

    def exists(self, rel: str) -> bool:
        return self.kind(rel) is not None

    def is_file(self, rel: str) -> bool:
        return self.kind(rel) == "file"

    def is_dir(self, rel: str) -> bool:
        return self.kind(rel) == "dir"

    def is_symlink(self, rel: str) -> bool:
        return False

    def read_bytes(self, rel: str) -> bytes:
        return self.tree.read_bytes(rel)

    def sha256(self, rel: str) -> str:
        return self.tree.sha256(rel)

    def version(self, rel: str) -> tuple[Any, ...] | None:
        return self.tree.version(rel)

    def iterdir(self, rel: str) -> list[str]:
        depth = rel.count("/") + 1 if rel else 0
        inside = f"{rel}/" if rel else ""
        return sorted(sub.split("/")[depth] for sub in self.kinds if sub.startswith(inside) and sub.count("/") == depth)

    def walk(self, rel: str) -> list[tuple[str, str]]:
        inside = f"{rel}/" if rel else ""
        return sorted(
            ((sub, kind) for sub, kind in self.kinds.items() if sub.startswith(inside)), key=lambda p: _order(p[0])
        )

    def record_folders(self) -> Iterator[tuple[str, str]]:
        for sub in sorted(self.kinds, key=_order):
            parts = sub.split("/")
            if (
                len(parts) == 4
                and self.kinds[sub] == "dir"
                and _YEAR.fullmatch(parts[0])
                and _TWO.fullmatch(parts[1])
                and _TWO.fullmatch(parts[2])
            ):
                yield parts[3], sub

    def date_links(self) -> Iterator[str]:
        return iter(())  # S3 has no symbolic links

    def strays(self) -> Iterator[str]:
        for sub in sorted(self.kinds, key=_order):
            parts = sub.split("/")
            if not (_YEAR.fullmatch(parts[0]) and self.kinds.get(parts[0]) == "dir") or len(parts) < 2:
                continue
            depth = len(parts) - 1
            if (depth <= 3 and self.kinds[sub] != "dir") or (depth == 3 and not RECORD_ID.fullmatch(parts[-1])):
                yield sub

    def link_target(self, rel: str) -> str:
        return self.tree.link_target(rel)


Tree = LocalTree | S3Tree | _Listing
