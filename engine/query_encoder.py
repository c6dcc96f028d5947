"""Query embeddings without torch: a BERT sentence encoder run in numpy.

A search embeds a handful of short queries. Importing sentence-transformers and torch for that
costs seconds per process (most of a cold `palimpsest search`), while the forward pass of a
6-layer MiniLM over a dozen tokens costs a millisecond in numpy. So when the embedding model is a
sentence-transformers folder of the plain kind (a BERT `model.safetensors`, `tokenizer.json`,
mean pooling, then normalisation: the packaged all-MiniLM-L6-v2 is one), queries are embedded
here; chunks, many at a time, still go through sentence-transformers (`engine.embeddings`).

The forward pass is BERT's as transformers' `BertModel` computes it in eval mode (post-layer-norm
blocks, exact erf GELU, padded keys masked out of the softmax); then sentence-transformers'
`Pooling(mean)` and `Normalize`. tests/test_query_encoder.py checks the vectors against
sentence-transformers itself. Anything else (another architecture, pooling or a hub id) gets
`None` from `QueryEncoder.load`, and the caller uses sentence-transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.special import erf

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = np.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plain_mean_pooled_bert(folder: Path) -> bool:
    """Whether the folder holds a BERT followed by mean pooling and normalisation, nothing else."""
    modules = _json(folder / "modules.json")
    config = _json(folder / "config.json")
    pooling = _json(folder / "1_Pooling" / "config.json")
    if (
        not isinstance(modules, list)
        or not isinstance(config, dict)
        or not isinstance(pooling, dict)
    ):
        return False
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    only_mean = pooling.get("pooling_mode_mean_tokens") and not any(
        value
        for key, value in pooling.items()
        if key.startswith("pooling_mode_") and "mean_tokens" not in key
    )
    return (
        kinds == ["Transformer", "Pooling", "Normalize"]
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and bool(only_mean)
        and (folder / WEIGHTS_FILE).is_file()
        and (folder / TOKENIZER_FILE).is_file()
    )


class QueryEncoder:
    """Unit-length float32 embeddings of short texts, from a plain BERT sentence encoder."""

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        st_config = _json(folder / "sentence_bert_config.json") or {}
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.weights = load_file(str(folder / WEIGHTS_FILE))
        self._transposed: dict[str, np.ndarray] = {}
        self.prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self.weights else ""
        max_length = int(st_config.get("max_seq_length", config["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self.dimension = int(config["hidden_size"])

    @classmethod
    def load(cls, model: str) -> QueryEncoder | None:
        """The encoder for the sentence-transformers folder `model`, or None when it is not a
        plain mean-pooled BERT folder (the caller then embeds with sentence-transformers)."""
        folder = Path(model)
        if not folder.is_dir() or not _plain_mean_pooled_bert(folder):
            return None
        return cls(folder)

    def _w(self, name: str) -> np.ndarray:
        return self.weights[self.prefix + name]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """`x @ weight.T + bias` as one 2-D product with the transposed weight kept contiguous
        (numpy runs a stacked or transposed product far slower than one BLAS call)."""
        if name not in self._transposed:
            self._transposed[name] = np.ascontiguousarray(self._w(f"{name}.weight").T)
        weight = self._transposed[name]
        flat = x.reshape(-1, x.shape[-1]) @ weight + self._w(f"{name}.bias")
        return flat.reshape(*x.shape[:-1], weight.shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self._embeddings(ids, types)
        # Padded keys get the dtype's lowest value before the softmax, as BertModel does.
        bias = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min
        for layer in range(self.layers):
            hidden = self._layer(hidden, bias, f"encoder.layer.{layer}")
        summed = (hidden * mask[:, :, None]).sum(1)
        pooled = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _embeddings(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        positions = np.arange(ids.shape[1])
        summed = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.token_type_embeddings.weight")[types]
            + self._w("embeddings.position_embeddings.weight")[positions][None]
        )
        return _layer_norm(
            summed,
            self._w("embeddings.LayerNorm.weight"),
            self._w("embeddings.LayerNorm.bias"),
            self.eps,
        )

    def _layer(self, x: np.ndarray, bias: np.ndarray, name: str) -> np.ndarray:
        batch, length, width = x.shape
        head_width = width // self.heads

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, head_width).transpose(0, 2, 1, 3)

        query = heads(self._linear(x, f"{name}.attention.self.query"))
        key = heads(self._linear(x, f"{name}.attention.self.key"))
        value = heads(self._linear(x, f"{name}.attention.self.value"))
        scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(head_width) + bias
        context = (_softmax(scores) @ value).transpose(0, 2, 1, 3).reshape(batch, length, width)
        attended = _layer_norm(
            self._linear(context, f"{name}.attention.output.dense") + x,
            self._w(f"{name}.attention.output.LayerNorm.weight"),
            self._w(f"{name}.attention.output.LayerNorm.bias"),
            self.eps,
        )
        inner = _gelu(self._linear(attended, f"{name}.intermediate.dense"))
        return _layer_norm(
            self._linear(inner, f"{name}.output.dense") + attended,
            self._w(f"{name}.output.LayerNorm.weight"),
            self._w(f"{name}.output.LayerNorm.bias"),
            self.eps,
        )
