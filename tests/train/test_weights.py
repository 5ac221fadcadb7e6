"""Starting weights from files: ganreg checkpoints, plain state dicts, and DF-GAN's official
``state_epoch_*.pth`` (``{"model": {"netG", "netD", "netC"}, ...}``, DDP ``module.`` prefixes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganreg.errors import UserError
from ganreg.train.trainer import start_or_resume

DFGAN = {
    "generator": {"name": "dfgan:dfgan", "params": {"nf": 4}},
    "discriminator": {"name": "dfgan:dfgan", "params": {"nf": 4}},
    "losses": [{"name": "dfgan:hinge"}, {"name": "dfgan:hinge_generator"}, {"name": "dfgan:magp"}],
    "data.image_size": 64,
}


def official_g_keys(nf: int, imsize: int) -> set[str]:
    """NetG's parameter names, from the official code's structure (reference §2.1: fc, GBlocks of
    c1 / c2 / fuse1 / fuse2 (DFBLK: affine0 / affine1, each fc_gamma / fc_beta of linear1 / linear2)
    and c_sc where in != out, to_rgb = LeakyReLU, Conv, Tanh)."""
    chs = [nf * min(2**i, 8) for i in range(int(torch.log2(torch.tensor(imsize)).item()) - 1)][::-1]
    keys = {"fc.weight", "fc.bias", "to_rgb.1.weight", "to_rgb.1.bias"}
    for b, (cin, cout) in enumerate(zip(chs[:-1], chs[1:], strict=True)):
        for conv in ["c1", "c2"] + (["c_sc"] if cin != cout else []):
            keys |= {f"GBlocks.{b}.{conv}.weight", f"GBlocks.{b}.{conv}.bias"}
        for fuse in ("fuse1", "fuse2"):
            for aff in ("affine0", "affine1"):
                for fc in ("fc_gamma", "fc_beta"):
                    for lin in ("linear1", "linear2"):
                        keys |= {f"GBlocks.{b}.{fuse}.{aff}.{fc}.{lin}.{p}" for p in ("weight", "bias")}
    return keys


def official_d_keys(nf: int, imsize: int) -> tuple[set[str], set[str]]:
    """NetD's and NetC's names (reference §2.2): conv_img, DBlocks of conv_r.0 / conv_r.2 (no bias),
    conv_s (built in every block, used where fin != fout) and gamma; NetC's joint_conv.0 / .2 (no bias)."""
    n_blocks = int(torch.log2(torch.tensor(imsize)).item()) - 2
    d = {"conv_img.weight", "conv_img.bias"}
    for b in range(n_blocks):
        d |= {f"DBlocks.{b}.{k}" for k in ("conv_r.0.weight", "conv_r.2.weight", "conv_s.weight", "conv_s.bias", "gamma")}
    return d, {"joint_conv.0.weight", "joint_conv.2.weight"}


def write_official_checkpoint(path: Path, trainer, ddp: bool = True) -> None:  # type: ignore[no-untyped-def]
    """A DF-GAN ``state_epoch_*.pth`` holding the trainer's networks (perturbed, so loading shows)."""
    pre = "module." if ddp else ""
    g = {pre + k: v + 0.01 * torch.randn_like(v) for k, v in trainer.nets.generator.state_dict().items()}
    d_all = trainer.nets.discriminator.state_dict()
    net_d = {pre + k.removeprefix("net_d."): v + 0.01 for k, v in d_all.items() if k.startswith("net_d.")}
    net_c = {pre + k.removeprefix("net_c."): v - 0.01 for k, v in d_all.items() if k.startswith("net_c.")}
    torch.save({"model": {"netG": g, "netD": net_d, "netC": net_c}, "optimizers": {}, "epoch": 1220}, path)


def test_dfgan_names_are_the_official_ones(make_recipe, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trainer = start_or_resume(make_recipe(**DFGAN, **{"train.steps": 1}), registry, tmp_path / "run", "cpu", resume=False)
    assert set(trainer.nets.generator.state_dict()) == official_g_keys(4, 64)
    d, c = official_d_keys(4, 64)
    assert set(trainer.nets.discriminator.state_dict()) == {f"net_d.{k}" for k in d} | {f"net_c.{k}" for k in c}


@pytest.mark.parametrize("ddp", [True, False])
def test_official_checkpoint_becomes_a_run_to_generate_from(  # type: ignore[no-untyped-def]
    ddp: bool, make_recipe, registry, installed_registry, tmp_path: Path
) -> None:
    """generator.weights / discriminator.weights = state_epoch_1220.pth with train.steps = 0: a run directory
    holding exactly the official weights, which `generate` samples from."""
    from ganreg.generate import load_run

    source = start_or_resume(make_recipe(**DFGAN, **{"train.steps": 1}), registry, tmp_path / "src", "cpu", resume=False)
    ckpt = tmp_path / "state_epoch_1220.pth"
    write_official_checkpoint(ckpt, source, ddp)
    official = torch.load(ckpt, weights_only=True)["model"]
    recipe = make_recipe(**DFGAN, **{
        "generator.weights": str(ckpt), "discriminator.weights": str(ckpt), "train.steps": 0, "train.ema_decay": None,
    })
    trainer = start_or_resume(recipe, registry, tmp_path / "run", "cpu", resume=False)
    assert trainer.fit() == "finished" and trainer.step == 0
    run = load_run(tmp_path / "run", device="cpu")
    pre = "module." if ddp else ""
    for k, v in run.nets.generator.state_dict().items():
        torch.testing.assert_close(v, official["netG"][pre + k], rtol=0, atol=0)
    saved_d = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)["models"]["discriminator"]
    for k, v in saved_d.items():  # generating needs no D: the run's checkpoint holds it
        net, name = ("netD", k.removeprefix("net_d.")) if k.startswith("net_d.") else ("netC", k.removeprefix("net_c."))
        torch.testing.assert_close(v, official[net][pre + name], rtol=0, atol=0)
    assert (tmp_path / "run" / "samples" / "step_0000000.png").is_file()


def test_a_ganreg_checkpoint_seeds_another_run_and_mismatches_are_named(make_recipe, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = start_or_resume(make_recipe(**DFGAN, **{"train.steps": 1}), registry, tmp_path / "a", "cpu", resume=False)
    first.fit()
    latest = tmp_path / "a" / "checkpoints" / "latest.pt"
    second = start_or_resume(make_recipe(**DFGAN, **{"generator.weights": str(latest), "train.steps": 1}),
                             registry, tmp_path / "b", "cpu", resume=False)
    for k, v in first.nets.generator.state_dict().items():
        torch.testing.assert_close(second.nets.generator.state_dict()[k], v, rtol=0, atol=0)
    wider = make_recipe(**{**DFGAN, "generator": {"name": "dfgan:dfgan", "params": {"nf": 8}}},
                        **{"generator.weights": str(latest), "train.steps": 1})
    with pytest.raises(UserError, match=r"generator weights .* do not fit .*size mismatch") as err:
        start_or_resume(wider, registry, tmp_path / "c", "cpu", resume=False)
    assert "nf" in err.value.fix
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read discriminator weights"):
        start_or_resume(make_recipe(**DFGAN, **{"discriminator.weights": str(junk), "train.steps": 1}),
                        registry, tmp_path / "d", "cpu", resume=False)
    torch.save({"something": {"else": torch.zeros(1)}}, junk)
    with pytest.raises(UserError, match="holds no discriminator weights"):
        start_or_resume(make_recipe(**DFGAN, **{"discriminator.weights": str(junk), "train.steps": 1}),
                        registry, tmp_path / "e", "cpu", resume=False)


def test_a_resumed_run_needs_no_weights_file(make_recipe, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = start_or_resume(make_recipe(**DFGAN, **{"train.steps": 1}), registry, tmp_path / "a", "cpu", resume=False)
    first.fit()
    seed = tmp_path / "seed.pt"
    seed.write_bytes((tmp_path / "a" / "checkpoints" / "latest.pt").read_bytes())
    recipe = make_recipe(**DFGAN, **{"generator.weights": str(seed), "train.steps": 2})
    run = start_or_resume(recipe, registry, tmp_path / "b", "cpu", resume=False)
    assert run.fit(stop_after=1) == "interrupted"
    seed.unlink()  # moved away after the run started: resuming reads the run's own checkpoint
    resumed = start_or_resume(recipe, registry, tmp_path / "b", "cpu", resume=True)
    assert resumed.step == 1 and resumed.fit() == "finished"


def test_a_ganreg_run_seeds_with_its_ema_generator(make_recipe, registry, installed_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What `generate` and `eval` of the source run use is what a run seeded from it starts with."""
    from ganreg.generate import load_run

    src = start_or_resume(make_recipe(**DFGAN, **{"train.steps": 2, "train.ema_decay": 0.5}), registry, tmp_path / "a", "cpu", resume=False)
    src.fit()
    latest = tmp_path / "a" / "checkpoints" / "latest.pt"
    seeded = start_or_resume(make_recipe(**DFGAN, **{"generator.weights": str(latest), "train.steps": 1}),
                             registry, tmp_path / "b", "cpu", resume=False)
    ema = load_run(tmp_path / "a", device="cpu").nets.generator.state_dict()
    raw = src.nets.generator.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # the two differ after 2 steps
    for k, v in ema.items():
        torch.testing.assert_close(seeded.nets.generator.state_dict()[k], v, rtol=0, atol=0)
