"""How many GPU hours and how much disk a suite asks for, estimated from its plan before any job runs.

Not a measurement: no GPU run of the paper suite exists here. The estimate counts the tokens each planned job
pushes through the model and prices them on one GPU of the class below, under stated assumptions:
- a token read (prefill, a log-likelihood request) costs 2 FLOPs per weight, at MFU of the GPU's bf16 peak
  (attention's own FLOPs left out: about 7% at 4k tokens on an 8B model);
- a generated token costs one read of all weights from memory, shared by the DECODE_BATCH sequences of a step;
- every job pays START_S (process, imports, CUDA) plus reading its weights from disk at LOAD_BYTES_S;
- evaluation: each task's `Work` (documents x tokens read and generated, `harp.eval.tasks`); the search: every
  grid point of every pruned layer a full forward pass over its calibration set (an upper bound); pruning: one pass
  over the method's calibration set (attn_mask's mask optimisation not counted); perplexity: the held-out text
  (WikiText-2's test split, HELDOUT_TOKENS, unless `eval.perplexity.max_tokens` caps it) in overlapping windows;
  speed: every timed and warm-up run of both models.
Replace it by the first jobs' own times (`logs/`) once they ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from harp import methods
from harp.artifacts import MAIN
from harp.config import Config, ModelConfig
from harp.eval.tasks import suite_task
from harp.workflow import Pipeline

GPU = "one H100 SXM (989 TFLOP/s bf16 dense, 3.35 TB/s)"
PEAK_FLOPS, BANDWIDTH = 989e12, 3.35e12
MFU = 0.3  # the share of peak HF transformers and lm-eval reach on prefill (assumed)
DECODE_BATCH = 16  # sequences decoded together (lm-eval's batch_size=auto on generation; assumed)
START_S, LOAD_BYTES_S = 30.0, 1e9  # per job: start-up seconds; weights read from a local disk, bytes per second
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # per weight, by dtype
HELDOUT_TOKENS = 300_000  # WikiText-2's raw test split in a Llama-class tokenizer (about 287k-340k)


@dataclass
class Estimate:
    model: str
    jobs: int = 0
    evaluate_s: float = 0.0
    other_s: float = 0.0  # calibration-based stages, perplexity, speed
    start_s: float = 0.0  # start-up and loading of every job
    disk_bytes: int = 0

    @property
    def hours(self) -> float:
        return (self.evaluate_s + self.other_s + self.start_s) / 3600


def _seconds(params: int, weight_bytes: int, read: float, generated: float = 0.0) -> float:
    return 2 * params * read / (PEAK_FLOPS * MFU) + generated * weight_bytes / BANDWIDTH / DECODE_BATCH


def _calibration_tokens(cfg: Config) -> int:
    c = cfg.calibration_set()
    return c.num_samples * c.seq_len


def weights(model: ModelConfig) -> tuple[int, int]:
    """`(weights, bytes at its dtype)` of a model with a published architecture (`model.architecture`): decoder
    linears and embeddings (and an untied head)."""
    from types import SimpleNamespace

    from harp.pruning.params import dense_linear_params

    arch = model.architecture
    embeddings = arch["vocab_size"] * arch["hidden_size"] * (1 if arch.get("tie_word_embeddings") else 2)
    count = dense_linear_params(SimpleNamespace(**arch)) + embeddings
    return count, count * BYTES[model.dtype]


def lines(p: Pipeline) -> list[str]:
    """The estimate of the suite's models that have a published architecture (none for the demo's), as text."""
    models = {m: p.model_config(m).model for m in p.models}
    sized = {m: weights(model) for m, model in models.items() if model.architecture}
    if not sized:
        return []
    disk = f"disk: weights and exports as above, datasets in the HF cache, results in {p.results_dir}/"
    return [*table(estimate(p, sized)), disk]


def estimate(p: Pipeline, sized: dict[str, tuple[int, int]]) -> list[Estimate]:
    """Per model of the suite with known weights (model -> (weights, bytes)): its jobs (the model's diagnose jobs
    aside), their GPU seconds by kind, and the disk of its weights and exports."""
    out = []
    for model, (params, size) in sized.items():
        e = Estimate(model)
        variants = [v for v in p.variants.values() if v.model == model]
        seconds = partial(_seconds, params, size)
        shards = len(p.eval_shards())
        for v in variants:
            cfg, evaluated = v.cfg, v.experiment == MAIN or p.ablation_eval
            tasks = [suite_task(t).work for t in p.tasks] if evaluated else []
            e.evaluate_s += sum(seconds(w.documents * w.read, w.documents * w.generated) for w in tasks if w)
            heldout = min(cfg.eval.perplexity.max_tokens or HELDOUT_TOKENS, HELDOUT_TOKENS)
            e.other_s += seconds(heldout * cfg.eval.perplexity.window / cfg.eval.perplexity.stride)
            if "calibration" in cfg.prune_inputs():
                e.other_s += seconds(_calibration_tokens(cfg))
            if v.method == methods.SEARCHED and cfg.searches_alphas():
                grid = len(cfg.method.search.grid) * cfg.layer_count()
                e.other_s += seconds(grid * _calibration_tokens(cfg))
            if v.experiment == MAIN and v.method in p.speed_methods:
                s = cfg.speed
                runs = 2 * (s.warmup + s.repeats) * s.batch_size  # the original model and the pruned one
                e.other_s += seconds(runs * sum(s.seq_lens), runs * s.decode_tokens * len(s.seq_lens))
            e.jobs += 2 + (shards if evaluated else 0)  # prune, perplexity, evaluation shards
            e.jobs += v.method == methods.SEARCHED  # its search
            exported = v.experiment == MAIN and v.method in p.export_methods
            e.disk_bytes += size if exported else 0
        e.jobs += len({v.cfg.calibration_file() for v in variants})
        e.jobs += sum(1 for v in variants if v.experiment == MAIN and v.method in p.speed_methods)
        e.start_s = e.jobs * (START_S + size / LOAD_BYTES_S)
        e.disk_bytes += size
        out.append(e)
    return out


def table(estimates: list[Estimate]) -> list[str]:
    """The estimate as lines of text: per model, and the total."""
    head = f"{'model':18s} {'jobs':>5s} {'evaluate':>9s} {'other':>7s} {'start-up':>9s} {'GPU-h':>7s} {'disk':>8s}"
    rows = [
        f"{e.model:18s} {e.jobs:5d} {e.evaluate_s / 3600:8.1f}h {e.other_s / 3600:6.1f}h {e.start_s / 3600:8.1f}h "
        f"{e.hours:7.1f} {e.disk_bytes / 1e9:6.1f}GB"
        for e in estimates
    ]
    total = sum(e.hours for e in estimates), sum(e.disk_bytes for e in estimates) / 1e9
    lines = [
        head,
        *rows,
        f"{'total':18s} {sum(e.jobs for e in estimates):5d} {'':28s} {total[0]:7.1f} {total[1]:6.1f}GB",
    ]
    return [f"GPU hours, estimated on {GPU} from the plan (not measured; how: harp/estimate.py):"] + [
        f"  {line}" for line in lines
    ]
