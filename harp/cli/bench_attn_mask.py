"""Benchmark: attn_mask's mask optimisation time per layer, on the demo model and on one Llama-3.1-8B layer.

    python -m harp.cli.bench_attn_mask                 # conf/method/attn_mask.yaml's settings
    python -m harp.cli.bench_attn_mask --timed 2       # fewer timed 8B iterations

The demo model is the built one (`--tiny`, default results/models/tiny), or a random Llama of its
shape when it is not built; every layer runs the configured iterations. The 8B layer is
conf/model/llama3_1_8b.yaml's architecture with one decoder layer and random weights (float32, this
machine's device): a few iterations are timed and extrapolated to the configured count and to all
32 layers, which the output says. Calibration is random token ids of the configured count and
length (the timing does not depend on the tokens).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from harp.models.loading import resolve_device


def time_layers(model, settings, ids: torch.Tensor, iterations: int) -> tuple[list[float], float]:
    """Seconds of `iterations` mask-optimisation steps for each layer, and of capturing the layer inputs."""
    from harp.pruning import attn_mask, qk_masks

    layers = list(range(len(model.model.layers)))
    start = time.perf_counter()
    inputs = qk_masks.capture_inputs(model, ids, layers)
    capture = time.perf_counter() - start
    seconds = []
    for layer in layers:
        attn = qk_masks.attention_of(model, layer)
        start = time.perf_counter()
        with torch.enable_grad():
            attn_mask.optimise_layer(attn, inputs[layer], settings.lam, settings.step_size, iterations)
        if ids.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, capture


def demo_model(path: Path, device: str):
    """The built demo model, or a random Llama of the tiny model's shape (said in the output)."""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    from harp.models.tiny import TinyConfig

    if (path / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval(), f"built, {path}"
    config = TinyConfig().llama_config(TinyConfig.vocab_size)
    return LlamaForCausalLM(config).to(device).eval(), f"random weights ({path} is not built)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", type=Path, default=Path("results/models/tiny"), help="the built demo model")
    parser.add_argument("--timed", type=int, default=3, help="8B layer: iterations timed, then extrapolated")
    parser.add_argument(
        "--seq-len", type=int, default=None, help="calibration length (default: attn_mask's method.calibration.seq_len)"
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-8b", action="store_true", help="time the demo model only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoConfig, AutoModelForCausalLM

    from harp.cli._app import conf_dir
    from harp.workflow import compose

    cfg = compose(Path(conf_dir()), ["method=attn_mask", "model=llama3_1_8b"])
    settings, device = cfg.method.mask, resolve_device(args.device)
    calibration = cfg.calibration_set()
    samples, seq_len = calibration.num_samples, args.seq_len or calibration.seq_len
    print(
        f"settings: {settings.iterations} iterations, step {settings.step_size}, lambda {settings.lam}; "
        f"{samples} x {seq_len} calibration tokens; {device}, {torch.get_num_threads()} threads"
    )
    gen = torch.Generator().manual_seed(0)
    model, what = demo_model(args.tiny, device)
    ids = torch.randint(0, model.config.vocab_size, (samples, seq_len), generator=gen).to(device)
    seconds, capture = time_layers(model, settings, ids, settings.iterations)
    print(f"demo model ({what}): capture {capture:.2f} s, then per layer (s): {', '.join(f'{s:.2f}' for s in seconds)}")
    print(f"  all {len(seconds)} layers: {sum(seconds):.1f} s ({sum(seconds) / len(seconds):.2f} s per layer)")
    if args.skip_8b:
        return

    arch = dict(cfg.model.architecture) | {"num_hidden_layers": 1, "vocab_size": 1024}  # the layer is what is timed
    torch.manual_seed(0)
    big = AutoModelForCausalLM.from_config(AutoConfig.for_model(**arch), dtype=torch.float32).to(device).eval()
    ids = torch.randint(0, 1024, (samples, seq_len), generator=gen).to(device)
    (layer_s,), _ = time_layers(big, settings, ids, args.timed)
    per_iter = layer_s / args.timed
    layers = cfg.model.num_layers
    print(
        f"Llama-3.1-8B layer (random weights, hidden {arch['hidden_size']}): {args.timed} iterations timed, "
        f"{per_iter:.2f} s per iteration"
    )
    print(
        f"  EXTRAPOLATED to {settings.iterations} iterations: {per_iter * settings.iterations:.0f} s per layer, "
        f"{per_iter * settings.iterations * layers / 3600:.2f} h for all {layers} layers on this device"
    )


if __name__ == "__main__":
    main()
