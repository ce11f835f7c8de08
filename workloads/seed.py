"""Upload the embedded seed datasets to the object store if they are missing (the stack's seed Job).

QoE: synthetic VIAVI-schema cell reports as Parquet; MNIST: scikit-learn's bundled digits as npz.
Idempotent: an existing object is left alone (a user's own data under the same key wins).

    NAOMI_STORE=s3://datasets AWS_ENDPOINT_URL=... python -m workloads.seed --pipeline=qoe --pipeline=mnist
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from workloads import catalogue
from workloads.common.storage import Store, store_from_environment

QOE_KEY = catalogue.pipeline("qoe").dataset


def seed(store: Store, pipelines: Sequence[str]) -> dict[str, bool]:
    """{key: written} for each pipeline's seed dataset."""
    written = {}
    if "qoe" in pipelines:
        from workloads.qoe.data import ingest, synthetic_reports

        fresh = not store.exists(QOE_KEY)
        if fresh:
            ingest(synthetic_reports(), store, QOE_KEY)
        written[QOE_KEY] = fresh
    if "mnist" in pipelines:
        from workloads.mnist.data import SEED_KEY
        from workloads.mnist.data import seed as seed_digits

        written[SEED_KEY] = seed_digits(store)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", action="append", choices=list(catalogue.PIPELINE_NAMES), required=True)
    options = parser.parse_args(argv)
    for key, fresh in seed(store_from_environment(Path(".naomi/state/objects")), options.pipeline).items():
        print(f"{key}: {'uploaded' if fresh else 'already present, left alone'}")


if __name__ == "__main__":
    main()
