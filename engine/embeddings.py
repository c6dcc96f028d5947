"""Sentence embeddings for chunks and queries (sentence-transformers, offline by default)."""

from __future__ import annotations

import numpy as np

from engine.errors import PalimpsestError, first_line


class EmbeddingModelError(PalimpsestError):
    """The embedding model could not be loaded; the message says how to provide one."""


class Embedder:
    """A sentence-transformers model that turns texts into unit-length float32 vectors."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(model, device=device)
        except Exception as error:
            raise EmbeddingModelError(
                f"cannot load the embedding model {model!r} ({first_line(error)}); "
                "set PALIMPSEST_EMBEDDING_MODEL to a sentence-transformers folder or hub id"
            ) from error
        self.name = model
        self.batch_size = batch_size
        self.tokenizer = self.model.tokenizer
        self.dimension = self.model.get_embedding_dimension()

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of the model's tokens in `text` (special tokens excluded)."""
        encoding = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return encoding["offset_mapping"]

    def embed(self, texts: list[str]) -> np.ndarray:
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

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
