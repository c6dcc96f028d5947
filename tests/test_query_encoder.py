"""The numpy query encoder gives sentence-transformers' vectors, and steps aside for a model it
does not implement."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from engine.config import Settings
from engine.embeddings import Embedder, EmbeddingModelError
from engine.query_encoder import QueryEncoder

TEXTS = [
    "how much notice to terminate for convenience",
    "",
    "Ünïcode – “quotes”, accents and 日本語 characters",
    "THE SUPPLIER SHALL INDEMNIFY the customer against all losses arising from a breach.",
    # Longer than the model's 256-token window: both must cut it at the same place.
    "The Supplier shall indemnify the Customer against every loss, cost and claim. " * 40,
]


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(Settings().embedding_model)


def test_packaged_model_vectors_match_sentence_transformers(reference):
    encoder = QueryEncoder.load(Settings().embedding_model)
    assert encoder is not None, "the packaged model is a plain mean-pooled BERT folder"
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    together = encoder.embed(TEXTS)  # one padded batch
    one_by_one = np.stack([encoder.embed([text])[0] for text in TEXTS])
    assert together.dtype == np.float32 and together.shape == expected.shape
    np.testing.assert_allclose(together, expected, atol=1e-5)
    np.testing.assert_allclose(one_by_one, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_another_pooling_falls_back_to_sentence_transformers(tmp_path):
    """A model the numpy encoder does not implement (here: CLS pooling) is embedded by
    sentence-transformers, with that model's own pooling."""
    packaged = Settings().embedding_model
    folder = tmp_path / "cls-pooled"
    shutil.copytree(packaged, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(f"{packaged}/model.safetensors")
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))

    assert QueryEncoder.load(str(folder)) is None
    embedder = Embedder(str(folder))
    cls_vectors = embedder.embed_queries(TEXTS[:2])
    expected = SentenceTransformer(str(folder)).encode(TEXTS[:2], normalize_embeddings=True)
    np.testing.assert_allclose(cls_vectors, expected, atol=1e-6)
    mean_vectors = QueryEncoder.load(packaged).embed(TEXTS[:2])
    assert not np.allclose(cls_vectors, mean_vectors, atol=1e-3)


def test_embedder_loads_sentence_transformers_only_to_embed_passages():
    embedder = Embedder(Settings().embedding_model)
    query = embedder.embed_query("notice period")
    assert query.shape == (embedder.dimension,) and not embedder.loaded
    passage = embedder.embed(["notice period"])[0]
    assert embedder.loaded
    np.testing.assert_allclose(query, passage, atol=1e-5)


def test_a_model_that_cannot_load_says_how_to_provide_one(tmp_path):
    embedder = Embedder(str(tmp_path / "missing-model"))
    with pytest.raises(EmbeddingModelError, match="PALIMPSEST_EMBEDDING_MODEL"):
        embedder.embed(["text"])
