"""Where the project and the shared reference material are (tests and benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """`$NAOMI_SHARED`, else `../shared` beside the project; None when absent."""
    configured = os.environ.get("NAOMI_SHARED")
    candidate = Path(configured) if configured else PROJECT_DIR.parent / "shared"
    return candidate if candidate.is_dir() else None
