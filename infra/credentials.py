"""Generated credentials that rotate: one generation number per component, carried everywhere.

A component's passwords are `pulumi_random` resources whose `keepers` hold the component's
generation (`naomi:credentials.rotation.<component>`). Raising it replaces them on the next `up`
(the provider plans a replacement when a non-null keeper changes: hashicorp/terraform-provider-random
`internal/planmodifiers/map/mapplanmodifiers.go` RequiresReplaceIfValuesNotNull, the provider
pulumi-random 4.21 bridges). Generation 1 sets no keepers, so stacks created before rotation
existed keep their passwords (a null-to-value change of `keepers` is a replacement too).

The same generation reaches what applies a credential and what reads it:
- reconciling Jobs carry it in their names (`job_suffix`): a Job is immutable and Kubernetes does
  not re-run a completed one, so a new credential needs a new Job;
- pods that read a credential at start (env from a Secret is resolved once, when the kubelet
  creates the container) carry it in a pod-template annotation (`annotation`), so the controller
  rolls them when it changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pulumi
import pulumi_random as random

ANNOTATION = "naomi.dev/credentials"


def password(
    name: str, *, generation: int, opts: pulumi.ResourceOptions, length: int = 32
) -> random.RandomPassword:
    """A generated password (letters and digits) of `generation` of its component."""
    if generation < 1:
        raise ValueError(f"credential generation must be >= 1 (got {generation})")
    return random.RandomPassword(
        name,
        length=length,
        special=False,
        keepers={"generation": str(generation)} if generation > 1 else None,
        opts=opts,
    )


def access_key(name: str, *, generation: int, opts: pulumi.ResourceOptions) -> random.RandomString:
    """A generated lower-case access key (S3 root user) of `generation` of its component."""
    if generation < 1:
        raise ValueError(f"credential generation must be >= 1 (got {generation})")
    return random.RandomString(
        name,
        length=16,
        special=False,
        upper=False,
        keepers={"generation": str(generation)} if generation > 1 else None,
        opts=opts,
    )


def annotation(generations: Mapping[str, int]) -> dict[str, str]:
    """The pod-template annotation for pods that read the credentials of these components."""
    return {ANNOTATION: ",".join(f"{component}-{n}" for component, n in sorted(generations.items()))}


def job_suffix(script: str, generations: Mapping[str, int], *extra: str) -> str:
    """8 hex digits naming a reconciling Job: its script, what it applies and the generations."""
    digest = hashlib.sha256(script.encode())
    for part in (*extra, annotation(generations)[ANNOTATION]):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:8]
