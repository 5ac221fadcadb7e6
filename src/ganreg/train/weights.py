"""Starting weights for a recipe's networks (``generator.weights``, ``discriminator.weights``,
``text_encoder.weights``): ganreg's own checkpoints, plain state dicts, and the original projects'
checkpoints where the component knows their layout.

A file is read with ``torch.load(weights_only=True)``: tensors and plain containers, never code.
What it may hold, tried in order:

* a ganreg checkpoint (``format: 1``, written by ``ganreg run``): the network of the same kind
  (for the generator, its EMA copy when the run kept one: what ``generate`` and ``eval`` use);
* whatever the component's ``adapt_checkpoint(obj)`` returns, when it defines one: a
  plugin's way to read its original project's files (DF-GAN's ``state_epoch_*.pth`` holds
  ``{"model": {"netG", "netD", "netC"}}``);
* a flat state dict (``{name: tensor}``), such as DAMSM's ``text_encoder200.pth``.

A ``module.`` prefix (DataParallel / DDP) is dropped. Shapes or names that do not fit are a
:class:`~ganreg.errors.UserError` naming the first mismatches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganreg.errors import UserError
from ganreg.kinds import SECTION_KINDS

EMA_KEYS = {"generator": "ema", "image_encoder": "ema_image_encoder"}
"""Where a ganreg checkpoint keeps the exponential moving average of a network (``AveragedModel`` state)."""


def ema_state(averaged: dict[str, Any]) -> dict[str, Any]:
    """The network's state dict inside the state of its ``torch.optim.swa_utils.AveragedModel`` (whose
    keys are ``module.<name>``; ``n_averaged`` is the average's own)."""
    return {k.removeprefix("module."): v for k, v in averaged.items() if k.startswith("module.")}


def read_weights(path: Path, module: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """The state dict for ``module`` (a ``kind`` network) found in the file at ``path``."""
    if not path.is_file():
        raise UserError(f"{kind} weights not found: {path}", f"check {kind}.weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle that would run code
        raise UserError(
            f"cannot read {kind} weights {path} ({type(exc).__name__})",
            "pass a file written by torch.save holding tensors (a state dict or a checkpoint)",
        ) from None
    state: Any = None
    if isinstance(obj, dict) and obj.get("format") == 1 and isinstance(obj.get("models"), dict):
        state = obj["models"].get(kind)
        ema = obj.get(EMA_KEYS.get(kind, ""))  # G and its image encoder: the averages, as generate uses them
        if isinstance(ema, dict):
            state = ema_state(ema)
    adapt = getattr(module, "adapt_checkpoint", None)
    if state is None and callable(adapt):
        state = adapt(obj)
    if state is None and isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    if not isinstance(state, dict):
        raise UserError(
            f"{path} holds no {kind} weights that {type(module).__name__} can read",
            "pass a state dict of this network, a ganreg checkpoint, or the original project's checkpoint",
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(module: nn.Module, path: Path, kind: str) -> None:
    """Load ``path`` into ``module`` strictly (every parameter, no extras)."""
    state = read_weights(path, module, kind)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        detail = "; ".join(str(exc).split("\n\t")[1:3]) or str(exc)
        raise UserError(
            f"{kind} weights {path} do not fit the recipe's {kind}: {detail}",
            f"match {kind}.params to the weights"
            + (" (DAMSM: embedding_dim 300, hidden 256) and use the vocabulary they were trained with "
               "(text_encoder.vocabulary)" if kind == "text_encoder" else " (e.g. nf and image_size)"),
        ) from None


def load_recipe_weights(modules: dict[str, nn.Module], specs: dict[str, Any]) -> list[str]:
    """Load every ``<kind>.weights`` the recipe gives; returns the kinds loaded."""
    loaded = []
    for kind in SECTION_KINDS:
        spec = specs.get(kind)
        if spec is not None and spec.weights is not None:
            load_weights(modules[kind], Path(spec.weights), kind)
            loaded.append(kind)
    return loaded
