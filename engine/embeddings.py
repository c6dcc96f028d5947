"""Sentence embeddings for chunks and queries (sentence-transformers, offline by default).

Chunks are embedded by sentence-transformers, loaded on first use. Queries are embedded by the
numpy encoder of `engine.query_encoder` when the model is a plain mean-pooled BERT folder (the
packaged one is), so a search never waits for torch; both give the same vectors to float
rounding (tests/test_query_encoder.py).
"""

from __future__ import annotations

import threading

import numpy as np

from engine.errors import PalimpsestError, first_line
from engine.model_loading import MODEL_LOADS
from engine.query_encoder import QueryEncoder


class EmbeddingModelError(PalimpsestError):
    """The embedding model could not be loaded; the message says how to provide one."""


class Embedder:
    """A sentence-transformers model that turns texts into unit-length float32 vectors."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 32):
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        try:
            self._queries = QueryEncoder.load(model)
        except Exception:  # an unreadable folder: sentence-transformers will say what is wrong
            self._queries = None

    @property
    def model(self):
        """The sentence-transformers model, loaded on first use (the first ingest, or a query
        when the model has no numpy encoder)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                try:
                    with MODEL_LOADS:
                        self._model = SentenceTransformer(self.name, device=self.device)
                except Exception as error:
                    raise EmbeddingModelError(
                        f"cannot load the embedding model {self.name!r} ({first_line(error)}); "
                        "set PALIMPSEST_EMBEDDING_MODEL to a sentence-transformers folder or hub id"
                    ) from error
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def dimension(self) -> int:
        if self._queries is not None:
            return self._queries.dimension
        return self.model.get_embedding_dimension()

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of the model's tokens in `text` (special tokens excluded)."""
        encoding = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return encoding["offset_mapping"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of passages, many at a time (sentence-transformers)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Embeddings of a few short texts (queries, a draft's sentences): in numpy when the
        model allows it, so no torch is needed."""
        if self._queries is None:
            return self.embed(texts)
        return self._queries.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]
