"""The dense side of a library: one Chroma collection, embedded or behind a `chroma run` server.

Chroma never embeds anything itself here (its default embedding function would try to download
a model): vectors always come from our `Embedder`. Every call that can fail (a server gone away,
a full disk) raises `VectorStoreError` with one line saying where and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import numpy as np

from engine.chunking import Chunk
from engine.errors import PalimpsestError, first_line

# `nearest_among` scores a list of at most this many chunks on their stored vectors itself
EXACT_MAX = 256


class VectorStoreError(PalimpsestError):
    """The vector store cannot be reached or written; the message says which and where."""


@contextmanager
def _failures_explained(action: str, where: str) -> Iterator[None]:
    try:
        yield
    except VectorStoreError:
        raise
    except Exception as error:
        raise VectorStoreError(
            f"cannot {action} the Chroma store at {where} ({first_line(error)})"
        ) from error


def open_client(persist_dir: Path, chroma_url: str | None):
    """An embedded client on `persist_dir`, or an HTTP client when `chroma_url` is set."""
    settings = chromadb.Settings(anonymized_telemetry=False)
    if not chroma_url:
        with _failures_explained("open", str(persist_dir)):
            return chromadb.PersistentClient(path=str(persist_dir), settings=settings)
    url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
    try:
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or 8000,
            ssl=url.scheme == "https",
            settings=settings,
        )
    except Exception as error:
        raise VectorStoreError(
            f"cannot reach the Chroma server at {chroma_url} ({first_line(error)}); "
            "is `chroma run` listening there?"
        ) from error


class VectorStore:
    def __init__(self, persist_dir: Path, collection: str, chroma_url: str | None = None):
        self.where = chroma_url or str(persist_dir)
        self.client = open_client(persist_dir, chroma_url)
        with _failures_explained("open a collection in", self.where):
            self.collection = self.client.get_or_create_collection(
                collection, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
            self.max_batch = self.client.get_max_batch_size()

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        with _failures_explained("write to", self.where):
            for start in range(0, len(chunks), self.max_batch):
                batch = chunks[start : start + self.max_batch]
                self.collection.add(
                    ids=[chunk.chunk_id for chunk in batch],
                    embeddings=vectors[start : start + self.max_batch],
                    metadatas=[
                        {"doc_id": chunk.doc_id, "page_index": chunk.page_index} for chunk in batch
                    ],
                )

    def delete_document(self, doc_id: str) -> None:
        with _failures_explained("delete from", self.where):
            self.collection.delete(where={"doc_id": doc_id})

    def count(self, doc_id: str | None = None) -> int:
        with _failures_explained("read", self.where):
            if doc_id is None:
                return self.collection.count()
            return len(self.collection.get(where={"doc_id": doc_id}, include=[])["ids"])

    def vectors_of(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of the given chunks (those that exist)."""
        if not chunk_ids:
            return {}
        with _failures_explained("read", self.where):
            result = self.collection.get(ids=list(chunk_ids), include=["embeddings"])
        return {
            chunk_id: np.asarray(vector, dtype=np.float32)
            for chunk_id, vector in zip(result["ids"], result["embeddings"], strict=True)
        }

    def nearest(
        self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None
    ) -> list[tuple[str, float]]:
        """Up to `n` (chunk_id, cosine similarity) pairs, most similar first."""
        if n <= 0:
            return []
        where = None
        if doc_ids:
            where = (
                {"doc_id": {"$in": list(doc_ids)}} if len(doc_ids) > 1 else {"doc_id": doc_ids[0]}
            )
        with _failures_explained("search", self.where):
            result = self.collection.query(
                query_embeddings=[vector], n_results=n, where=where, include=["distances"]
            )
        return [
            (chunk_id, 1.0 - distance)
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def nearest_among(
        self, vector: np.ndarray, n: int, chunk_ids: list[str]
    ) -> list[tuple[str, float]]:
        """Up to `n` (chunk_id, cosine similarity) pairs from `chunk_ids`, most similar first.

        Up to EXACT_MAX chunks are scored exactly on their stored vectors (reading 16 takes
        under a millisecond; Chroma's filtered HNSW search took 60 ms for them in 50k chunks);
        more are searched by Chroma among those ids (faster than a `where` on their documents).
        """
        if n <= 0 or not chunk_ids:
            return []
        if len(chunk_ids) <= EXACT_MAX:
            stored = self.vectors_of(chunk_ids)
            if not stored:
                return []
            found = list(stored)
            matrix = np.stack([stored[chunk_id] for chunk_id in found])
            query = np.asarray(vector, dtype=np.float32)
            norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
            similarity = matrix @ query / np.maximum(norms, 1e-12)
            best = np.argsort(-similarity, kind="stable")[:n]
            return [(found[i], float(similarity[i])) for i in best]
        with _failures_explained("search", self.where):
            result = self.collection.query(
                query_embeddings=[vector],
                n_results=min(n, len(chunk_ids)),
                ids=list(chunk_ids),
                include=["distances"],
            )
        return [
            (chunk_id, 1.0 - distance)
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        ]
