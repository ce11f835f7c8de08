"""Benchmark: mutation score per security- and decision-critical module (issue 17, goal ≥ 90 %).

For each module in `TARGETS` (module path → the test files that exercise it, and the functions
mutated when not the whole module) this copies the working tree (the files git tracks plus
untracked ones it does not ignore, so tests not yet committed count; `--tests-from REV` swaps in
the tests/ of a git revision, for a baseline) into a scratch folder, writes a `setup.cfg` for
mutmut (PyPI, 3.8) mutating that one module with those tests, runs `mutmut run`, and reads every
mutant's verdict from mutmut's `mutants/<module>.meta`. One line per module: mutants; killed (a
test failed, or the mutant ran past mutmut's time limit, counted again under "(timeout)");
survived; no tests (no selected test reaches the mutated function); other (suspicious, segfault);
equivalent survivors; the score killed / mutants, and killed / (mutants - equivalent). The
equivalents are survivors read and judged to behave exactly as the original, each listed in
`EQUIVALENT` with the reason; one that is no longer a survivor is reported, so the list cannot go
stale silently.

Not in CI's time budget: the full job takes tens of minutes on 2 cores. Run it by hand, or as the
manual workflow `.github/workflows/mutation.yml`:

    .venv/bin/python benchmarks/mutation.py                       # every module
    .venv/bin/python benchmarks/mutation.py --module infra/pods.py
    .venv/bin/python benchmarks/mutation.py --smoke               # one small module, < 30 s
    .venv/bin/python benchmarks/mutation.py --module X --survivors   # print each survivor's diff
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """The test files that exercise a module and, when not the whole module, the functions mutated
    (`name` or `Class.method`): the decision-critical part of a module that also holds I/O glue."""

    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    deselect: tuple[str, ...] = ()  # slow tests (node ids) whose ground the boundary tests cover
    # False: mutmut forks workers from a server that never ran a test (slower: ~2 s per mutant).
    # Needed where the tests leave threads behind (the Pulumi program's gRPC, the test client's
    # event loop): a child forked from such a process can hang, a false "timeout" kill.
    fork_safe: bool = True


# module → its tests (mutmut runs, per mutant, the selected tests that reach the mutated function).
TARGETS: dict[str, Target] = {
    "workloads/triggers/receiver.py": Target(
        ("tests/test_triggers.py", "tests/test_receiver_boundaries.py"),
        # Runs qoe_train on Ray (it skips outside `unshare -n` anyway): per mutant, too slow.
        deselect=("tests/test_triggers.py::test_one_firing_alert_starts_exactly_one_retraining",),
    ),
    "workloads/common/serving.py": Target(
        ("tests/test_qoe_serving.py", "tests/test_serving_boundaries.py"),
        (
            "strict_json",
            "shown",
            "check_numbers",
            "check_tensor",
            "parse_tensor",
            "parse_feedback",
            "read_body",
            "feedback_key",
            "FeedbackIds.__init__",
            "FeedbackIds.issue",
            "FeedbackIds.read",
        ),
        fork_safe=False,
    ),
    "workloads/common/registry.py": Target(
        ("tests/test_qoe_registry.py", "tests/test_registry_boundaries.py"),
        ("absent", "champion_metric", "apply_decision"),
    ),
    "workloads/qoe/registry.py": Target(
        ("tests/test_qoe_registry.py", "tests/test_registry_boundaries.py"), ("decide",)
    ),
    "workloads/mnist/registry.py": Target(
        ("tests/test_mnist.py", "tests/test_registry_boundaries.py"), ("decide",)
    ),
    "stacks/config.py": Target(
        ("tests/test_config.py", "tests/test_config_boundaries.py"),
        deselect=(
            # 1,000 generated configs (12 s), and a CLI subprocess (6 s): per mutant, too slow.
            "tests/test_config.py::test_generated_malformed_configs_are_rejected_naming_the_key",
            "tests/test_config.py::test_cli_reports_a_broken_stack_file_on_one_line_and_writes_nothing",
        ),
        fork_safe=False,
    ),
    # The cluster model's proofs (tests/test_cluster_model.py) render a whole stack per run (10 s):
    # per mutant, too slow; the boundary tests cover network_policies manifest by manifest.
    "infra/network.py": Target(
        ("tests/test_network_boundaries.py",),
        ("_selector", "_peers", "_contains", "_ports", "network_policies", "_manifest"),
    ),
    "infra/pods.py": Target(("tests/test_pods_boundaries.py",)),
    "infra/gateway.py": Target(
        ("tests/test_gateway_boundaries.py",),  # test_gateway_traefik starts Traefik: too slow per mutant
        (
            "GatewayArgs.__post_init__",
            "GatewayArgs.base_url",
            "GatewayArgs.pods",
            "GatewayArgs.watched_namespaces",
            "GatewayArgs.url",
            "traefik_values",
            "_merge",
            "Gateway._route",
            "gateway_contract",
        ),
    ),
    "infra/mlflow.py": Target(
        ("tests/test_mlflow_boundaries.py",),  # test_mlflow_server starts MLflow: too slow per mutant
        (
            "server_args",
            "server_environment",
            "pod_host_patterns",
            "auth_ini",
            "UserSpec.password_env",
            "scoped_users",
            "users_plan",
            "MlflowArgs.__post_init__",
            "Mlflow.login",
            "Mlflow.pod_annotation",
            "Mlflow.client",
            "client_secret",
        ),
    ),
}


def mutant_prefix(module: str, function: str) -> str:
    """mutmut 3's mutant names: `<dotted module>.x_<function>__mutmut_<n>`, methods `xǁClassǁmethod`."""
    dotted = module.removesuffix(".py").replace("/", ".")
    return (
        f"{dotted}.x"
        + ("ǁ" + function.replace(".", "ǁ") if "." in function else "_" + function)
        + "__mutmut_"
    )


# The smoke target: the MNIST gate with only its boundary tests (no torch to import), so
# tests/test_benchmarks.py runs the whole pipeline (copy, mutmut, parse) in seconds.
SMOKE = "workloads/mnist/registry.py"
SMOKE_TARGET = Target(("tests/test_registry_boundaries.py",), ("decide",))

# module → {mutant name: why it behaves exactly as the original}.
_FASTAPI_DOCS = (
    "only the OpenAPI schema and the docs pages use the title, and with openapi_url=None FastAPI "
    "serves neither (fastapi 0.165.0 applications.py `setup`: `if self.openapi_url and self.docs_url`)"
)
EQUIVALENT: dict[str, dict[str, str]] = {
    "workloads/triggers/receiver.py": {
        **{f"workloads.triggers.receiver.x_create_app__mutmut_{n}": _FASTAPI_DOCS for n in (53, 54, 58, 59)},
        **{
            f"workloads.triggers.receiver.x_create_app__mutmut_{n}": "docs_url/redoc_url dropped: "
            + _FASTAPI_DOCS.split(", and ", 1)[1]
            for n in (55, 56)
        },
        "workloads.triggers.receiver.x_main__mutmut_51": 'encoding "UTF-8" is "utf-8" (codecs.lookup)',
        **{
            f"workloads.triggers.receiver.x_main__mutmut_{n}": "the locale's encoding instead of utf-8: the "
            "same under a UTF-8 locale (every environment the receiver runs in and the tests; CPython 3.11 "
            "reads the locale in C, so a test cannot switch it)"
            for n in (47, 49)
        },
    },
    "stacks/config.py": {
        "stacks.config.x__key_path__mutmut_13": "to_camel of a part without '_' is that part",
        "stacks.config.x__unwrap__mutmut_4": "getattr default None or () is the () default",
        **{
            f"stacks.config.x_json_schema__mutmut_{n}": "pydantic 2.14.3 model_json_schema defaults: "
            "mode='validation', and by_alias=None means the config's validate_by_alias (True here; "
            "pydantic/json_schema.py `use_alias = self._config.validate_by_alias if self._by_alias is None`)"
            for n in (2, 4, 5)
        },
        **{
            f"stacks.config.x_json_schema__mutmut_{n}": "StackConfig has no required field: its schema "
            "has no 'required' to pop (the pop guards a future required key)"
            for n in (16, 19, 20)
        },
        "stacks.config.x_secrets_to_set__mutmut_6": "one more round than the 6 secret keys can need: each "
        "round adds at least one key, and the loop returns by then",
        "stacks.config.x_secrets_to_set__mutmut_11": "a ConfigError with missing secrets has exactly one "
        "message (StackConfig's after-validator raises the first; pydantic runs it only when every field "
        "validated), so the `or` and the `and` agree",
        **{
            f"stacks.config.x_to_camel__mutmut_{n}": "field names are lower-case snake_case without a "
            "leading underscore (pydantic makes those private): rstrip('_') is redundant with split "
            "('for_' -> ['for', ''] -> 'for'), and no name has an 'X' or a leading '_' to strip"
            for n in (3, 4, 5)
        },
    },
    "infra/network.py": {
        f"infra.network.x_network_policies__mutmut_{n}": "the default policies' labels {} -> None: "
        "_selector gives every falsy label set the empty selector (every pod)"
        for n in (72, 91)
    },
    "infra/mlflow.py": {
        "infra.mlflow.x_pod_host_patterns__mutmut_3": "strict=None is falsy like strict=False "
        "(CPython 3.11 Lib/ipaddress.py IPv4Network: `if strict:`)",
    },
    "workloads/common/serving.py": {
        **{
            f"workloads.common.serving.x_shown__mutmut_{n}": "the 10**60 guard only decides whether str() is "
            "computed; every integer of 10**30 or more is shown as 'an integer of more than 30 digits' on "
            "either side of any threshold above 10**30"
            for n in (8, 10, 11)
        },
        **{
            f"workloads.common.serving.x_feedback_key__mutmut_{n}": "an unset NAOMI_FEEDBACK_KEY reads as "
            "None instead of '': both are falsy, a random key either way"
            for n in (3, 5)
        },
        "workloads.common.serving.x_feedback_key__mutmut_9": "secrets.token_bytes(None) is 32 bytes "
        "(CPython 3.11 Lib/secrets.py DEFAULT_ENTROPY = 32)",
        "workloads.common.serving.x_read_body__mutmut_8": 'a default of "XXXX" is not digits either: the '
        "declared-length check is skipped as for a missing header",
        "workloads.common.serving.x_strict_json__mutmut_8": "JSONDecodeError and UnicodeDecodeError always "
        "carry args (CPython 3.11 Lib/json/decoder.py JSONDecodeError.__init__; UnicodeDecodeError takes 5)",
        "workloads.common.serving.xǁFeedbackIdsǁissue__mutmut_12": "the nonce field is struct '6s': a 7th "
        "random byte is cut off",
        "workloads.common.serving.xǁFeedbackIdsǁread__mutmut_7": "len % 4 instead of -len % 4 padding: "
        "differs only for len % 4 == 3 (3 '=' for 1) and base64's non-strict decoding ignores excess "
        "padding (CPython 3.11 Modules/binascii.c a2b_base64); len % 4 == 1 is invalid either way",
    },
}

KILLED = {"killed", "timeout", "caught by type check"}


@dataclass(frozen=True)
class Score:
    module: str
    counts: Counter[str]
    equivalent: int
    stale_equivalents: tuple[str, ...]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def killed(self) -> int:
        return sum(n for status, n in self.counts.items() if status in KILLED)

    @property
    def other(self) -> int:
        return self.total - self.killed - self.counts["survived"] - self.counts["no tests"]

    def score(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 0.0

    def score_without_equivalents(self) -> float:
        judged = self.total - self.equivalent
        return 100.0 * self.killed / judged if judged else 0.0


def _tree_files() -> list[str]:
    """The working tree as git sees it: tracked files plus untracked ones not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (PROJECT_DIR / f).is_file()]


def _copy_tree(dest: Path) -> None:
    for name in _tree_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, target)
    (dest / ".venv").symlink_to((PROJECT_DIR / ".venv").resolve())


def _setup_cfg(
    module: str, tests: tuple[str, ...], deselect: tuple[str, ...], fork_safe: bool, top_level: list[str]
) -> str:
    # mutmut reads list values one per line; each pytest argument must be its own token.
    lines = ["[mutmut]", f"source_paths={module}", "also_copy="]
    lines += [f"    {name}" for name in top_level]
    lines += ["pytest_add_cli_args_test_selection="]
    lines += [f"    {t}" for t in tests]
    for node in deselect:
        lines += ["    --deselect", f"    {node}"]
    lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -q"]
    lines += [f"process_isolation={'fork' if fork_safe else 'forkserver'}"]
    return "\n".join(lines) + "\n"


def _statuses(meta: Path) -> dict[str, str]:
    from mutmut.stats import status_by_exit_code

    data = json.loads(meta.read_text())
    return {name: status_by_exit_code[code] for name, code in data["exit_code_by_key"].items()}


def _environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the mutated copy must be what the tests import
    home = scratch / "home"
    tmp = scratch / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(tmp))
    shared = (PROJECT_DIR.parent / "shared").resolve()
    if "NAOMI_SHARED" not in env and shared.is_dir():
        env["NAOMI_SHARED"] = str(shared)
    charts = shared / "reference" / "chart-archives"
    if "NAOMI_CHARTS" not in env and charts.is_dir():
        env["NAOMI_CHARTS"] = str(charts)
    return env


def _tests_from(tree: Path, rev: str) -> None:
    """Replace the copy's tests/ with those of git revision `rev` (the score before new tests)."""
    shutil.rmtree(tree / "tests")
    archive = subprocess.run(
        ["git", "archive", rev, "tests"], cwd=PROJECT_DIR, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)


def run_module(
    module: str, target: Target, children: int, survivors: bool, tests_from: str | None = None
) -> Score:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="naomi-mutation-") as scratch_name:
        scratch = Path(scratch_name)
        tree = scratch / "tree"
        _copy_tree(tree)
        if tests_from is not None:
            _tests_from(tree, tests_from)
        present = tuple(t for t in target.tests if (tree / t).is_file())
        if not present:  # mutmut would run the whole suite
            raise SystemExit(f"{module}: none of its test files exist: {', '.join(target.tests)}")
        prefixes = tuple(mutant_prefix(module, f) for f in target.functions)
        selection = [p + "*" for p in prefixes]
        top_level = sorted(p.name for p in tree.iterdir() if p.name not in {"tests", ".venv", ".git"})
        (tree / "setup.cfg").write_text(
            _setup_cfg(module, present, target.deselect, target.fork_safe, top_level)
        )
        mutmut = str(PROJECT_DIR / ".venv" / "bin" / "mutmut")
        env = _environment(scratch)
        run = subprocess.run(
            [mutmut, "run", "--max-children", str(children), *selection],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        meta = tree / "mutants" / (module + ".meta")
        # mutmut stops (exit 1) when no selected test reaches any mutant: every one is "no tests".
        untested = "could not find any test case for any mutant" in run.stdout
        if (run.returncode != 0 and not untested) or not meta.is_file():
            sys.stderr.write(run.stdout[-4000:] + run.stderr[-4000:])
            raise SystemExit(f"mutmut failed on {module} (exit {run.returncode})")
        statuses = {
            name: "no tests" if untested else status
            for name, status in _statuses(meta).items()
            if not prefixes or name.startswith(prefixes)
        }
        equivalent = EQUIVALENT.get(module, {})
        if survivors:
            for name, status in sorted(statuses.items()):
                if status == "survived" and name not in equivalent:
                    diff = subprocess.run(
                        [mutmut, "show", name], cwd=tree, env=env, capture_output=True, text=True
                    )
                    print(diff.stdout)
    stale = tuple(sorted(n for n in equivalent if statuses.get(n) != "survived"))
    return Score(
        module=module,
        counts=Counter(statuses.values()),
        equivalent=len(equivalent) - len(stale),
        stale_equivalents=stale,
        seconds=time.monotonic() - started,
    )


HEADER = (
    f"{'module':34} {'mutants':>7} {'killed':>6} {'(timeout)':>9} {'survived':>8} {'no tests':>8} {'other':>5} "
    f"{'equiv':>5} {'score':>7} {'w/o eq':>7} {'time':>6}"
)


def _line(s: Score) -> str:
    return (
        f"{s.module:34} {s.total:7d} {s.killed:6d} {s.counts['timeout']:9d} {s.counts['survived']:8d} "
        f"{s.counts['no tests']:8d} "
        f"{s.other:5d} {s.equivalent:5d} {s.score():6.1f}% {s.score_without_equivalents():6.1f}% "
        f"{s.seconds:5.0f}s"
    )


def main(argv: list[str] | None = None) -> list[Score]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="only this module")
    parser.add_argument("--smoke", action="store_true", help=f"only {SMOKE} (quick)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant runs (cores)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every survivor")
    parser.add_argument("--tests-from", metavar="REV", help="use the tests/ of git revision REV (a baseline)")
    args = parser.parse_args(argv)
    targets = {SMOKE: SMOKE_TARGET} if args.smoke else {m: TARGETS[m] for m in args.module or TARGETS}
    print(HEADER, flush=True)
    scores = []
    for module, target in targets.items():
        score = run_module(module, target, args.max_children, args.survivors, args.tests_from)
        scores.append(score)
        print(_line(score), flush=True)
        for name in score.stale_equivalents:
            print(f"  listed as equivalent but not a survivor now: {name}", flush=True)
    if len(scores) > 1:
        total = Score(
            "total", sum((s.counts for s in scores), Counter()), sum(s.equivalent for s in scores), (), 0
        )
        total = Score("total", total.counts, total.equivalent, (), sum(s.seconds for s in scores))
        print(_line(total), flush=True)
    return scores


if __name__ == "__main__":
    main()
