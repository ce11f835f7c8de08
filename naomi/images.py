"""Evidence that every image that will run exists where it runs and has what its command uses.

Offline: `image_uses` walks every container and init container of every pod of the cluster model
(ours, the charts', the operators'), with the architectures the pod may land on (its
`kubernetes.io/arch` selector and required node affinity against the stack's inventory) and the
shells its command, args, exec probes and hooks run; `evidence_problems` judges them against the
evidence table in `infra/versions.py` (IMAGE_EVIDENCE, naomi's own builds): an image without an
entry, an architecture the evidence does not show, a shell the image is not recorded with.

Online (`naomi images check`, for users with network access): `RegistryClient` asks each
registry's v2 API for the reference's manifest (anonymous Bearer token flow as Docker Hub, ghcr.io,
quay.io and registry.k8s.io answer it: distribution/distribution docs/spec/auth/token.md), reads
the platforms of an image index / manifest list, or of a single manifest's config blob, and
`check_online` compares them with the evidence table.

Mirroring (`naomi images list`, docs/runbooks/offline-install.md): `mirror_list` turns the same
uses into one line per image to copy into a registry mirror before an air-gapped install, with
its upstream source, every architecture its pods may land on, and the reference the cluster
pulls (the mirror's copy when `naomi:images.mirror` is set, infra.images.ImageMirror).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from infra.images import ImageMirror
from infra.versions import ImageEvidence, canonical_platform, image_evidence, normalise_image_ref
from naomi.cluster.model import ClusterModel
from naomi.cluster.placement import InventoryNode, schedulable_on

ARCH_LABEL = "kubernetes.io/arch"
# The architectures naomi's clusters are made of (stacks/config.py: cluster.nodes[].arch).
CLUSTER_ARCHITECTURES = ("amd64", "arm64")
SHELLS = ("sh", "bash", "ash", "dash", "ksh", "zsh")


@dataclass(frozen=True)
class ImageUse:
    """One container of one pod: the image, where the pod may land, the shells it runs."""

    image: str
    owner: str  # e.g. "CronJob naomi-platform/postgres-backup"
    origin: str
    container: str
    architectures: tuple[str, ...]
    shells: tuple[tuple[str, str], ...]  # (where, shell), e.g. ("command", "sh")

    def describe(self) -> str:
        return f"{self.owner} container {self.container}"


def landing_architectures(spec: Mapping[str, Any], nodes: Sequence[InventoryNode] | None) -> tuple[str, ...]:
    """The architectures of the nodes a pod may be scheduled on. With an inventory, its nodes that
    satisfy the pod's nodeSelector and required node affinity (the scheduler's NodeAffinity filter,
    `naomi.cluster.placement.schedulable_on`); without one (an existing cluster), every cluster
    architecture its `kubernetes.io/arch` constraints allow."""
    if nodes is not None:
        return tuple(sorted({node.labels[ARCH_LABEL] for node in nodes if schedulable_on(spec, node)}))
    return tuple(
        arch for arch in CLUSTER_ARCHITECTURES if schedulable_on(_arch_constraints(spec), _any_node(arch))
    )


def _arch_constraints(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The pod's scheduling constraints on `kubernetes.io/arch` alone."""
    selector = {k: v for k, v in (spec.get("nodeSelector") or {}).items() if k == ARCH_LABEL}
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    terms = [
        {"matchExpressions": [e for e in term.get("matchExpressions") or [] if e.get("key") == ARCH_LABEL]}
        for term in required
    ]
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    }
    return {"nodeSelector": selector, "affinity": affinity if terms else {}}


def _any_node(arch: str) -> InventoryNode:
    return InventoryNode(f"any {arch} node", {ARCH_LABEL: arch})


def _shell_of(argv: Sequence[Any]) -> str | None:
    """The shell an argv starts (`/bin/sh -c ...`, `bash`, `/usr/bin/env bash ...`), or None."""
    if not argv:
        return None
    program = PurePosixPath(str(argv[0])).name
    if program == "env":
        rest = [str(a) for a in argv[1:] if not str(a).startswith("-") and "=" not in str(a)]
        program = PurePosixPath(rest[0]).name if rest else ""
    return program if program in SHELLS else None


def shell_uses(container: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Where a container runs a shell: its command, or its args when it has no command (an
    entrypoint that execs its arguments, as docker-entrypoint.sh does), exec probes and hooks."""
    found = []
    command = container.get("command") or []
    shell = _shell_of(command) if command else _shell_of(container.get("args") or [])
    if shell:
        found.append(("command" if command else "args", shell))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        shell = _shell_of(((container.get(probe) or {}).get("exec") or {}).get("command") or [])
        if shell:
            found.append((probe, shell))
    for hook in ("postStart", "preStop"):
        handler = ((container.get("lifecycle") or {}).get(hook) or {}).get("exec") or {}
        shell = _shell_of(handler.get("command") or [])
        if shell:
            found.append((hook, shell))
    return tuple(found)


def image_uses(model: ClusterModel, nodes: Sequence[InventoryNode] | None) -> list[ImageUse]:
    uses = []
    for pod in model.pods:
        architectures = landing_architectures(pod.spec, nodes)
        for container in pod.containers:
            uses.append(
                ImageUse(
                    image=str(container.get("image", "")),
                    owner=pod.owner,
                    origin=pod.origin,
                    container=str(container.get("name", "")),
                    architectures=architectures,
                    shells=shell_uses(container),
                )
            )
    return uses


def missing_evidence(uses: Iterable[ImageUse]) -> list[str]:
    """Every use whose image has no entry in the evidence table."""
    return [
        f"{use.describe()}: image {use.image} has no evidence entry (infra/versions.py IMAGE_EVIDENCE)"
        for use in uses
        if image_evidence(use.image) is None
    ]


def architecture_problems(uses: Iterable[ImageUse]) -> list[str]:
    """Every architecture a use's pod may land on that its image's evidence does not show."""
    problems = []
    for use in uses:
        evidence = image_evidence(use.image)
        if evidence is None:
            continue  # missing_evidence names it
        for arch in use.architectures:
            if not evidence.shows(f"linux/{arch}"):
                problems.append(
                    f"{use.describe()}: may land on {arch} nodes but the evidence for {use.image} "
                    f"({evidence.strength}) shows {_platform_list(evidence)}"
                )
    return problems


def shell_problems(uses: Iterable[ImageUse]) -> list[str]:
    """Every shell a container runs that its image is not recorded with."""
    problems = []
    for use in uses:
        evidence = image_evidence(use.image)
        if evidence is None:
            continue
        for where, shell in use.shells:
            if evidence.shells is None:
                problems.append(
                    f"{use.describe()}: runs {shell} ({where}) but image {use.image} has no recorded shells"
                )
            elif shell not in evidence.shells:
                has = ", ".join(evidence.shells) or "no shell"
                problems.append(f"{use.describe()}: runs {shell} ({where}) but image {use.image} has {has}")
    return problems


def evidence_problems(uses: Sequence[ImageUse]) -> list[str]:
    """An image without evidence, an architecture its evidence does not show, a shell it lacks."""
    return [*missing_evidence(uses), *architecture_problems(uses), *shell_problems(uses)]


def _platform_list(evidence: ImageEvidence) -> str:
    if evidence.strength == "none" or not evidence.platforms:
        return "no platform"
    return ", ".join(evidence.platforms)


def needed_architectures(uses: Iterable[ImageUse]) -> dict[str, tuple[str, ...]]:
    """Each image once, with every architecture any of its pods may land on."""
    needed: dict[str, set[str]] = {}
    for use in uses:
        needed.setdefault(use.image, set()).update(use.architectures)
    return {image: tuple(sorted(arches)) for image, arches in sorted(needed.items())}


# --- mirroring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorEntry:
    """One image to copy into the mirror: from where, for which architectures, pulled as what."""

    source: str  # the upstream reference (what to copy)
    architectures: tuple[str, ...]  # every architecture any of its pods may land on
    pulled_as: str  # the reference in the pods (the mirror's copy when a mirror is set)
    owners: tuple[str, ...]  # e.g. "Deployment naomi-platform/mlflow"


def mirror_of(config: Mapping[str, str]) -> ImageMirror | None:
    """The stack's `naomi:images.mirror` (config as `evaluate_stack` reads it), or None."""
    images = json.loads(config.get("naomi:images") or "{}")
    mirror = images.get("mirror") if isinstance(images, dict) else None
    return ImageMirror(str(mirror)) if mirror else None


def mirror_list(uses: Iterable[ImageUse], mirror: ImageMirror | None) -> list[MirrorEntry]:
    """Each image the uses pull, once, sorted by source."""
    uses = list(uses)
    owners: dict[str, set[str]] = {}
    for use in uses:
        owners.setdefault(use.image, set()).add(use.owner)
    entries = [
        MirrorEntry(
            source=mirror.source(image) if mirror is not None else image,
            architectures=arches,
            pulled_as=image,
            owners=tuple(sorted(owners[image])),
        )
        for image, arches in needed_architectures(uses).items()
    ]
    return sorted(entries, key=lambda entry: (entry.source, entry.pulled_as))


def mirror_table(entries: Sequence[MirrorEntry]) -> str:
    """Tab-separated: source, architectures (comma-separated, `-` when no node fits), pulled as."""
    lines = ["# source\tarchitectures\tpulled as"]
    lines += [f"{e.source}\t{','.join(e.architectures) or '-'}\t{e.pulled_as}" for e in entries]
    return "\n".join(lines) + "\n"


# --- the registries ------------------------------------------------------------------------------

# Docker Hub's registry API lives on registry-1.docker.io (distribution/reference: docker.io is the
# name, not the API host).
REGISTRY_HOSTS = {"docker.io": "https://registry-1.docker.io"}
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    *INDEX_TYPES,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# Platforms naomi's nodes need; others in an index are listed but not compared.
RELEVANT_PLATFORMS = tuple(f"linux/{arch}" for arch in CLUSTER_ARCHITECTURES)


class RegistryError(Exception):
    """The registry could not be asked or answered something this client does not read."""


class ImageNotFound(RegistryError):
    """The registry has no manifest for the reference (404 MANIFEST_UNKNOWN or NAME_UNKNOWN)."""


@dataclass(frozen=True)
class ImageLocation:
    domain: str  # as in the reference: docker.io, ghcr.io, ...
    repository: str  # library/postgres
    reference: str  # a tag, or a digest when the reference has one (what the runtime pulls)

    @classmethod
    def of(cls, ref: str) -> ImageLocation:
        domain, path = normalise_image_ref(ref).split("/", 1)
        name, _, digest = path.partition("@")
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        repository, tag = (name[:colon], name[colon + 1 :]) if colon > last_slash else (name, "latest")
        return cls(domain, repository, digest or tag)


_CHALLENGE_PARAMETER = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """Reads the platforms a reference is published for from its registry's v2 API.

    `endpoints` maps a registry name (as references spell it: docker.io, ghcr.io, ...) to the base
    URL to ask instead, for a mirror or a test registry."""

    def __init__(self, endpoints: Mapping[str, str] | None = None, timeout: float = 20.0) -> None:
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout
        self._tokens: dict[tuple[str, str], str] = {}  # (host, repository) -> token

    def base_url(self, domain: str) -> str:
        return self.endpoints.get(domain) or REGISTRY_HOSTS.get(domain) or f"https://{domain}"

    def platforms(self, ref: str) -> tuple[str, ...]:
        """`os/architecture[/variant]` of every image the reference names (attestations left out)."""
        location = ImageLocation.of(ref)
        base = self.base_url(location.domain)
        url = f"{base}/v2/{location.repository}/manifests/{location.reference}"
        body, content_type = self._get(url, location, ", ".join(MANIFEST_TYPES))
        manifest = _json(body, url)
        media_type = str(manifest.get("mediaType") or content_type.split(";", 1)[0].strip())
        if media_type in INDEX_TYPES or "manifests" in manifest:
            return tuple(
                platform
                for entry in manifest.get("manifests") or []
                if (platform := _platform(entry.get("platform") or {})) is not None
            )
        digest = str((manifest.get("config") or {}).get("digest") or "")
        if not digest:
            raise RegistryError(f"{url}: a manifest of type {media_type or 'unknown'} without a config")
        config = _json(self._get(f"{base}/v2/{location.repository}/blobs/{digest}", location, "*/*")[0], url)
        platform = _platform(config)
        return (platform,) if platform else ()

    def _get(self, url: str, location: ImageLocation, accept: str) -> tuple[bytes, str]:
        """GET with the registry's token, fetched on its 401 challenge. The host that challenges may
        be another than the one asked (registry.k8s.io redirects to its backends), so tokens are
        kept per host and the request is retried where the redirect led."""
        target = url
        for _ in range(3):
            token = self._tokens.get(_host_key(target, location))
            try:
                return self._request(target, accept, token)
            except urllib.error.HTTPError as error:
                if error.code != 401:
                    raise self._error(error, url) from None
                answered = str(getattr(error, "url", None) or target)
                if answered == target and token is not None:
                    raise RegistryError(f"{url}: 401 {error.reason} with the registry's own token") from None
                key = _host_key(answered, location)
                if key not in self._tokens:
                    challenge = str(error.headers.get("WWW-Authenticate") or "")
                    self._tokens[key] = self._token(challenge, location, url)
                target = answered
        raise RegistryError(f"{url}: still 401 after authenticating")

    def _request(self, url: str, accept: str, token: str | None) -> tuple[bytes, str]:
        request = urllib.request.Request(url, headers={"Accept": accept})
        if token:
            # Unredirected: a blob's redirect to a CDN or object store must not carry the token.
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), str(response.headers.get("Content-Type") or "")
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"{url}: {reason}") from None

    def _token(self, challenge: str, location: ImageLocation, url: str) -> str:
        scheme, _, parameters = challenge.partition(" ")
        values = dict(_CHALLENGE_PARAMETER.findall(parameters))
        if scheme.lower() != "bearer" or "realm" not in values:
            raise RegistryError(f"{url}: 401 without a Bearer challenge ({challenge or 'none'})")
        query = {"scope": values.get("scope") or f"repository:{location.repository}:pull"}
        if values.get("service"):
            query["service"] = values["service"]
        token_url = f"{values['realm']}?{urllib.parse.urlencode(query)}"
        try:
            body, _ = self._request(token_url, "application/json", None)
        except urllib.error.HTTPError as error:
            raise RegistryError(
                f"{token_url}: anonymous token refused: {error.code} {error.reason}"
            ) from None
        answer = _json(body, token_url)
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise RegistryError(f"{token_url}: no token in the answer")
        return str(token)

    @staticmethod
    def _error(error: urllib.error.HTTPError, url: str) -> RegistryError:
        if error.code == 404:
            return ImageNotFound(f"{url}: not found")
        return RegistryError(f"{url}: {error.code} {error.reason}")


def _host_key(url: str, location: ImageLocation) -> tuple[str, str]:
    return (urllib.parse.urlsplit(url).netloc, location.repository)


def _json(body: bytes, url: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise RegistryError(f"{url}: the answer is not JSON") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{url}: the answer is not a JSON object")
    return value


def _platform(description: Mapping[str, Any]) -> str | None:
    """`os/architecture[/variant]`; None for buildx's attestation entries (unknown/unknown)."""
    system, architecture = description.get("os"), description.get("architecture")
    if not system or not architecture or "unknown" in (system, architecture):
        return None
    variant = description.get("variant")
    return f"{system}/{architecture}" + (f"/{variant}" if variant else "")


@dataclass(frozen=True)
class OnlineResult:
    image: str
    status: str  # ok, mismatch, missing, error, skipped
    published: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status in ("mismatch", "missing")


def compare(
    evidence: ImageEvidence | None, published: Sequence[str], needed: Sequence[str] = ()
) -> list[str]:
    """Where the registry and the evidence table disagree on the platforms naomi's nodes need, and
    any architecture the image's pods may land on that the registry does not have."""
    real = {canonical_platform(p) for p in published}
    claimed = (
        {canonical_platform(p) for p in evidence.platforms}
        if evidence is not None and evidence.strength != "none"
        else set()
    )
    problems = []
    if evidence is None:
        problems.append("no evidence entry (infra/versions.py IMAGE_EVIDENCE)")
    for platform in RELEVANT_PLATFORMS:
        if platform in claimed and platform not in real:
            problems.append(f"the evidence shows {platform}, the registry has none")
        if platform in real and platform not in claimed and evidence is not None:
            problems.append(f"the registry has {platform}, the evidence does not show it")
    for arch in needed:
        if f"linux/{arch}" not in real:
            problems.append(f"pods may land on {arch} nodes, the registry has no linux/{arch}")
    return problems


def check_online(needed: Mapping[str, Sequence[str]], client: RegistryClient) -> list[OnlineResult]:
    """Each image against its registry: `needed` maps image -> architectures its pods may land on."""
    results = []
    for image, arches in needed.items():
        if "<" in image:
            # A digest the render does not know yet (`<generated:...>`): built at `pulumi up`.
            results.append(
                OnlineResult(image, "skipped", problems=("built and pushed by the stack at deploy time",))
            )
            continue
        try:
            published = client.platforms(image)
        except ImageNotFound as error:
            results.append(OnlineResult(image, "missing", problems=(str(error),)))
            continue
        except RegistryError as error:
            results.append(OnlineResult(image, "error", problems=(str(error),)))
            continue
        problems = compare(image_evidence(image), published, arches)
        results.append(OnlineResult(image, "mismatch" if problems else "ok", published, tuple(problems)))
    return results


def online_report(results: Sequence[OnlineResult]) -> list[str]:
    """The lines `naomi images check` prints: per image the registry's platforms, the evidence's,
    what disagrees; then a summary."""
    lines = []
    for result in results:
        evidence = image_evidence(result.image)
        lines.append(f"{result.image}: {result.status}")
        if result.status in ("ok", "mismatch"):
            lines.append(f"  registry: {', '.join(result.published) or 'no platform'}")
        if evidence is not None:
            lines.append(f"  evidence ({evidence.strength}): {_platform_list(evidence)}")
        lines += [f"  {problem}" for problem in result.problems]
    counts = {
        status: sum(1 for r in results if r.status == status)
        for status in ("ok", "mismatch", "missing", "error", "skipped")
    }
    summary = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    lines.append(f"{len(results)} images: {summary or 'none'}")
    return lines


def evidence_rows(images: Iterable[str]) -> list[tuple[str, str, str, str, str]]:
    """(image, platforms, shells, strength, source) per image, for the offline table."""
    rows = []
    for image in images:
        evidence = image_evidence(image)
        if evidence is None:
            rows.append((image, "-", "-", "missing", "-"))
            continue
        shells = "unknown" if evidence.shells is None else (", ".join(evidence.shells) or "none")
        rows.append((image, _platform_list(evidence), shells, evidence.strength, evidence.source))
    return rows
