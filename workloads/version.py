"""The workloads version: which `workloads/` code a registration, an image and a launch refer to.

One function hashes the tree (paths and bytes of every file under `workloads/`, sorted, caches
and bytecode excluded; 16 hex digits). The stack calls it on the checkout (`images.build: true`)
and an image build calls it on the code it has just copied in, writing the result beside the
package (`WORKLOADS_VERSION`), so an image says which code it runs. The registration Job compares
that stamp with the version the stack asks it to register and refuses a mismatch: with
`images.build: false` the stack registers the pinned release image's stamp (images/release.json)
and a local edit of workloads/ can no longer be registered under a version whose code the pods
do not run.

    python -m workloads.version --root /opt/naomi --stamp /opt/naomi/WORKLOADS_VERSION
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

STAMP_FILE = "WORKLOADS_VERSION"


class VersionMismatch(RuntimeError):
    """The code in this image is not the code the stack registers."""


def tree_version(root: Path) -> str:
    """sha256 over `root/workloads` (relative paths and bytes, sorted; no caches), 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted((root / "workloads").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stamped_version(package_root: Path | None = None) -> str | None:
    """The version stamped beside the installed `workloads` package (None: not an image build)."""
    root = package_root if package_root is not None else Path(__file__).resolve().parent.parent
    stamp = root / STAMP_FILE
    return stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None


def check_registrable(expected: str, image: str, package_root: Path | None = None) -> None:
    """Refuse to register `expected` from an image whose stamped code is another version."""
    baked = stamped_version(package_root)
    if baked == expected:
        return
    found = f"workloads version {baked}" if baked else "no workloads version stamp (not built by images/)"
    raise VersionMismatch(
        f"refusing to register workloads version {expected}: the image {image} carries {found}. "
        "With naomi:images.build false the stack registers the release image's version "
        "(images/release.json); build the images (naomi:images.build true) to run local changes "
        "of workloads/, or update images/release.json to the release that is deployed."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the folder holding workloads/")
    parser.add_argument("--stamp", type=Path, help="write the version to this file")
    options = parser.parse_args(argv)
    version = tree_version(options.root)
    if options.stamp is not None:
        options.stamp.write_text(version + "\n", encoding="utf-8")
    print(version)


if __name__ == "__main__":
    main()
