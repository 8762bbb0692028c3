"""Structured (typed) configuration: the schema every Hydra entry point validates against.

The YAML under `conf/` gives values; these dataclasses give the keys and types, so a typo
(`method.num_layer=4`) or a wrong type fails at start-up naming the key, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harp import artifacts
from harp.errors import HarpError
from harp.layers import pruned_layers


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
    calibration_source: str = "wikitext2"
    perplexity_source: str = "wikitext2"
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
    """Settings of the q/k weight masks (`attn_mask`, and `wanda_qk` its baseline); checked on construction,
    so a bad value fails before any model loads (every stage and the workflow planner build this)."""

    sparsity: Optional[float] = None  # s: fraction of each q/k row zeroed; null: match the parameter budget
    pattern: str = "unstructured"  # unstructured | 2:4 (exactly 2 of every 4 consecutive inputs kept per row)
    lam: float = 0.3  # lambda, weight of the L2 penalty on the mask (conf/method/attn_mask.yaml says why)
    step_size: float = 0.01  # gradient-descent step
    iterations: int = 100  # gradient-descent steps per layer
    rank_by: str = "mask"  # attn_mask's binarisation: mask (M, the paper's reading) | masked_weight (M * |W|)
    layers: Optional[list[int]] = None  # layers masked; null: every layer
    num_samples: Optional[int] = 8  # calibration sequences used (the first N); null: all of them
    compare: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])  # sparsities of the mask_compare stage
    compare_tokens: Optional[int] = 4096  # held-out tokens per mask_compare perplexity (the first N); null: all

    def __post_init__(self) -> None:
        for s in ([self.sparsity] if self.sparsity is not None else []) + list(self.compare):
            if not 0.0 <= s < 1.0:
                raise HarpError(f"A mask sparsity is {s}; it must lie in [0, 1).")
        if self.pattern not in MASK_PATTERNS:
            raise HarpError(f"Unknown method.mask.pattern {self.pattern!r}; choose one of {', '.join(MASK_PATTERNS)}.")
        if self.pattern == "2:4" and self.sparsity != 0.5:
            raise HarpError(
                f"method.mask.pattern=2:4 keeps exactly 2 of every 4 weights, so method.mask.sparsity must be 0.5, "
                f"not {self.sparsity}."
            )
        if self.rank_by not in MASK_RANKINGS:
            raise HarpError(f"Unknown method.mask.rank_by {self.rank_by!r}; choose one of {', '.join(MASK_RANKINGS)}.")
        if not self.step_size > 0:
            raise HarpError(f"method.mask.step_size is {self.step_size}; it must be positive.")
        if self.iterations <= 0:
            raise HarpError(f"method.mask.iterations is {self.iterations}; it must be a positive integer.")
        if self.lam < 0:
            raise HarpError(f"method.mask.lam is {self.lam}; it must be non-negative.")
        if self.compare_tokens is not None and self.compare_tokens < 2:
            raise HarpError(
                f"method.mask.compare_tokens is {self.compare_tokens}; it must be at least 2 (or null: all)."
            )
        if self.num_samples is not None and self.num_samples <= 0:
            raise HarpError(f"method.mask.num_samples is {self.num_samples}; it must be positive (or null: all).")

    def check_width(self, in_features: int) -> None:
        """2:4 groups consecutive inputs in fours: the q/k input width (the hidden size) must divide by 4."""
        if self.pattern == "2:4" and in_features % 4:
            raise HarpError(
                f"method.mask.pattern=2:4 needs the q/k input width to be a multiple of 4, but it is {in_features}."
            )


@dataclass
class MethodConfig:
    name: str = MISSING  # a registered method: dense, harp, ...
    num_layers: Optional[int] = None  # HARP's L; null: the model's prune_layers
    layer_position: str = "top"  # top (paper) | middle | bottom (ablation)
    rescale: bool = True  # false: alpha = 1 everywhere (no search)
    alphas: Optional[list[float]] = None  # fixed alphas, index 0 = last pruned layer (skips search)
    search: SearchConfig = field(default_factory=SearchConfig)
    ratio: Optional[float] = None  # baselines: fraction to remove; null: match HARP's budget
    target: str = "attention"  # baselines: attention | mlp | attention+mlp
    mlp_ratio: Optional[float] = None  # HARP+FLAP: fraction of MLP weights removed
    batch_size: int = 8  # sequences per forward pass over the calibration data
    mask: MaskConfig = field(default_factory=MaskConfig)  # attn_mask and wanda_qk: q/k weight masks


@dataclass
class DataConfig:
    source: str = "${model.calibration_source}"  # corpus | wikitext2 | c4
    num_samples: int = 32
    seq_len: int = 128
    seed: int = 0


@dataclass
class PerplexityConfig:
    source: str = "${model.perplexity_source}"  # wikitext2 (test split) | corpus (held-out split)
    window: int = "${model.max_length}"  # type: ignore[assignment]
    stride: int = 256
    max_tokens: Optional[int] = None  # evaluate only the first N tokens (quick runs)


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

    def pruned_layers(self) -> list[int]:
        """The layers HARP prunes: `method.num_layers` (default: the model's L) at `method.layer_position`."""
        m = self.method
        count = self.model.prune_layers if m.num_layers is None else m.num_layers
        return pruned_layers(self.model.num_layers, count, m.layer_position)


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
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        raise HarpError(f"Invalid configuration{f' at {key}' if key else ''}: {str(err).splitlines()[0]}") from None
