"""Block-causal decoding (SDAR, Fast-dLLM v2) with the exact KV cache against a full recompute.

    python bench/block_causal.py [--shape small|sdar-1.7b|sdar-4b|sdar-8b|fast-dllm-v2-7b]
                                 [--rows 2] [--prompt 64] [--blocks 1 4 16 32 128]
                                 [--block-size N] [--repeats 5]
                                 [--device cpu|cuda] [--dtype float32|bfloat16]

Prints JSON on stdout. Random weights (timing does not depend on them). For each count of
finished blocks k, `rows` sections of `prompt` prompt tokens plus k finished blocks ask for the
logits of their current block:
- `cached_ms`: a step of `BlockCausalCache` with the prefix already cached (every step inside a
  block): it runs only the current block, attending to the cache;
- `cached_block_done_ms`: the first step of a new block, which also computes the final keys and
  values of the block just finished (two blocks), once per block;
- `full_ms`: the uncached block-causal pass over the whole row up to the current block (the
  least a full recompute can do; the engine's dense families also run the masks after it).
`cached_tokens` and `full_tokens` count the token positions each runs through the network (all
rows), which no machine load can blur. The cached cost stays flat as the section grows (only
attention over the cache grows, linearly and cheaply), the full recompute grows with the
context. `--shape sdar-*` builds the published
SDAR configs (JetAstra/SDAR `training/model/*/config.json`; 1.7B from Qwen3-1.7B's shape),
`fast-dllm-v2-7b` the published Fast-dLLM v2 one (blocks of 32); they need a GPU
(`--device cuda --dtype bfloat16`). `--block-size` overrides the shape's block length.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.architectures.block_causal_lm import BlockCausalConfig, BlockCausalLM  # noqa: E402
from engine.block_causal import BlockCausalCache  # noqa: E402

QWEN3_VOCAB = 151936
SDAR_LAYERS = {"head_dim": 128, "block_size": 4, "qk_norm": True, "norm_in_float32": True}
SHAPES: dict[str, BlockCausalConfig] = {
    "small": BlockCausalConfig(
        vocab_size=8192,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        block_size=4,
        qk_norm=True,
    ),
    "sdar-1.7b": BlockCausalConfig(
        vocab_size=QWEN3_VOCAB,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        tie_word_embeddings=True,
        **SDAR_LAYERS,
    ),
    "sdar-4b": BlockCausalConfig(
        vocab_size=QWEN3_VOCAB,
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        **SDAR_LAYERS,
    ),
    "sdar-8b": BlockCausalConfig(
        vocab_size=QWEN3_VOCAB,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        **SDAR_LAYERS,
    ),
    "fast-dllm-v2-7b": BlockCausalConfig(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        head_dim=128,
        block_size=32,
        qkv_bias=True,
        logit_shift=1,
    ),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _build(config: BlockCausalConfig, device: torch.device, dtype: torch.dtype) -> BlockCausalLM:
    torch.manual_seed(0)
    with torch.device(device):
        model = BlockCausalLM(config).to(dtype)
    return model.requires_grad_(False).eval()


def _inputs(
    rows: int, context: int, block: int, vocab: int, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`rows` rows of `context` committed tokens and one block of masks after them; the
    positions are that block's."""
    generator = torch.Generator().manual_seed(context)
    ids = torch.randint(0, vocab - 1, (rows, context + block), generator=generator)
    ids[:, context:] = mask_id
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[:, context:] = True
    return ids, torch.ones_like(ids), positions


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(
    run: Callable[[], object], device: torch.device, before: Callable[[], object] = lambda: None
) -> float:
    before()
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return (time.perf_counter() - start) * 1000


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def measure(
    model: BlockCausalLM, rows: int, prompt: int, finished: int, repeats: int, device: torch.device
) -> dict[str, float | int]:
    block, mask_id = model.config.block_size, model.config.vocab_size - 1
    context = prompt // block * block + finished * block
    ids, mask, positions = _inputs(rows, context, block, model.config.vocab_size, mask_id)
    earlier = ids.clone()
    earlier[:, context - block :] = mask_id  # the block just finished, still masked
    earlier_positions = torch.zeros_like(positions)
    earlier_positions[:, context - block : context] = True
    cache = BlockCausalCache(model)
    full, cached, block_done = [], [], []
    with torch.inference_mode():
        cache.logits(ids, mask, positions)  # warm up, then the prefix is cached
        before = cache.forwarded_tokens
        cache.logits(ids, mask, positions)
        step_tokens = cache.forwarded_tokens - before
        for _ in range(repeats):
            cached.append(_time_ms(lambda: cache.logits(ids, mask, positions), device))
            full.append(_time_ms(lambda: model.logits(ids, mask, positions), device))
            block_done.append(
                _time_ms(
                    lambda: cache.logits(ids, mask, positions),
                    device,
                    before=lambda: cache.logits(earlier, mask, earlier_positions),
                )
            )
    return {
        "finished_blocks": finished,
        "context_tokens": context,
        "cached_tokens": step_tokens,
        "full_tokens": int(mask.sum()),
        "cached_ms": _median(cached),
        "cached_block_done_ms": _median(block_done),
        "full_ms": _median(full),
        "speedup": round(statistics.median(full) / statistics.median(cached), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--rows", type=int, default=2, help="sections stepping together")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens per row")
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 4, 16, 32, 128])
    parser.add_argument("--block-size", type=int, help="default: the shape's (SDAR 4, v2 32)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else torch.float32
    if args.dtype is None and device.type == "cuda":
        dtype = torch.bfloat16
    shape = SHAPES[args.shape]
    config = replace(shape, block_size=args.block_size or shape.block_size)
    model = _build(config, device, dtype)
    results = [measure(model, args.rows, args.prompt, k, args.repeats, device) for k in args.blocks]
    print(
        json.dumps(
            {
                "benchmark": "block_causal",
                "shape": args.shape,
                "config": config.__dict__,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "dtype": str(dtype).removeprefix("torch."),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": platform.machine(),
                "rows": args.rows,
                "prompt_tokens": args.prompt,
                "repeats": args.repeats,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
