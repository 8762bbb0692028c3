"""The embedded default model: a small Llama (GQA, RoPE) trained here, offline, on the pydoc corpus.

It exists so the whole pipeline runs on a laptop CPU with no download. It is a real HF
`LlamaForCausalLM` saved with `save_pretrained`, so every code path (loading, pruning, lm-eval)
is the one used for the paper's models. Numbers it produces are labelled "tiny" wherever shown.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from harp.data.corpus import corpus_splits
from harp.io import atomic_dir

EOS = "<|endoftext|>"


@dataclass
class TinyConfig:
    """Sized so that training finishes in about 2 minutes on 2 CPU cores."""

    vocab_size: int = 2048
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 8
    num_heads: int = 6
    num_kv_heads: int = 2
    max_position_embeddings: int = 2048
    seq_len: int = 512  # the context it is trained for (conf/model/tiny.yaml max_length)
    short_seq_len: int = 128  # most steps use short windows (cheaper); every `long_every`-th the full one
    long_every: int = 4
    tokens_per_step: int = 2048
    steps: int = 300
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0

    def llama_config(self, vocab_size: int, **special_tokens):
        """The HF `LlamaConfig` of this architecture (`special_tokens`: bos/eos/pad token ids)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=10000.0,
            tie_word_embeddings=True,
            **special_tokens,
        )


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2 style), wrapped as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS)


def encode_documents(tokenizer, docs: list[str]) -> torch.Tensor:
    """One token stream: each document followed by EOS."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


@torch.inference_mode()
def stream_perplexity(model, stream: torch.Tensor, seq_len: int, batch_size: int = 16) -> float:
    """Perplexity over non-overlapping windows of `seq_len` tokens."""
    n = (len(stream) - 1) // seq_len
    windows = stream[: n * seq_len].view(n, seq_len)
    nll, count = 0.0, 0
    for i in range(0, n, batch_size):
        batch = windows[i : i + batch_size]
        logits = model(batch, use_cache=False).logits[:, :-1].float()
        nll += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
        ).item()
        count += batch[:, 1:].numel()
    return math.exp(nll / count)


def build_tiny(out_dir: str | Path, cfg: TinyConfig | None = None, progress: bool = True) -> dict:
    """Train the tokenizer and model, save both to `out_dir`, return the training summary."""
    from transformers import LlamaForCausalLM

    cfg = cfg or TinyConfig()
    torch.manual_seed(cfg.seed)
    splits = corpus_splits()
    tokenizer = train_tokenizer(splits.train, cfg.vocab_size)
    train = encode_documents(tokenizer, splits.train)
    heldout = encode_documents(tokenizer, splits.heldout)

    config = cfg.llama_config(
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.time()
    model.train()
    bar = tqdm(range(cfg.steps), desc="training tiny model", disable=not progress)
    for step in bar:
        length = cfg.seq_len if step % cfg.long_every == cfg.long_every - 1 else cfg.short_seq_len
        offsets = torch.randint(0, len(train) - length - 1, (cfg.tokens_per_step // length,), generator=gen)
        batch = torch.stack([train[o : o + length] for o in offsets.tolist()])
        loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    summary = {
        "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_tokens": len(train),
        "heldout_tokens": len(heldout),
        "heldout_perplexity": stream_perplexity(model, heldout, cfg.seq_len),
        "train_seconds": round(time.time() - start, 1),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "harp_tiny.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
