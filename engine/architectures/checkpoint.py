"""A published safetensors checkpoint read into a module built on the meta device, strictly.

Every architecture of this package loads the same way: `model.safetensors`, or the shards that
`model.safetensors.index.json` names; exactly the module's parameter names with its shapes (a
ValueError lists what is missing, unexpected or misshapen); floating tensors cast to the dtype
asked for; the tensors assigned to the module in place of its meta parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


def checkpoint_files(folder: Path) -> list[Path]:
    """`model.safetensors`, or the shards `model.safetensors.index.json` names."""
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    if (folder / SHARD_INDEX).is_file():
        weight_map = json.loads((folder / SHARD_INDEX).read_text(encoding="utf-8"))["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    raise FileNotFoundError(f"{folder}: neither {SINGLE_FILE} nor {SHARD_INDEX} found")


def read_tensors(files: list[Path], device: torch.device) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for path in files:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if name in tensors:
                    raise ValueError(f"{path}: tensor {name!r} appears in more than one shard")
                tensors[name] = handle.get_tensor(name)
    return tensors


def check_names(
    folder: Path,
    model: nn.Module,
    tensors: dict[str, Tensor],
    architecture: str,
    optional: frozenset[str] = frozenset(),
) -> None:
    """Exactly the module's names with its shapes (those in `optional` may be left out), or a
    ValueError listing the differences."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors) - optional)
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        f"{name} {tuple(tensors[name].shape)} (expected {expected[name]})"
        for name in set(expected) & set(tensors)
        if tuple(tensors[name].shape) != expected[name]
    )
    problems = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("wrong shapes", wrong_shape),
        )
        if names
    ]
    if problems:
        raise ValueError(
            f"{folder} does not match the {architecture} architecture; " + "; ".join(problems)
        )


def load_checkpoint(
    model: nn.Module,
    folder: Path,
    *,
    architecture: str,
    dtype: torch.dtype,
    device: torch.device,
    tied_head: tuple[str, str] | None = None,
) -> nn.Module:
    """`model` (built on the meta device) with the folder's weights, in eval mode without
    gradients. `tied_head` (head name, embedding name): the head shares the embedding, so a
    checkpoint may leave the head out; the caller ties the two afterwards."""
    tensors = read_tensors(checkpoint_files(folder), torch.device(device))
    optional = frozenset({tied_head[0]}) if tied_head else frozenset()
    check_names(folder, model, tensors, architecture, optional)
    if tied_head:
        tensors[tied_head[0]] = tensors[tied_head[1]]
    state = {
        name: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for name, tensor in tensors.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    return model.requires_grad_(False).eval()
