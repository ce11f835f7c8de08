"""Run the real stack program under Pulumi's mock runtime and record every resource.

This owns the offline evaluation: the stack file's config is loaded as the Pulumi CLI reads it
(duplicate keys refused; secure values become `<secret:naomi:key>` placeholders, and so do the
secrets the config needs that the file does not hold yet), `stacks/__main__.py` runs in-process inside a fresh
`contextvars` context (so several stacks can be evaluated in one process), and a recording
monitor captures type, name, parent, provider, dependencies and inputs of every
registration. Generated values (passwords, keys, certificates, command output) are
deterministic placeholders, so the same stack always evaluates to the same records.
"""

from __future__ import annotations

import contextvars
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT = "naomi"
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
URN_PREFIX_PARTS = 4  # urn:pulumi:<stack>::<project>::<type chain>::<name>

# Outputs a provider computes and the program reads back. Everything else a mock returns
# is the resource's own inputs.
_GENERATED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomString:RandomString": ("result",),
    "random:index/randomId:RandomId": ("hex", "b64Url", "b64Std"),
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "publicKeyPem", "publicKeyOpenssh"),
    "tls:index/selfSignedCert:SelfSignedCert": ("certPem",),
    "tls:index/locallySignedCert:LocallySignedCert": ("certPem",),
    "tls:index/certRequest:CertRequest": ("certRequestPem",),
    "command:remote:Command": ("stdout", "stderr"),
    "command:local:Command": ("stdout", "stderr"),
}
_CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
_SECRET_OUTPUTS = {"result", "bcryptHash", "privateKeyPem", "hex", "b64Url", "b64Std"}


class RenderError(RuntimeError):
    """The stack could not be evaluated into a valid render (one line, names the cause)."""


@dataclass(frozen=True)
class Record:
    """One resource registration as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    custom: bool

    @property
    def id(self) -> str:
        """The URN without stack and project: `<parent types>$<type>::<name>`."""
        return self.urn.split("::", 2)[2]


@dataclass
class Evaluation:
    stack: str
    records: list[Record]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    config: dict[str, str] = field(default_factory=dict)
    # What components register as their outputs, by URN (e.g. the declared network flows).
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def outputs_of(self, component_type: str) -> list[dict[str, Any]]:
        """The registered outputs of every component of `component_type`, in URN order."""
        types = {record.urn: record.type for record in self.records}
        return [
            outputs
            for urn, outputs in sorted(self.component_outputs.items())
            if types.get(urn) == component_type
        ]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(
        self, preview: bool, stack_reference_outputs: frozenset[str] = frozenset({"kubeconfig"})
    ) -> None:
        self.preview = preview
        self.stack_reference_outputs = stack_reference_outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            # Another stack's outputs are unknown offline: every name a program may read is a
            # secret placeholder naming the stack and the output.
            stack_name = str(state.get("name") or args.resource_id or args.name)
            names = sorted(self.stack_reference_outputs)
            state["outputs"] = {n: f"<secret:stack:{stack_name}:{n}>" for n in names}
            state["secretOutputNames"] = names
            return stack_name, state
        if args.typ == "docker-build:index:Image":
            # The digest exists only after a push: the render shows the content-hashed tag and
            # a placeholder digest, so a code change is visible as a new tag.
            state["digest"] = f"sha256:<generated:{args.name}:digest>"
            state["ref"] = f"{state['tags'][0]}@{state['digest']}"
            return f"{args.name}-id", state
        if args.typ == _CRD_TYPE:
            # Nothing reads a CRD's outputs back, and echoing its schema (the charts' CRDs are
            # megabytes) makes the SDK deserialize it again, a second per stack; the SDK falls
            # back to an input for every key the state lacks, so each key is there, small.
            spec = state.get("spec") or {}
            return f"{args.name}-id", {
                **{key: state[key] for key in ("apiVersion", "kind") if key in state},
                "metadata": {"name": (state.get("metadata") or {}).get("name")},
                "spec": {key: spec[key] for key in ("group", "names", "scope") if key in spec},
            }
        generated = _GENERATED_OUTPUTS.get(args.typ, ())
        if not (self.preview and args.typ.startswith("command:")):
            for output in generated:
                kind = "secret" if output in _SECRET_OUTPUTS else "generated"
                state[output] = f"<{kind}:{args.name}:{output}>"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        """The program makes no provider calls; any that appear return nothing."""
        return {}, None


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.records: list[Record] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResourceOutputs(self, request: Any) -> Any:
        outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        self.component_outputs[request.urn] = _plain(outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
            self.records.append(
                Record(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider.split("::")[-2] if request.provider else "",
                    dependencies=tuple(sorted(set(request.dependencies))),
                    inputs=_plain(inputs),
                    custom=bool(request.custom),
                )
            )
        return response

    def ReadResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:StackReference":
            raise RenderError(
                f"reading existing resource {request.type} {request.name} is not supported offline"
            )
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self.records.append(
            Record(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                provider="",
                dependencies=tuple(sorted(set(request.dependencies))),
                inputs={"name": request.id},
                custom=True,
            )
        )
        return response


def _plain(value: Any) -> Any:
    """Unwrap secret envelopes, mark unknowns, turn whole floats into ints."""
    if isinstance(value, dict):
        if value.get(SECRET_SIGNATURE) == "1b47061264138c4ac30d75fd1eb44270":
            inner = _plain(value.get("value"))
            # A secret object keeps its shape (its secret leaves are placeholders: every
            # secret source in a render is one); a secret scalar must be placeholder-made.
            keep = isinstance(inner, (dict, list)) or inner == "<unknown>" or _is_placeholder_only(inner)
            return inner if keep else "<secret>"
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == UNKNOWN or isinstance(value, Unknown):
        return "<unknown>"
    return value


def _is_placeholder_only(value: Any) -> bool:
    """A secret may be shown only if it is made of placeholders, never real material."""
    if isinstance(value, str):
        return "<secret:" in value
    if isinstance(value, dict):
        return all(_is_placeholder_only(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_placeholder_only(v) for v in value)
    return False


# --- stack files ------------------------------------------------------------------------------


class _StackFileLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; the Pulumi CLI refuses the file.

    Pulumi reads stack files with gopkg.in/yaml.v3 (sdk/go/common/encoding/marshal.go at
    v3.187.0), which rejects a mapping holding two keys of the same kind and text, at any depth,
    with "line N: mapping key "k" already defined at line M" (decode.go at v3.0.1, d.mapping).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[type[yaml.Node], str], int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            identity = (type(key_node), str(key_node.value))
            if isinstance(key_node, yaml.ScalarNode) and identity in seen:
                raise DuplicateKeyError(
                    f"line {line}: mapping key {json.dumps(key_node.value)} already defined at line {seen[identity]}"
                )
            seen[identity] = line
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    """Two equal keys in one mapping of a stack file."""


def read_stack_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """What a stack file holds, as Pulumi hands it to a program, plus its secret keys.

    Top-level scalars become strings, objects and lists become JSON text (as the Pulumi
    engine does), and every `secure:` value becomes the placeholder `<secret:<key>>`.
    """
    if not path.is_file():
        raise RenderError(f"stack file not found: {path}")
    try:
        document = yaml.load(path.read_text(), Loader=_StackFileLoader) or {}  # a SafeLoader
    except DuplicateKeyError as error:
        raise RenderError(f"{path.name}: {error} (the Pulumi CLI refuses duplicate keys)") from None
    except yaml.YAMLError as error:
        raise RenderError(f"{path.name}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise RenderError(f"{path.name}: expected a mapping with a 'config:' key")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise RenderError(f"{path.name}: 'config' must be a mapping")
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, raw in config.items():
        key = str(key)
        if ":" not in key:
            key = f"{PROJECT}:{key}"
        contains_secret, value = _replace_secure(raw, key)
        if contains_secret:
            secret_keys.append(key)
        if isinstance(value, str):
            values[key] = value
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            values[key] = str(value)
        else:
            values[key] = json.dumps(value, sort_keys=True)
    return values, sorted(secret_keys)


def _replace_secure(value: Any, key: str) -> tuple[bool, Any]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return True, f"<secret:{key}>"
        found = False
        result = {}
        for k, v in value.items():
            inner_found, result[k] = _replace_secure(v, f"{key}.{k}")
            found = found or inner_found
        return found, result
    if isinstance(value, list):
        found = False
        items = []
        for index, v in enumerate(value):
            inner_found, item = _replace_secure(v, f"{key}[{index}]")
            found = found or inner_found
            items.append(item)
        return found, items
    return False, value


# --- evaluation -------------------------------------------------------------------------------


def evaluate(
    program: Callable[[], None],
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
    *,
    preview: bool = False,
    registered: list[Record] | None = None,
) -> Evaluation:
    """Run `program` as the Pulumi program of `stack` under recording mocks.

    `registered`, when given, receives every registration even if the program fails (tests
    use it to prove that a config error registers nothing).
    """

    def run() -> Evaluation:
        pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
        pulumi.runtime.set_all_config(dict(config), list(secret_keys))
        mocks = _Mocks(preview, _stack_reference_outputs(config))
        monitor = _RecordingMonitor(mocks)
        if registered is not None:
            monitor.records = registered
        pulumi_mocks.set_mocks(mocks, PROJECT, stack, preview=preview, monitor=monitor)
        _sync_await(run_pulumi_func(program))
        root = pulumi_settings.get_root_resource()
        outputs: dict[str, Any] = {}
        secrets: set[str] = set()
        for name, value in sorted(getattr(root, "outputs", {}).items()):
            output = pulumi.Output.from_input(value)
            outputs[name] = _plain(_sync_await(output.future(with_unknowns=True)))
            if _sync_await(output.is_secret()):
                secrets.add(name)
        return Evaluation(
            stack, monitor.records, outputs, frozenset(secrets), dict(config), dict(monitor.component_outputs)
        )

    return contextvars.copy_context().run(run)


def _stack_reference_outputs(config: Mapping[str, str]) -> frozenset[str]:
    """The output a `cluster.mode: stack` config reads from the other stack (default kubeconfig)."""
    try:
        cluster = json.loads(config.get(f"{PROJECT}:cluster", "{}"))
        output = str(((cluster.get("stack") or {}).get("output")) or "kubeconfig")
    except (ValueError, AttributeError):
        output = "kubeconfig"
    return frozenset({"kubeconfig", output})


def stack_program(project_dir: Path) -> Callable[[], None]:
    """The stack program exactly as `pulumi up` runs it: `stacks/__main__.py`."""
    main = project_dir / "stacks" / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    return program


def stack_config(project_dir: Path, stack: str) -> tuple[dict[str, str], list[str], list[str]]:
    """The config a stack's program gets once its secrets are set, offline: the stack file's
    values and secret keys, plus a `<secret:naomi:key>` placeholder for each secret the config
    needs that the file does not hold yet (the example stacks hold none: `pulumi config set
    --secret` adds them). Returns the config, its secret keys and the keys given stand-ins."""
    return _with_secrets(*read_stack_file(project_dir / "stacks" / f"Pulumi.{stack}.yaml"))


def load_stack_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """`read_stack_file`, with placeholders for the secrets not set yet (as `stack_config`)."""
    config, secret_keys, _ = _with_secrets(*read_stack_file(path))
    return config, secret_keys


def _with_secrets(
    config: dict[str, str], secret_keys: list[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    from stacks.config import secrets_to_set

    absent = secrets_to_set(config, set(secret_keys))
    for key in absent:
        config[key] = f"<secret:{key}>"
    return config, sorted({*secret_keys, *absent}), absent


def evaluate_stack(project_dir: Path, stack: str, *, preview: bool = False) -> Evaluation:
    config, secret_keys, _ = stack_config(project_dir, stack)
    return evaluate(stack_program(project_dir), stack, config, secret_keys, preview=preview)
