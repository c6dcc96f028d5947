"""Models loaded on two threads at once (the warm-up loading the embedding model while a draft
loads its denoiser) must both come out whole: transformers' `from_pretrained` patches the shared
`PreTrainedModel` class while it loads, so overlapping loads once left a masked LM with its tied
output layer never materialised ("Cannot copy out of meta tensor")."""

from __future__ import annotations

import threading

import torch
from transformers import PreTrainedModel

from engine.config import default_embedding_model
from engine.denoiser import load_denoiser
from engine.embeddings import Embedder
from engine.testmodels import build_tiny_bert


def test_a_denoiser_and_the_embedder_loading_at_once_both_load_whole(tmp_path):
    folder = build_tiny_bert(tmp_path / "tiny-bert")
    tie_weights = PreTrainedModel.tie_weights
    embedder = Embedder(default_embedding_model())
    errors: list[BaseException] = []
    denoisers = []
    embedder_done = threading.Event()

    def load_embedder() -> None:
        try:
            for _ in range(3):  # each load a fresh model, to keep overlapping the other thread
                embedder._model = None
                assert embedder.model.encode(["a notice period"]).shape[-1] > 0
        except BaseException as error:
            errors.append(error)
        finally:
            embedder_done.set()

    def load_denoisers() -> None:
        try:
            while not embedder_done.is_set() or not denoisers:
                denoisers.append(load_denoiser(folder))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=load_embedder), threading.Thread(target=load_denoisers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    assert PreTrainedModel.tie_weights is tie_weights  # not left switched off for the process
    for denoiser in denoisers:
        model = denoiser.model
        decoder = model.get_output_embeddings().weight
        assert decoder.device.type != "meta"
        assert decoder.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied
        assert torch.isfinite(decoder).all()
