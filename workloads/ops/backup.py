"""Postgres dump sets in the object store: upload and prune (backup CronJob), list, fetch (restore).

A dump set is `postgres/<stamp>/` in the backups bucket: one `<database>.dump` (`pg_dump -Fc`) per
database and a `COMPLETE` marker written last, so a set cut short by a failure is never listed as
restorable nor counted as the newest. `<stamp>` is UTC `YYYYMMDDTHHMMSSZ`, so names sort by time.

- `upload --from DIR`: DIR/<stamp>/*.dump -> the bucket, then the marker; then prune: complete sets
  older than the retention go, and so do incomplete ones older than a day; the newest complete set
  always stays (a backup that stopped running must not empty the bucket).
- `list`: every complete set with its databases and size, newest last.
- `fetch --to DIR [--set STAMP]`: the chosen set (default the newest complete one) -> DIR/*.dump,
  and DIR/SET names it.

Credentials and endpoint come from the environment (`S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `BACKUP_BUCKET`), as the CronJobs set them from the backup consumer's
Secret. Each line printed is what an operator reads in `kubectl logs`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from minio import Minio

PREFIX = "postgres/"
MARKER = "COMPLETE"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
INCOMPLETE_GRACE = timedelta(days=1)


@dataclass
class DumpSet:
    stamp: str
    files: dict[str, int] = field(default_factory=dict)  # database -> bytes
    complete: bool = False

    @property
    def taken(self) -> datetime:
        return datetime.strptime(self.stamp, STAMP_FORMAT).replace(tzinfo=UTC)

    def describe(self) -> str:
        size = sum(self.files.values())
        return f"{self.stamp}: {' '.join(sorted(self.files))} ({size} bytes)"


def client_from_environment() -> Minio:
    endpoint = urlsplit(os.environ["S3_ENDPOINT"])
    return Minio(
        endpoint.netloc,
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        secure=endpoint.scheme == "https",
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )


def dump_sets(client: Minio, bucket: str) -> list[DumpSet]:
    """Every set under postgres/, oldest first (complete or not)."""
    sets: dict[str, DumpSet] = {}
    for item in client.list_objects(bucket, prefix=PREFIX, recursive=True):
        parts = item.object_name[len(PREFIX) :].split("/")
        if len(parts) != 2:
            continue
        stamp, name = parts
        try:
            datetime.strptime(stamp, STAMP_FORMAT)
        except ValueError:
            continue  # not ours
        entry = sets.setdefault(stamp, DumpSet(stamp))
        if name == MARKER:
            entry.complete = True
        elif name.endswith(".dump"):
            entry.files[name.removesuffix(".dump")] = int(item.size or 0)
    return [sets[stamp] for stamp in sorted(sets)]


def _local_set(folder: Path) -> tuple[str, list[Path]]:
    stamps = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(stamps) != 1:
        raise SystemExit(f"backup: expected one <stamp> folder in {folder}, found {[p.name for p in stamps]}")
    dumps = sorted(stamps[0].glob("*.dump"))
    if not dumps:
        raise SystemExit(f"backup: no .dump files in {stamps[0]}")
    return stamps[0].name, dumps


def upload(client: Minio, bucket: str, folder: Path, retention_days: int, now: datetime) -> None:
    stamp, dumps = _local_set(folder)
    for dump in dumps:
        key = f"{PREFIX}{stamp}/{dump.name}"
        client.fput_object(bucket, key, str(dump))
        print(f"uploaded {key} ({dump.stat().st_size} bytes)")
    client.put_object(bucket, f"{PREFIX}{stamp}/{MARKER}", io.BytesIO(b""), 0)
    prune(client, bucket, retention_days, now)
    for kept in complete_sets(client, bucket):
        print(f"kept {kept.describe()}")


def complete_sets(client: Minio, bucket: str) -> list[DumpSet]:
    return [s for s in dump_sets(client, bucket) if s.complete]


def _objects(client: Minio, bucket: str, stamp: str) -> Iterator[str]:
    for item in client.list_objects(bucket, prefix=f"{PREFIX}{stamp}/", recursive=True):
        yield str(item.object_name)


def prune(client: Minio, bucket: str, retention_days: int, now: datetime) -> None:
    sets = dump_sets(client, bucket)
    complete = [s for s in sets if s.complete]
    newest = complete[-1].stamp if complete else None
    for entry in sets:
        age = now - entry.taken
        expired = age > timedelta(days=retention_days) if entry.complete else age > INCOMPLETE_GRACE
        if not expired or entry.stamp == newest:
            continue
        for key in list(_objects(client, bucket, entry.stamp)):
            client.remove_object(bucket, key)
        reason = f"older than {retention_days} days" if entry.complete else "incomplete"
        print(f"pruned {entry.stamp} ({reason})")


def fetch(client: Minio, bucket: str, folder: Path, chosen: str) -> DumpSet:
    sets = complete_sets(client, bucket)
    if not sets:
        raise SystemExit(f"backup: no complete dump set in s3://{bucket}/{PREFIX}")
    if chosen in ("", "latest"):
        entry = sets[-1]
    else:
        matches = [s for s in sets if s.stamp == chosen]
        if not matches:
            known = ", ".join(s.stamp for s in sets)
            raise SystemExit(f"backup: no complete dump set {chosen!r}; sets: {known}")
        entry = matches[0]
    folder.mkdir(parents=True, exist_ok=True)
    for database in sorted(entry.files):
        key = f"{PREFIX}{entry.stamp}/{database}.dump"
        client.fget_object(bucket, key, str(folder / f"{database}.dump"))
        print(f"fetched {key}")
    (folder / "SET").write_text(entry.stamp + "\n")
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upload", help="upload DIR/<stamp>/*.dump, then prune")
    up.add_argument("--from", dest="folder", type=Path, required=True)
    up.add_argument("--retention-days", type=int, required=True)
    commands.add_parser("list", help="list the complete dump sets")
    get = commands.add_parser("fetch", help="download one dump set")
    get.add_argument("--to", dest="folder", type=Path, required=True)
    get.add_argument("--set", default=os.environ.get("BACKUP_SET", "latest"), help="a stamp, or latest")
    args = parser.parse_args(argv)
    client = client_from_environment()
    bucket = os.environ.get("BACKUP_BUCKET", "backups")
    now = datetime.now(UTC)
    if args.command == "upload":
        upload(client, bucket, args.folder, args.retention_days, now)
    elif args.command == "list":
        sets = complete_sets(client, bucket)
        for entry in sets:
            print(entry.describe())
        if not sets:
            print(f"no complete dump set in s3://{bucket}/{PREFIX}")
    else:
        fetch(client, bucket, args.folder, args.set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
