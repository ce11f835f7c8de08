"""Re-lock uv.lock on a machine that cannot reach the PyTorch CPU index (the build machines).

`uv lock` must read the simple page of every index a package comes from; the PyTorch index is
not reachable here, so this locks in a scratch copy of the project whose `pytorch-cpu` index is
a local page listing the published files, each linked at its real address with its published
sha256, then writes the lock back with that index's real address. What reaches uv.lock is
what `uv lock` against the real index would record (file name, address, hash); torch's metadata
comes from `[[tool.uv.dependency-metadata]]` in pyproject.toml (uv reads nothing else from a
wheel to lock it). Every other package is resolved against PyPI as usual.

    python3 scripts/lock.py                    # re-lock (keeps versions, like `uv lock`)
    python3 scripts/lock.py --upgrade-package X  # any further argument goes to `uv lock`

On a machine that reaches the index, plain `uv lock` gives the same file (plus sizes and upload
times of the two torch wheels, which the local page does not carry).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
INDEX_URL = "https://download.pytorch.org/whl/cpu"
# The CPU wheels of the pinned torch for CPython 3.11 on the two Linux machines, with the sha256
# the index publishes for them. The x86_64 file is byte-identical to the one on the build
# machines (checked below when present); both hashes agree with independent public records of
# the same files. uv checks the hash of every download against the lock.
WHEELS = {
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl": (
        "6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b"
    ),
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_aarch64.whl": (
        "84453b69508ec79902f899c5ed9495acb9e2bbe9fda5f1d5d6f19e3c3842e1a7"
    ),
}
LOCAL_WHEELS = Path("/opt/wheels")


def simple_page() -> str:
    links = "\n".join(
        f'<a href="{INDEX_URL}/{name.replace("+", "%2B")}#sha256={digest}">{name}</a>'
        for name, digest in sorted(WHEELS.items())
    )
    return f"<!DOCTYPE html>\n<html><body>\n{links}\n</body></html>\n"


def check_local_wheels() -> None:
    for name, digest in WHEELS.items():
        path = LOCAL_WHEELS / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise SystemExit(f"lock: {path} is not the published {name} (sha256 differs)")


def main(arguments: list[str]) -> int:
    check_local_wheels()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("lock: uv not found (pip install uv==0.13.8)")
    with tempfile.TemporaryDirectory(prefix="naomi-lock-") as scratch:
        root = Path(scratch)
        page = root / "index" / "torch" / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(simple_page())
        local_url = (root / "index").as_uri()
        copy = root / "project"
        copy.mkdir()
        pyproject = (PROJECT / "pyproject.toml").read_text()
        if f'url = "{INDEX_URL}"' not in pyproject:
            raise SystemExit(f"lock: pyproject.toml has no index {INDEX_URL}")
        (copy / "pyproject.toml").write_text(
            pyproject.replace(f'url = "{INDEX_URL}"', f'url = "{local_url}"')
        )
        shutil.copy(PROJECT / "README.md", copy / "README.md")
        lock = PROJECT / "uv.lock"
        if lock.is_file():
            # The existing lock, pointed at the local page, keeps every version as it is.
            text = lock.read_text().replace(f'"{INDEX_URL}"', f'"{local_url}"')
            (copy / "uv.lock").write_text(text)
        result = subprocess.run([uv, "lock", *arguments], cwd=copy, check=False)
        if result.returncode != 0:
            return result.returncode
        locked = (copy / "uv.lock").read_text()
        # uv records a local index by its path in `source`, by its URL in the manifest.
        for local in (local_url, str(root / "index")):
            locked = locked.replace(f'"{local}"', f'"{INDEX_URL}"')
        if scratch in locked:
            raise SystemExit("lock: the scratch folder leaked into uv.lock; not written")
        lock.write_text(locked)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
