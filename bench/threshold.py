"""Confidence-threshold decoding (Fast-dLLM) against the linear schedule: forward passes saved.

    python bench/threshold.py [--model DIR_OR_HUB_ID] [--train-steps 600]
                              [--thresholds 0.9 0.7 0.5] [--tokens 64]

Prints JSON on stdout (progress on stderr). With random weights every proposal is nearly uniform,
so no proposal ever reaches a threshold and the rule commits one token a step; a threshold can only
be measured with a model that has learnt something. So this benchmark first trains a small BERT
masked diffusion LM (LLaDA's objective: mask each token with probability t ~ U(0, 1), predict the
masked ones) for a fixed number of steps on the library's own text: the sample documents, and
the corpus of `../shared/corpus` when present, with a BPE tokenizer trained on the same text. The
model is saved and loaded through `from_pretrained`, like any checkpoint.

With `--model`, a real checkpoint (a folder or a hub id) is used instead and nothing is trained:
that is the measurement that matters. On this 2-core machine the trained model stays on the
"unigram plateau" of masked LM training for the few hundred steps a benchmark can afford (loss
near the unigram entropy, committed confidence about 0.04), so no proposal reaches a threshold
and every variant but `linear-4` takes the same passes as `linear-1`: the rule costs nothing
where the model is unsure, and saves passes only where it is confident.

Then the engine drafts the same 4 sections from a library of the sample documents with:
- `linear-1`: the linear schedule at one token per block per step (LLaDA's reference cost: as
  many forward passes as tokens);
- `linear-4`: four tokens per block per step (a fixed 4x fewer passes);
- `threshold-τ`: commit every proposal whose confidence is at least τ, and always the most
  confident one (Fast-dLLM's rule), so a block never takes longer than `linear-1`.
Per variant: forward passes (batched steps until every block is done), tokens committed per pass,
passes saved against `linear-1`, the share of positions whose final token equals `linear-1`'s
(how far the result moves), and the mean confidence of the committed tokens. Greedy proposals
(temperature 0), one seed, fp32.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.config import Settings  # noqa: E402
from engine.documents import parse_pdf  # noqa: E402
from engine.draft import DraftSettings  # noqa: E402
from engine.testmodels import train_tiny_tokenizer  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

SAMPLE_DIR = REPO_ROOT / "sample_docs"
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
INSTRUCTION = "Draft the data protection clauses of a services agreement, following the sources."
HEADINGS = ["Security of processing", "Data retention", "Termination", "Confidentiality"]
WINDOW = 128


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def library_text() -> list[str]:
    """The page texts of the sample documents and, when present, the corpus."""
    pdfs = sorted(SAMPLE_DIR.glob("*.pdf")) + sorted(CORPUS_DIR.glob("*.pdf"))
    pages = []
    for pdf in pdfs:
        parsed = parse_pdf(pdf.read_bytes(), filename=pdf.name, max_pages=5000)
        pages += [page.text for page in parsed.pages if page.text.strip()]
    return pages


def train_model(
    folder: Path, pages: list[str], steps: int, vocab: int, batch: int, seed: int
) -> dict:
    """Train a small BERT with the masked diffusion objective and save it to `folder`."""
    torch.manual_seed(seed)
    tokenizer: PreTrainedTokenizerFast = train_tiny_tokenizer(vocab, pages)
    ids = torch.tensor(
        [i for page in pages for i in tokenizer(page, add_special_tokens=False)["input_ids"]]
    )
    windows = ids[: len(ids) // WINDOW * WINDOW].view(-1, WINDOW)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForMaskedLM(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=5e-4, total_steps=steps)
    started, losses = time.perf_counter(), []
    model.train()
    for number in range(steps):
        rows = windows[torch.randint(len(windows), (batch,))]
        t = torch.rand(batch, 1).clamp(min=0.05)
        masked = torch.rand(rows.shape) < t
        inputs = rows.masked_fill(masked, tokenizer.mask_token_id)
        labels = rows.masked_fill(~masked, -100)
        loss = model(input_ids=inputs, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if number % 100 == 0:
            log(f"train step {number}: loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tail = losses[-50:]
    return {
        "training_tokens": int(ids.numel()),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "vocab": len(tokenizer),
        "steps": steps,
        "batch": batch,
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(sum(tail) / len(tail), 3),
    }


def draft_once(
    workspace: Workspace, model: str | Path, tokens: int, steps: int, tau: float | None
) -> tuple[int, torch.Tensor, float, float]:
    settings = DraftSettings(
        model=str(model),
        steps=steps,
        block_tokens=tokens,
        passages=2,
        refresh_every=4,
        threshold=tau,
        context_cache=False,
        int8=False,
    )
    drafter = workspace.drafter(str(model))
    draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=0)
    started = time.perf_counter()
    for _ in drafter.run(draft):
        pass
    seconds = time.perf_counter() - started
    assert draft.done
    tokens_now = torch.cat([block.canvas.tokens for block in draft.blocks])
    confidence = torch.cat([block.canvas.confidence for block in draft.blocks])
    return draft.step, tokens_now, float(confidence.mean()), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a checkpoint (folder or hub id) to draft with, untrained")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per block")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.7, 0.5])
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="palimpsest-threshold-") as scratch:
        root = Path(scratch)
        if args.model:
            model, training = args.model, {"checkpoint": args.model}
        else:
            pages = library_text()
            log(f"training on {len(pages)} pages")
            model = root / "model"
            training = train_model(model, pages, args.train_steps, args.vocab, args.batch, seed=0)
        workspace = Workspace(Settings(library_dir=root / "library"))
        for pdf in sorted(SAMPLE_DIR.glob("*.pdf")):
            workspace.library.ingest(pdf)

        variants = {"linear-1": (args.tokens, None), "linear-4": (args.tokens // 4, None)}
        variants |= {f"threshold-{tau}": (args.tokens, tau) for tau in args.thresholds}
        results, reference = {}, None
        for name, (steps, tau) in variants.items():
            passes, tokens, confidence, seconds = draft_once(
                workspace, model, args.tokens, steps, tau
            )
            reference = tokens if reference is None else reference
            baseline = results["linear-1"]["forward_passes"] if results else passes
            committed = len(HEADINGS) * args.tokens
            results[name] = {
                "forward_passes": passes,
                "tokens_per_pass": round(committed / passes, 2),
                "passes_saved_vs_linear_1": round(1 - passes / baseline, 3),
                "same_tokens_as_linear_1": round(float((tokens == reference).float().mean()), 3),
                "mean_committed_confidence": round(confidence, 3),
                "seconds": round(seconds, 2),
            }
            log(f"{name}: {results[name]}")

    print(
        json.dumps(
            {
                "machine": {
                    "threads": torch.get_num_threads(),
                    "python": platform.python_version(),
                },
                "model": training,
                "draft": {"sections": len(HEADINGS), "block_tokens": args.tokens},
                "variants": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
