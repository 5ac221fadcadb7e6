"""The optimiser builder: fused Adam where PyTorch has it, the same update as the reference loop."""

from __future__ import annotations

import pytest
import torch

from ganreg.recipe import OptimizerSpec
from ganreg.train.optim import build_optimizer


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_adam_on_cpu_makes_the_reference_update(name: str) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(7, 5), torch.randn(5)]
    grads = [[torch.randn_like(w) for w in weights] for _ in range(4)]
    spec = OptimizerSpec(name=name, lr=1e-2, betas=(0.0, 0.9), weight_decay=0.01)
    params = [torch.nn.Parameter(w.clone()) for w in weights]
    opt = build_optimizer(params, spec)
    assert opt.defaults["fused"] is True
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    ref_params = [torch.nn.Parameter(w.clone()) for w in weights]
    ref = cls(ref_params, lr=1e-2, betas=(0.0, 0.9), eps=spec.eps, weight_decay=0.01, foreach=False)
    for step in grads:
        for p, q, g in zip(params, ref_params, step):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q)


def test_frozen_parameters_are_left_out() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2), requires_grad=False)
    opt = build_optimizer([a, b], OptimizerSpec(name="adam", lr=1e-3))
    assert opt.param_groups[0]["params"] == [a]
