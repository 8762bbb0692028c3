"""The Snakemake pipeline's plan: which stage runs for which experiment, model and method, and where it writes.

The Snakefile stays declarative: everything it needs is computed here from the workflow config
(`workflow/config.yaml`, checked against `workflow/schemas/config.schema.yaml`) and the Hydra configs
under `conf/`, composed without touching any weights, so a dry run of the paper suite needs no download.
Each stage job is then `python -m harp.cli.<stage>` with the same Hydra overrides the plan composed.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from harp import artifacts, methods
from harp.artifacts import MAIN
from harp.config import Config, compose
from harp.errors import HarpError
from harp.eval.tasks import selected, suite_task
from harp.io import writable

EVAL_JOBS = ("task", "category", "all")  # one evaluation job per task, per task category, or per model and method


@dataclass(frozen=True)
class Variant:
    """One (experiment, model, method) of the pipeline and the stage config composed for it."""

    experiment: str
    model: str
    method: str
    cfg: Config
    overrides: tuple[str, ...]


def _choices(conf_dir: Path, folder: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir / folder).glob("*.yaml"))


def _check_names(conf_dir: Path, folder: str, names: list[str], what: str) -> None:
    """Every name must be a file of `conf/<folder>/`; a typo gets the closest match."""
    known = _choices(conf_dir, folder)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise HarpError(f"Unknown {what} {name!r} in the workflow config; known: {', '.join(known)}.{hint}")


def check_config(wf: dict, schema_path: Path) -> None:
    """The workflow config against its schema (which also fills in its defaults), each fault in one sentence:
    Snakemake's own message is the schema's whole report, or the whole schema for an unknown key."""
    from jsonschema import ValidationError
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    check_keys(wf, yaml.safe_load(schema_path.read_text()))
    try:
        validate(wf, str(schema_path))
    except WorkflowError as err:
        cause = err.__context__
        if not isinstance(cause, ValidationError):
            raise
        key = ".".join(map(str, cause.absolute_path))
        raise HarpError(f"The workflow config's {key or 'top level'} is invalid: {cause.message}.") from None


def check_keys(wf: dict, schema: dict) -> None:
    """The workflow config's top-level keys against its schema's, before the schema's own check (whose message for
    an unknown key is the whole schema): a typo gets one sentence with the closest key."""
    known = list(schema.get("properties", {}))
    for key in wf:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise HarpError(f"Unknown workflow config key {key!r}; known: {', '.join(known)}.{hint}")


@dataclass(frozen=True)
class CommandLine:
    """A job's Hydra overrides, quoted for the shell (a results_dir may hold spaces).

    Deliberately not a string: Snakemake leaves parameters of other types out of its params-change
    check, so what reruns a job is its `settings` parameter (what the stage consumes of the resolved
    config), not every override of the run: `eval.limit=50` reruns evaluation, collect and report only,
    and switching tracking reruns nothing.
    """

    overrides: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(shlex.quote(o) for o in self.overrides)


# What each stage reads of the resolved config (its outputs depend on these parts alone); every stage that
# loads the model reads `device` too (`harp.cli._app.load_for`).
STAGE_PARTS = {
    "build_tiny": ("model", "seed"),
    "build_gguf": ("model",),
    "calibrate": ("model", "calibration"),
    "search": ("model", "method", "calibration", "device"),
    "diagnose": ("model", "calibration", "device"),
    "prune": ("model", "method", "budget", "calibration", "device"),
    "evaluate": ("model", "eval", "device"),
    "perplexity": ("model", "perplexity", "device"),
    "speed": ("model", "method", "speed"),
    "mask_compare": ("model", "method", "calibration", "perplexity", "device"),
    "export": ("model", "method"),
}
_PARTS = {
    "model": lambda cfg: asdict(cfg.model),
    "method": lambda cfg: asdict(cfg.method),
    "budget": lambda cfg: asdict(cfg.budget),
    "calibration": lambda cfg: asdict(cfg.calibration_set()),
    "eval": lambda cfg: asdict(cfg.eval) | {"perplexity": None},  # perplexity settings: the perplexity stage's
    "perplexity": lambda cfg: asdict(cfg.eval.perplexity),
    "speed": lambda cfg: asdict(cfg.speed),
    "seed": lambda cfg: cfg.seed,
    "device": lambda cfg: cfg.device,
}


def stage_settings(stage: str, cfg: Config) -> str:
    """The parts of `cfg` that `stage` reads (`STAGE_PARTS`), as deterministic YAML."""
    return yaml.safe_dump({part: _PARTS[part](cfg) for part in STAGE_PARTS[stage]}, sort_keys=True)


class Pipeline:
    """What `snakemake` builds for one workflow config: the variants, their files and each job's overrides."""

    def __init__(self, wf: dict, conf_dir: str | Path = "conf"):
        self.conf_dir = Path(conf_dir)
        suites = wf["suites"]
        if wf["suite"] not in suites:
            raise HarpError(f"Unknown suite {wf['suite']!r}; the workflow config defines {', '.join(suites)}.")
        suite = suites[wf["suite"]]
        pick = lambda key: wf.get(key) if wf.get(key) is not None else suite.get(key)  # noqa: E731  top level wins
        self.models: list[str] = list(pick("models"))
        self.methods: list[str] = list(pick("methods"))
        # timed where the main run has them; a suite without a speed preset times nothing
        self.speed_methods: list[str] = list(pick("speed_methods") or []) if pick("speed") else []
        self.ablation_methods: list[str] = list(pick("ablation_methods") or [methods.SEARCHED])
        # the main run's methods whose pruned model is also written as a standalone checkpoint (like speed_methods)
        self.export_methods: list[str] = list(pick("export_methods") or [])
        # experiments that run other methods than ablation_methods (published_alphas: HARP and the paper's HARP row)
        self.experiment_methods: dict[str, list[str]] = {
            e: list(ms) for e, ms in (wf.get("experiment_methods") or {}).items()
        }
        self.eval_jobs: str = pick("eval_jobs") or "task"
        # attn_mask against wanda_qk, per model, where attn_mask runs (the comparison reads its settings)
        self.mask_compare: bool = bool(pick("mask_compare")) and methods.MASKS_COMPARED in self.methods
        only = wf.get("experiment")
        experiments = [only] if only else list(pick("experiments") or [])
        self.results_dir = str(wf.get("results_dir") or "results")
        writable(Path(self.results_dir), create=False)
        self.resources: dict = wf.get("resources") or {}
        tracking = wf.get("tracking") or "offline"
        # a method's own settings for its jobs alone: the suite's, then the run's (--config) on top
        self.method_overrides: dict[str, list[str]] = {}
        for source in (suite.get("method_overrides") or {}, wf.get("method_overrides") or {}):
            for m, extra in source.items():
                self.method_overrides.setdefault(m, []).extend(map(str, extra))
        self.common = (
            f"eval={pick('eval')}",
            f"speed={pick('speed') or 'cpu'}",
            f"tracking={tracking}",
            f"results_dir={self.results_dir}",
            *map(str, suite.get("overrides") or []),  # the suite's settings, then the run's (--config) on top
            *map(str, wf.get("overrides") or []),
        )
        # false: ablations are measured by held-out perplexity alone (the demo: evaluation dominates its cost)
        self.ablation_eval: bool = suite.get("ablation_eval", True)
        self._check(experiments, pick("eval"), pick("speed"), tracking)

        # ablations rerun HARP (and whatever it needs) with their overrides; the main run is skipped with experiment=X
        plan = ([] if only else [(MAIN, m) for m in self.methods]) + [
            (e, m) for e in experiments for m in self.experiment_methods.get(e, self.ablation_methods)
        ]
        self.variants: dict[tuple[str, str, str], Variant] = {}
        for model in self.models:
            for experiment, method in plan:
                for needed in self._with_needs(model, experiment, method):
                    self._add(model, experiment, needed)
        if not self.variants:
            raise HarpError("The workflow config selects nothing to run: its models or methods list is empty.")
        first = next(iter(self.variants.values()))
        self.tasks: list[str] = list(selected(first.cfg.eval.tasks, None))  # every name checked against the suite
        self.fixtures_dir = first.cfg.eval.fixtures_dir if first.cfg.eval.fixtures else None
        # BIG-bench's real rows, converted once from its archive, where the suite has BIG-bench tasks
        converted = any(suite_task(t).bigbench for t in self.tasks)
        self.bigbench_dir = str(artifacts.bigbench_rows(first.cfg.eval.data_dir)) if converted else None

    # --- construction -------------------------------------------------------------------------------------------
    def _check(self, experiments: list[str], eval_name: str, speed: str | None, tracking: str) -> None:
        _check_names(self.conf_dir, "model", self.models, "model")
        per_experiment = [m for ms in self.experiment_methods.values() for m in ms]
        _check_names(self.conf_dir, "method", self.methods + self.speed_methods + self.ablation_methods, "method")
        _check_names(self.conf_dir, "method", per_experiment + list(self.method_overrides), "method")
        _check_names(self.conf_dir, "method", self.export_methods, "method")
        _check_names(self.conf_dir, "experiment", experiments + list(self.experiment_methods), "experiment")
        _check_names(self.conf_dir, "eval", [eval_name], "eval preset")
        _check_names(self.conf_dir, "speed", [speed] if speed else [], "speed preset")
        _check_names(self.conf_dir, "tracking", [tracking], "tracking mode")
        if self.eval_jobs not in EVAL_JOBS:
            raise HarpError(f"eval_jobs is {self.eval_jobs!r}; choose one of {', '.join(EVAL_JOBS)}.")

    def _add(self, model: str, experiment: str, method: str) -> Variant:
        key = (experiment, model, method)
        if key not in self.variants:
            overrides = (f"model={model}", f"method={method}", *self.common, *self.method_overrides.get(method, []))
            if experiment != MAIN:
                overrides += (f"experiment={experiment}",)
            cfg = compose(self.conf_dir, list(overrides))
            if cfg.model.architecture:  # a 2:4 mask the published architecture cannot take fails now too
                cfg.method.check_model(cfg.model.architecture["hidden_size"])
            self.variants[key] = Variant(experiment, model, method, cfg, overrides)
        return self.variants[key]

    def _with_needs(self, model: str, experiment: str, method: str) -> list[str]:
        """`method` and, first, HARP when `method` reads its alphas or its plan (a match_harp budget)."""
        cfg = self._add(model, experiment, method).cfg
        reads = set(methods.get(method).inputs(cfg.budget.kind))
        searched = methods.SEARCHED
        return ([searched] if reads & {"reference", "alphas"} and method != searched else []) + [method]

    # --- paths --------------------------------------------------------------------------------------------------
    def experiment_dir(self, experiment: str) -> str:
        return str(artifacts.experiment_dir(self.results_dir, experiment))

    def experiments(self) -> list[str]:
        return sorted({v.experiment for v in self.variants.values()})

    def experiment_of(self, expdir: str) -> str:
        return next(e for e in self.experiments() if self.experiment_dir(e) == expdir)

    def variant(self, expdir: str, model: str, method: str) -> Variant:
        return self.variants[(self.experiment_of(expdir), model, method)]

    def calibration_variant(self, expdir: str, model: str, name: str) -> Variant:
        """A variant whose calibration set is `name`: its config tells the calibrate stage what to draw."""
        experiment = self.experiment_of(expdir)
        return next(
            v
            for (e, mo, _), v in self.variants.items()
            if e == experiment and mo == model and v.cfg.calibration_file().stem == name
        )

    def calibration_names(self) -> list[str]:
        return sorted({v.cfg.calibration_file().stem for v in self.variants.values()})

    def wildcard_constraints(self) -> dict[str, str]:
        alternatives = lambda names: "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))  # noqa: E731
        return {
            "expdir": alternatives(self.experiment_dir(e) for e in self.experiments()),
            "model": alternatives(self.models),
            "method": alternatives(m for (_, _, m) in self.variants),
            "calib": alternatives(self.calibration_names()),
        }

    # --- what each job reads -----------------------------------------------------------------------------------
    def model_inputs(self, model: str) -> list[str]:
        """The model directory when the pipeline builds the model itself (the tiny default), else nothing."""
        built = self.built_models()
        return [built[model]] if model in built else []

    def built_models(self) -> dict[str, str]:
        """model name -> directory, for the models the pipeline builds (`model.build`)."""
        return {v.model: v.cfg.model.source for v in self.variants.values() if v.cfg.model.build}

    def prune_inputs(self, expdir: str, model: str, method: str) -> list[str]:
        files = self.variant(expdir, model, method).cfg.prune_inputs()
        return self.model_inputs(model) + [str(p) for p in files.values()]

    def search_inputs(self, expdir: str, model: str) -> list[str]:
        """The model (when built here), the alpha search's calibration set, and the diagnostics that choose the
        layers when they are diagnosed."""
        files = self.variant(expdir, model, methods.SEARCHED).cfg.search_inputs()
        return self.model_inputs(model) + [str(p) for p in files]

    def diagnose_inputs(self, expdir: str, model: str) -> list[str]:
        """The model (when built here) and the calibration set the alpha search reads."""
        cfg = self.variant(expdir, model, methods.SEARCHED).cfg
        return [*self.model_inputs(model), str(cfg.calibration_file())]

    def eval_inputs(self, expdir: str, model: str, method: str) -> list[str]:
        return [
            *self.model_inputs(model),
            str(artifacts.plan(artifacts.method_dir(expdir, model, method))),
            *([self.fixtures_dir] if self.fixtures_dir else []),
            *([self.bigbench_dir] if self.bigbench_dir else []),
        ]

    def export_inputs(self, expdir: str, model: str, method: str) -> list[str]:
        """The plan, and the perplexity and task results its model card reports."""
        mdir = artifacts.method_dir(expdir, model, method)
        results = [artifacts.perplexity(mdir), *(artifacts.eval_result(mdir, t) for t in self.tasks)]
        return [*self.model_inputs(model), str(artifacts.plan(mdir)), *map(str, results)]

    def command(self, expdir: str, model: str, method: str = methods.SEARCHED, *extra: str) -> CommandLine:
        """A job's Hydra overrides (and `extra` ones); per-model jobs (the search) take HARP's."""
        return CommandLine((*self.variant(expdir, model, method).overrides, *extra))

    def calibration_command(self, expdir: str, model: str, name: str) -> CommandLine:
        return CommandLine(self.calibration_variant(expdir, model, name).overrides)

    def common_command(self, *extra: str) -> CommandLine:
        """The overrides of the jobs over all models (build, fixtures, collect, report)."""
        return CommandLine((*extra, *self.common))

    def settings(self, stage: str, expdir: str, model: str, method: str = methods.SEARCHED) -> str:
        """What `stage` consumes of the variant's resolved config, as YAML: the param that decides a rerun."""
        cfg = self.variant(expdir, model, method).cfg
        return stage_settings(stage, cfg)

    def build_stage(self, model: str) -> str:
        """The stage that builds `model`: `build_<model.build>` (build_tiny trains it, build_gguf converts it)."""
        return f"build_{self.model_config(model).model.build}"

    def build_settings(self, model: str) -> str:
        return stage_settings(self.build_stage(model), self.model_config(model))

    def model_config(self, model: str) -> Config:
        """The config of one of `model`'s variants (what all of them share: the model, the common overrides)."""
        return next(v.cfg for v in self.variants.values() if v.model == model)

    def calibration_settings(self, expdir: str, model: str, name: str) -> str:
        return stage_settings("calibrate", self.calibration_variant(expdir, model, name).cfg)

    def eval_shards(self) -> dict[str, list[str]]:
        """Shard name -> tasks of one evaluation job. A category's tasks share a process to amortise start-up."""
        if self.eval_jobs == "task":
            groups = [[t] for t in self.tasks]
        elif self.eval_jobs == "all":
            groups = [list(self.tasks)]
        else:
            by_category: dict[str, list[str]] = {}
            for task in self.tasks:
                by_category.setdefault(suite_task(task).category, []).append(task)
            groups = list(by_category.values())
        return {artifacts.eval_job(g, [suite_task(t).category for t in g]): g for g in groups}

    # --- what the variants produce ------------------------------------------------------------------------------
    def targets(self) -> list[str]:
        """Every per-variant output the report is built from."""
        out = []
        for v in self.variants.values():
            d = v.cfg.method_dir
            out += [artifacts.plan(d), artifacts.perplexity(d)]
            if v.experiment == MAIN or self.ablation_eval:
                out += [artifacts.eval_result(d, t) for t in self.tasks]
            if v.method == methods.SEARCHED:
                out.append(artifacts.alphas(v.cfg.experiment_dir, v.model))
                if v.experiment == MAIN:  # Theorem 1's premise on every model HARP runs on (Figure 0)
                    out.append(v.cfg.diagnostics_file())
            if v.experiment == MAIN and v.method in self.speed_methods:
                out.append(artifacts.speed(d))
            if v.experiment == MAIN and v.method in self.export_methods:
                out.append(artifacts.export_dir(d))
            if v.experiment == MAIN and v.method == methods.MASKS_COMPARED and self.mask_compare:
                out.append(artifacts.mask_compare(d))
        return [str(p) for p in out]

    def resource(self, model: str, key: str) -> int:
        """`resources.cpu.<key>` for models built here (the tiny default), `resources.gpu.<key>` for the others."""
        kind = "cpu" if self.model_inputs(model) else "gpu"
        return int((self.resources.get(kind) or {}).get(key, 0))
