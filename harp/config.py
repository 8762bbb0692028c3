"""Structured (typed) configuration: the schema every Hydra entry point validates against.

The YAML under `conf/` gives values; these dataclasses give the keys and types, so a typo
(`method.num_layer=4`) or a wrong type fails at start-up naming the key, before any work starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harp import artifacts
from harp.diagnostics import read_ranking
from harp.errors import HarpError
from harp.layers import DIAGNOSED, POSITIONS, check_count, from_last, pruned_layers

BUDGET_KINDS = ("attention_fraction", "ratio", "match_harp")
DTYPES = ("float32", "bfloat16", "float16")
TARGETS = ("attention", "mlp", "attention+mlp")
ALLOCATIONS = ("uniform", "global")


@dataclass
class ModelConfig:
    name: str = MISSING  # results/<name>/...
    source: str = MISSING  # HF hub id or local path
    family: str = MISSING  # llama | mistral | qwen2 | gemma2
    dtype: str = "bfloat16"
    num_layers: int = MISSING  # decoder layers (checked against the checkpoint)
    prune_layers: int = MISSING  # L, the paper's setting for this model
    published_alphas: Optional[list[float]] = None  # authors' release, index 0 = last layer
    flap_mlp_ratio: float = 0.0  # MLP-channel ratio of the release's HARP+FLAP variant
    build: Optional[str] = None  # "tiny": built here by `python -m harp.cli.build_tiny`
    device_map: Optional[str] = None  # "auto" for models larger than one GPU
    attn_implementation: Optional[str] = None
    # where ALL of this model's calibration and perplexity text comes from; null: the dataset each setting
    # names (wikitext2, c4). The tiny model has no hub data: its own corpus serves every text, said in each record
    text_source: Optional[str] = None
    max_length: int = 4096  # context window used for evaluation
    # HF config kwargs of the published checkpoint (model_type, sizes, rope, ...): lets the speed
    # benchmark build the architecture with random weights, no download; null: read `source`'s config
    architecture: Optional[dict[str, Any]] = None


@dataclass
class SearchConfig:
    grid: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    order: str = "top_down"
    batch_size: int = 8


MASK_PATTERNS = ("unstructured", "2:4")
MASK_RANKINGS = ("mask", "masked_weight")


@dataclass
class MaskConfig:
    """Settings of the q/k weight masks (`attn_mask`, and `wanda_qk` its baseline); `check_values` checks them
    wherever a config is composed, so a bad value fails before any model loads."""

    sparsity: Optional[float] = None  # s: fraction of each q/k row zeroed; null: match the parameter budget
    pattern: str = "unstructured"  # unstructured | 2:4 (exactly 2 of every 4 consecutive inputs kept per row)
    lam: float = 0.3  # lambda, weight of the L2 penalty on the mask (conf/method/attn_mask.yaml says why)
    step_size: float = 0.01  # gradient-descent step
    iterations: int = 100  # gradient-descent steps per layer
    rank_by: str = "mask"  # attn_mask's binarisation: mask (M, the paper's reading) | masked_weight (M * |W|)
    layers: Optional[list[int]] = None  # layers masked; null: every layer
    compare: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])  # sparsities of the mask_compare stage
    compare_tokens: Optional[int] = 4096  # held-out tokens per mask_compare perplexity (the first N); null: all

    def check_width(self, in_features: int) -> None:
        """2:4 groups consecutive inputs in fours: the q/k input width (the hidden size) must divide by 4."""
        if self.pattern == "2:4" and in_features % 4:
            raise HarpError(
                f"method.mask.pattern=2:4 needs the q/k input width to be a multiple of 4, but it is {in_features}."
            )


@dataclass
class DataConfig:
    """A calibration set: `num_samples` random windows of `seq_len` tokens of `source`."""

    source: str = "wikitext2"  # wikitext2 | c4 | corpus (the model's `text_source` wins when set)
    num_samples: int = 32
    seq_len: int = 128
    seed: int = 0


@dataclass
class MethodConfig:
    name: str = MISSING  # a method of harp.methods: dense, harp, ...
    num_layers: Optional[int] = None  # HARP's L; null: the model's prune_layers
    layer_position: str = "top"  # top (paper) | middle | bottom | diagnosed (ablations; diagnosed: harp.diagnostics)
    rescale: bool = True  # false: alpha = 1 everywhere (no search)
    alphas: Optional[list[float]] = None  # fixed alphas, index 0 = last pruned layer (skips search)
    published_alphas: bool = False  # true: the model's published alphas (skips search; experiment=published_alphas)
    search: SearchConfig = field(default_factory=SearchConfig)
    target: str = "attention"  # baselines: attention | mlp | attention+mlp
    allocation: str = "global"  # baselines: uniform (the same count in every layer) | global (one ranking)
    mlp_ratio: Optional[float] = None  # HARP+FLAP: a fixed fraction of MLP weights; null: fill the budget
    calibration: Optional[DataConfig] = None  # this method's own calibration set; null: `data` (HARP's search)
    batch_size: int = 8  # sequences per forward pass over the calibration data
    mask: MaskConfig = field(default_factory=MaskConfig)  # attn_mask and wanda_qk: q/k weight masks


@dataclass
class BudgetConfig:
    """How many weights every budgeted method removes: one notion for all (`harp.pruning.budget`)."""

    kind: str = "attention_fraction"  # attention_fraction | ratio | match_harp
    # attention_fraction: share of all q/k/v/o weights (null: L/N, the paper's); ratio: share of the decoder
    # linear weights; match_harp: unused (what HARP's plan removed)
    value: Optional[float] = None


@dataclass
class PerplexityConfig:
    source: str = "wikitext2"  # wikitext2 (test split) | corpus (held-out split); the model's text_source wins
    window: int = "${model.max_length}"  # type: ignore[assignment]
    stride: int = 256
    max_tokens: Optional[int] = None  # evaluate only the first N tokens (quick runs)


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
    tasks: dict[str, int] = field(default_factory=dict)  # lm-eval task -> few-shot count
    select: Optional[list[str]] = None  # evaluate only these of `tasks` (one Snakemake job per task)
    fixtures: bool = True  # true: offline fixture datasets; false: the real datasets
    fixtures_dir: str = "${results_dir}/fixtures"  # written by `python -m harp.cli.fixtures`
    limit: Optional[int] = None  # cap on samples per task (null = complete)
    batch_size: str = "1"  # an integer, or "auto" on GPU
    longbench_max_length: int = "${model.max_length}"  # type: ignore[assignment]  # middle-truncation window
    max_gen_toks: Optional[int] = None  # cap on generated tokens per task (null = each task's own)
    # folder of LongBench's raw <name>.jsonl (THUDM/LongBench data.zip, unzipped); null: data/longbench
    longbench_data: Optional[str] = None
    seeds: LmEvalSeeds = field(default_factory=LmEvalSeeds)
    cache: bool = True  # lm-eval's response cache: an interrupted evaluation resumes
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)


@dataclass
class SpeedConfig:
    """The speed/memory benchmark (the paper's Figure 3): presets in `conf/speed/{cpu,gpu}.yaml`."""

    seq_lens: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048])
    repeats: int = 3  # timed runs per point; the median is reported
    warmup: int = 1  # untimed runs per point before the timed ones
    decode_tokens: int = 16  # greedy tokens generated after a prompt of seq_len
    batch_size: int = 1
    dtype: str = "float32"
    device: str = "cpu"  # cpu | cuda | auto
    threads: Optional[int] = None  # torch CPU threads; null: torch's default
    random_weights: bool = True  # true: random weights from the architecture (timing does not depend on them)


@dataclass
class TrackingConfig:
    enabled: bool = True
    project: str = "harp"
    entity: Optional[str] = None
    mode: str = "offline"  # offline | online | disabled
    dir: str = "${results_dir}/wandb"


@dataclass
class Config:
    model: ModelConfig = MISSING
    method: MethodConfig = MISSING
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
        spec = self.method.calibration or self.data
        return DataConfig(self.text_source(spec.source), spec.num_samples, spec.seq_len, spec.seed)

    def calibration_file(self) -> Path:
        c = self.calibration_set()
        name = artifacts.calibration_name(c.source, c.num_samples, c.seq_len, c.seed)
        return artifacts.calibration(self.experiment_dir, self.model.name, name)

    def layer_count(self) -> int:
        """How many layers HARP prunes: `method.num_layers`, by default the model's L."""
        return self.model.prune_layers if self.method.num_layers is None else self.method.num_layers

    def reads_diagnostics(self) -> bool:
        """Whether HARP's layers are the diagnose stage's choice (known only once it has run)."""
        return self.method.layer_position == DIAGNOSED

    def diagnostics_file(self) -> Path:
        return artifacts.diagnostics(self.experiment_dir, self.model.name)

    def pruned_layers(self) -> list[int]:
        """The layers HARP prunes: `layer_count()` of them at `method.layer_position` (diagnosed: read from the
        diagnose stage's file)."""
        total = self.model.num_layers
        ranking = read_ranking(self.diagnostics_file(), total) if self.reads_diagnostics() else None
        return pruned_layers(total, self.layer_count(), self.method.layer_position, ranking)

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
    """Register the schema with Hydra so `conf/config.yaml` can extend it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="harp_schema", node=Config)


def validate(cfg: DictConfig, experiment: str | None = None) -> Config:
    """Merge a composed config into the schema; unknown keys and bad types become one sentence.

    `experiment` is the conf/experiment/ option Hydra chose (its runtime choice): the experiment's
    name, from which its folder is derived.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), cfg, {"experiment": experiment})
        OmegaConf.resolve(merged)
        config: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        raise HarpError(f"Invalid configuration{f' at {key}' if key else ''}: {str(err).splitlines()[0]}") from None
    check_values(config)
    return config


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise HarpError(f"{key} is {value!r}; choose one of {', '.join(allowed)}.")


def _within(key: str, value: float | None, low: float, high: float, closed_high: bool = False) -> None:
    inside = value is not None and math.isfinite(value) and low <= value
    if not (inside and (value <= high if closed_high else value < high)):
        interval = f"[{low}, {high}]" if closed_high else f"[{low}, {high})"
        raise HarpError(f"{key} is {value}; it must lie in {interval}.")


def _at_least(key: str, value: int | None, low: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or value < low:
        raise HarpError(f"{key} is {value}; it must be at least {low}{' (or null)' if optional else ''}.")


def _check_mask(mask: MaskConfig) -> None:
    for s in ([mask.sparsity] if mask.sparsity is not None else []) + list(mask.compare):
        _within("A sparsity of method.mask (sparsity, compare)", s, 0.0, 1.0)
    _choice("method.mask.pattern", mask.pattern, MASK_PATTERNS)
    _choice("method.mask.rank_by", mask.rank_by, MASK_RANKINGS)
    if mask.pattern == "2:4" and mask.sparsity != 0.5:
        raise HarpError(
            f"method.mask.pattern=2:4 keeps exactly 2 of every 4 weights, so method.mask.sparsity must be 0.5, "
            f"not {mask.sparsity}."
        )
    if not mask.step_size > 0:
        raise HarpError(f"method.mask.step_size is {mask.step_size}; it must be positive.")
    _at_least("method.mask.iterations", mask.iterations, 1)
    if not mask.lam >= 0:
        raise HarpError(f"method.mask.lam is {mask.lam}; it must be non-negative.")
    _at_least("method.mask.compare_tokens", mask.compare_tokens, 2, optional=True)


def check_values(cfg: Config) -> None:
    """Ranges and choices the schema's types cannot express, checked wherever a config is composed (each
    stage, and the workflow planner before any job starts), so a bad value is one sentence up front."""
    m, b, e, p, s = cfg.method, cfg.budget, cfg.eval, cfg.eval.perplexity, cfg.speed
    _choice("model.dtype", cfg.model.dtype, DTYPES)
    _choice("budget.kind", b.kind, BUDGET_KINDS)
    if b.kind == "ratio":
        _within("budget.value (a ratio of the decoder linear weights)", b.value, 0.0, 1.0)
    elif b.kind == "attention_fraction" and b.value is not None:
        _within("budget.value (a fraction of the attention weights)", b.value, 0.0, 1.0, closed_high=True)
    _choice("method.target", m.target, TARGETS)
    _choice("method.allocation", m.allocation, ALLOCATIONS)
    _choice("method.layer_position", m.layer_position, POSITIONS)
    _choice("method.search.order", m.search.order, ("top_down", "bottom_up"))
    if not m.search.grid:
        raise HarpError("method.search.grid is empty; give the candidate alphas, e.g. [0.0, 0.5, 1.0].")
    for key, values in (("method.search.grid", m.search.grid), ("method.alphas", m.alphas or [])):
        for value in values:
            _within(f"An alpha of {key}", value, 0.0, 1.0, closed_high=True)
    if m.mlp_ratio is not None:
        _within("method.mlp_ratio", m.mlp_ratio, 0.0, 1.0)
    _at_least("method.batch_size", m.batch_size, 1)
    _check_mask(m.mask)
    _at_least("method.search.batch_size", m.search.batch_size, 1)
    for key, data in (("data", cfg.data), ("method.calibration", m.calibration)):
        if data is not None:
            _at_least(f"{key}.num_samples", data.num_samples, 1)
            _at_least(f"{key}.seq_len", data.seq_len, 2)
    if e.select is not None and not e.select:
        raise HarpError("eval.select is empty; name at least one task of eval.tasks, or set it to null for all.")
    _at_least("eval.limit", e.limit, 1, optional=True)
    _at_least("eval.max_gen_toks", e.max_gen_toks, 1, optional=True)
    _at_least("eval.longbench_max_length", e.longbench_max_length, 2)
    if not re.fullmatch(r"[1-9]\d*|auto(:[1-9]\d*)?", e.batch_size):
        raise HarpError(f"eval.batch_size is {e.batch_size!r}; give a positive integer, auto or auto:N.")
    _at_least("eval.perplexity.window", p.window, 2)
    _at_least("eval.perplexity.max_tokens", p.max_tokens, 2, optional=True)
    if not 1 <= p.stride <= p.window:
        raise HarpError(f"eval.perplexity.stride is {p.stride}; it must lie in 1..window ({p.window}).")
    _choice("speed.dtype", s.dtype, DTYPES)
    if not s.seq_lens or min(s.seq_lens) < 1:
        raise HarpError(f"speed.seq_lens is {s.seq_lens}; give positive sequence lengths.")
    for key in ("repeats", "decode_tokens", "batch_size"):
        _at_least(f"speed.{key}", getattr(s, key), 1)
    _at_least("speed.warmup", s.warmup, 0)
    _choice("tracking.mode", cfg.tracking.mode, ("offline", "online", "disabled"))
