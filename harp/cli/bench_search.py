"""Benchmark: cached vs plain full-forward alpha search on a Llama-3.1-8B-deep config.

    python -m harp.cli.bench_search            # 32 layers, L = 8, small width, random weights

Prints both wall times, their ratio and whether the alphas (and every perplexity) agree.
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=32, help="decoder layers (Llama-3.1-8B: 32)")
    parser.add_argument("--prune", type=int, default=8, help="layers searched, L (Llama-3.1-8B: 8)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (small: this is about depth)")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=16, help="calibration sequences")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from transformers import LlamaConfig, LlamaForCausalLM

    import harp

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=int(3.5 * args.hidden),
        num_hidden_layers=args.layers,
        num_attention_heads=8,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, args.vocab, (args.samples, args.seq_len), generator=torch.Generator().manual_seed(1))
    timings, results = {}, {}
    for mode in ("cached", "plain"):
        start = time.perf_counter()
        results[mode] = harp.search_alphas(model, ids, args.prune, cached=(mode == "cached"), progress=False)
        timings[mode] = time.perf_counter() - start
    same = results["cached"].alphas == results["plain"].alphas
    same_trace = results["cached"].trace == results["plain"].trace
    print(
        f"config: {args.layers} layers, L={args.prune}, hidden {args.hidden}, vocab {args.vocab}, "
        f"{args.samples}x{args.seq_len} calibration tokens, {torch.get_num_threads()} threads"
    )
    print(f"plain full-forward search: {timings['plain']:.2f} s")
    print(f"cached search:             {timings['cached']:.2f} s")
    print(f"speedup (plain / cached):  {timings['plain'] / timings['cached']:.2f}x")
    print(f"alphas agree: {same}; every perplexity identical: {same_trace}")
    print(f"alphas: {dict(sorted(results['cached'].alphas.items(), reverse=True))}")


if __name__ == "__main__":
    main()
