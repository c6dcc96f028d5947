"""The dense side of a library: one Chroma collection, embedded or behind a `chroma run` server.

Chroma never embeds anything itself here (its default embedding function would try to download
a model): vectors always come from our `Embedder`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import chromadb
import numpy as np

from engine.chunking import Chunk


class VectorStoreError(Exception):
    """The vector store cannot be reached or written; the message says which and where."""


def open_client(persist_dir: Path, chroma_url: str | None):
    """An embedded client on `persist_dir`, or an HTTP client when `chroma_url` is set."""
    settings = chromadb.Settings(anonymized_telemetry=False)
    if not chroma_url:
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
            f"cannot reach the Chroma server at {chroma_url} ({error})"
        ) from error


class VectorStore:
    def __init__(self, persist_dir: Path, collection: str, chroma_url: str | None = None):
        self.client = open_client(persist_dir, chroma_url)
        self.collection = self.client.get_or_create_collection(
            collection, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        self.max_batch = self.client.get_max_batch_size()

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
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
        self.collection.delete(where={"doc_id": doc_id})

    def count(self, doc_id: str | None = None) -> int:
        if doc_id is None:
            return self.collection.count()
        return len(self.collection.get(where={"doc_id": doc_id}, include=[])["ids"])

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
        result = self.collection.query(
            query_embeddings=[vector], n_results=n, where=where, include=["distances"]
        )
        return [
            (chunk_id, 1.0 - distance)
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        ]
