"""Losses: LPIPS-style perceptual term (both weight namings), 3-D discriminator, adversarial terms, the
combined reconstruction loss and its start step, and the loss config."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file
from torch.nn.utils import parametrize

from onevae.errors import CheckpointError, InputError, OneVAEError
from onevae.losses import (
    LossConfig,
    PatchDiscriminator3D,
    PerceptualLoss,
    ReconstructionLoss,
    adaptive_weight,
    adopt_weight,
    build_discriminator,
    build_perceptual_loss,
    discriminator_hinge_loss,
    discriminator_loss,
    discriminator_vanilla_loss,
    generator_hinge_loss,
    kl_loss,
)

LPIPS_SLICES = ((1, range(4)), (2, range(4, 9)), (3, range(9, 16)), (4, range(16, 23)), (5, range(23, 30)))


def video(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) * 2 - 1


# ------------------------------------------------------------------------------------------ perceptual
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """A random VGG16 trunk + positive lin layers, saved in torchvision naming (.pth, lins apart) and in
    lpips naming (one .safetensors with trunk and lins)."""
    torch.manual_seed(0)
    src = PerceptualLoss()
    for lin in src.lins:
        nn.init.uniform_(lin.model[1].weight, 0.1, 1.0)
    root = tmp_path_factory.mktemp("lpips")
    trunk = {f"features.{k}": v.clone() for k, v in src.features.state_dict().items()}
    trunk["classifier.0.weight"] = torch.zeros(4, 4)  # ignored
    lins = {f"lin{i}.model.1.weight": lin.model[1].weight.detach().clone() for i, lin in enumerate(src.lins)}
    torch.save(trunk, root / "vgg16.pth")
    torch.save(lins, root / "vgg.pth")
    lpips = dict(lins)
    for k, indices in LPIPS_SLICES:
        for i in indices:
            if isinstance(src.features[i], nn.Conv2d):
                lpips[f"net.slice{k}.{i}.weight"] = src.features[i].weight.detach().clone()
                lpips[f"net.slice{k}.{i}.bias"] = src.features[i].bias.detach().clone()
    save_file(lpips, str(root / "lpips_full.safetensors"))
    return root


def test_perceptual_zero_for_identical_and_positive_otherwise(weight_files):
    loss = PerceptualLoss.from_files(weight_files / "vgg16.pth", weight_files / "vgg.pth")
    assert loss.lins_loaded and not loss.training
    assert all(not p.requires_grad for p in loss.parameters())
    a, b = video(2, 3, 3, 32, 32, seed=1), video(2, 3, 3, 32, 32, seed=2)
    assert loss(a, a).item() == 0.0
    assert loss(a, b).item() > 0.0
    assert loss.distances(a, b).shape == (6,)  # B * T frames


def test_perceptual_both_namings_load_the_same_network(weight_files):
    tv = PerceptualLoss.from_files(weight_files / "vgg16.pth", weight_files / "vgg.pth")
    lp = PerceptualLoss.from_files(weight_files / "lpips_full.safetensors")  # lins from the same file
    assert lp.lins_loaded
    for (name, p), q in zip(tv.state_dict().items(), lp.state_dict().values()):
        assert torch.equal(p, q), name
    a, b = video(1, 3, 2, 32, 32, seed=3), video(1, 3, 2, 32, 32, seed=4)
    assert torch.equal(tv(a, b), lp(a, b))


def test_perceptual_gradient_reaches_input_and_train_keeps_eval(weight_files):
    loss = PerceptualLoss.from_files(weight_files / "vgg16.pth", max_frames=2)
    loss.train()
    assert not loss.training
    a = video(1, 3, 5, 32, 32, seed=5).requires_grad_(True)
    b = video(1, 3, 5, 32, 32, seed=6)
    assert loss.distances(a, b).shape == (2,)  # max_frames of 5
    loss(a, b).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_perceptual_file_errors(weight_files, tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        PerceptualLoss.from_files(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="linear layers only"):
        PerceptualLoss.from_files(weight_files / "vgg.pth")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no VGG16 trunk"):
        PerceptualLoss.from_files(tmp_path / "other.pth")
    trunk = torch.load(weight_files / "vgg16.pth", weights_only=True)
    trunk["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(trunk, tmp_path / "bad_shape.pth")
    with pytest.raises(CheckpointError, match="shape"):
        PerceptualLoss.from_files(tmp_path / "bad_shape.pth")
    del trunk["features.28.bias"]
    torch.save(trunk, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing"):
        PerceptualLoss.from_files(tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="lin0"):
        PerceptualLoss.from_files(weight_files / "vgg16.pth", tmp_path / "other.pth")


def test_build_perceptual_loss_off_and_on(weight_files):
    module, message = build_perceptual_loss(None)
    assert module is None
    assert message == "perceptual loss off: no backbone weights file given (perceptual.weights_path)"
    module, message = build_perceptual_loss(str(weight_files / "vgg16.pth"))
    assert isinstance(module, PerceptualLoss) and "perceptual loss on" in message and "unit weights" in message


# ------------------------------------------------------------------------------------------ discriminator
@pytest.mark.parametrize("frames, expected_t", [(1, 1), (17, 5)])
def test_discriminator_patch_logits_shape(frames, expected_t):
    disc = PatchDiscriminator3D(base_channels=8)
    out = disc(video(2, 3, frames, 32, 32))
    assert out.shape == (2, 1, expected_t, 6, 6)


def test_discriminator_images_norms_and_size_check():
    assert PatchDiscriminator3D(base_channels=8)(video(2, 3, 32, 32)).shape == (2, 1, 1, 6, 6)
    for norm in ("group", "batch"):
        assert PatchDiscriminator3D(base_channels=8, norm=norm)(video(2, 3, 3, 24, 24)).shape == (2, 1, 1, 4, 4)
    with pytest.raises(InputError, match="at least 12x12"):
        PatchDiscriminator3D(base_channels=8)(video(1, 3, 1, 8, 8))
    with pytest.raises(OneVAEError, match="norm"):
        PatchDiscriminator3D(norm="layer")


def test_discriminator_spectral_norm_and_init():
    def convs(d):
        return [m for m in d.modules() if isinstance(m, nn.Conv3d)]
    on = PatchDiscriminator3D(base_channels=8)
    assert len(convs(on)) == 4 and all(parametrize.is_parametrized(c, "weight") for c in convs(on))
    assert all(parametrize.is_parametrized(c, "weight") for c in convs(build_discriminator(LossConfig().discriminator)))
    plain = build_discriminator(LossConfig.from_dict({"discriminator": {"use_spectral_norm": False, "base_channels": 16}}).discriminator)
    assert not any(parametrize.is_parametrized(c, "weight") for c in convs(plain))
    big = convs(plain)[2].weight  # (64, 32, 3, 4, 4): normal(0, 0.02)
    assert abs(big.std().item() - 0.02) < 0.002 and abs(big.mean().item()) < 0.002


# ------------------------------------------------------------------------------------------ adversarial terms
def test_hinge_and_vanilla_values_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # real: relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25; fake: relu(1 - 2) = 0, relu(1 + 0.5) = 1.5 -> 0.75
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(0.5)
    assert generator_hinge_loss(fake).item() == pytest.approx(0.75)
    assert discriminator_vanilla_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert adopt_weight(0.1, 19999, 20000) == 0.0 and adopt_weight(0.1, 20000, 20000) == 0.1


def test_adaptive_weight_matches_hand_computation():
    w = torch.tensor([1.0, 0.0], requires_grad=True)
    a = torch.tensor([3.0, 4.0])
    rec = (w * a).sum()  # d/dw = a, norm 5
    g = (w * w).sum()  # d/dw = 2w, norm 2
    got = adaptive_weight(rec, g, w, disc_weight=0.2)
    assert not got.requires_grad
    assert got.item() == pytest.approx(5.0 / (2.0 + 1e-4) * 0.2, rel=1e-6)
    # a generator loss with a zero gradient: ratio 5 / 1e-4 = 5e4, clamped to 1e4 before disc_weight
    flat = (w * 0.0).sum()
    assert adaptive_weight(rec, flat, w, disc_weight=0.2).item() == pytest.approx(1e4 * 0.2)
    with pytest.raises(InputError, match="does not depend"):
        adaptive_weight(rec, g, torch.ones(2, requires_grad=True))


# ------------------------------------------------------------------------------------------ combined loss
class TinyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv3d(4, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(z))


class CountingDisc(PatchDiscriminator3D):
    calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def _setup():
    dec, disc = TinyDecoder(), CountingDisc(base_channels=8)
    z = torch.randn(1, 4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    return dec, disc, z, video(1, 3, 2, 16, 16, seed=7)


def test_adversarial_term_is_off_before_disc_start_and_on_after():
    dec, disc, z, target = _setup()
    loss_fn = ReconstructionLoss(disc_start=100)
    total, logs = loss_fn(target, dec(z), 99, discriminator=disc, last_layer_weight=dec.head.weight)
    assert disc.calls == 0
    assert logs["loss/g_adv"].item() == 0.0 and logs["adv/weight"].item() == 0.0
    assert set(logs) == {"loss/pixel", "loss/perceptual", "loss/kl", "loss/g_adv", "adv/weight", "loss/total"}
    assert total.item() == logs["loss/pixel"].item()  # no perceptual module, no KL, no adversarial term
    recon = dec(z)
    total, logs = loss_fn(target, recon, 100, discriminator=disc, last_layer_weight=dec.head.weight)
    assert disc.calls == 1
    assert logs["loss/g_adv"].item() != 0.0 and logs["adv/weight"].item() > 0.0
    expected = logs["loss/pixel"] + logs["adv/weight"] * logs["loss/g_adv"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(not v.requires_grad for v in logs.values())
    total.backward()
    assert dec.head.weight.grad is not None and dec.head.weight.grad.abs().sum() > 0


def test_adaptive_weight_inside_the_loss_and_fixed_weight():
    dec, disc, z, target = _setup()
    disc.eval()  # spectral norm's power iteration would otherwise change D between the two calls
    recon = dec(z)
    loss_fn = ReconstructionLoss(disc_start=0, g_loss_weight=0.1, disc_weight=0.2)
    _, logs = loss_fn(target, recon, 0, discriminator=disc, last_layer_weight=dec.head.weight)
    rec = loss_fn.pixel_loss(target, recon)
    g = -disc(recon).mean()
    by_hand = 0.1 * adaptive_weight(rec, g, dec.head.weight, 0.2)
    assert logs["adv/weight"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    fixed = ReconstructionLoss(disc_start=0, g_loss_weight=0.1, adaptive=False)
    _, logs = fixed(target, recon, 0, discriminator=disc)
    assert logs["adv/weight"].item() == pytest.approx(0.1)
    with torch.no_grad():  # no graph: the adaptive weight is 0 (VQGAN)
        _, logs = loss_fn(target, dec(z), 0, discriminator=disc, last_layer_weight=dec.head.weight)
    assert logs["adv/weight"].item() == 0.0
    with pytest.raises(InputError, match="last_layer_weight"):
        loss_fn(target, dec(z), 0, discriminator=disc)


def test_pixel_perceptual_kl_terms(weight_files):
    target = video(1, 3, 2, 16, 16, seed=8)
    recon = (target + 0.1).requires_grad_(True)
    perceptual = PerceptualLoss.from_files(weight_files / "vgg16.pth", weight_files / "vgg.pth")
    loss_fn = ReconstructionLoss(pixel="l1", perceptual=perceptual, perceptual_weight=0.5, kl_weight=0.01)
    mu, logvar = [torch.ones(1, 4, 1, 2, 2), torch.zeros(1, 4, 1, 2, 2)], [torch.zeros(1, 4, 1, 2, 2)] * 2
    total, logs = loss_fn(target, recon, 0, mu=mu, logvar=logvar)
    assert logs["loss/pixel"].item() == pytest.approx(0.1, rel=1e-5)
    assert logs["loss/perceptual"].item() > 0
    assert logs["loss/kl"].item() == pytest.approx(0.25)  # grids: 0.5 and 0
    expected = 0.1 + 0.5 * logs["loss/perceptual"].item() + 0.01 * 0.25
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert recon.grad is not None
    assert kl_loss(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0
    l2 = ReconstructionLoss()
    assert l2(target, target + 0.1, 0)[1]["loss/pixel"].item() == pytest.approx(0.01, rel=1e-4)


def test_discriminator_loss_start_and_gradients():
    dec, disc, z, target = _setup()
    recon = dec(z)
    loss, logs = discriminator_loss(disc, target, recon, step=5, disc_start=10)
    assert loss.item() == 0.0 and disc.calls == 0
    loss, logs = discriminator_loss(disc, target, recon, step=10, disc_start=10)
    assert set(logs) == {"loss/disc", "disc/logits_real", "disc/logits_fake"}
    loss.backward()
    assert dec.head.weight.grad is None  # the fake is detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())


# ------------------------------------------------------------------------------------------ config
def test_loss_config_defaults_yaml_mapping_and_errors():
    c = LossConfig()
    assert (c.pixel, c.pixel_weight, c.perceptual_weight, c.g_loss_weight, c.disc_start, c.disc_weight) == ("l2", 1.0, 0.1, 0.1, 20000, 0.2)
    assert c.discriminator.num_layers == 2 and c.discriminator.use_spectral_norm and c.disc_loss == "hinge"
    assert c.perceptual.weights_path is None
    c = LossConfig.from_dict({"g_loss_weight": 0.005, "disc_start": 30000, "max_adaptive_weight": "1e4", "discriminator": {"norm": "group"}})
    assert c.g_loss_weight == 0.005 and c.max_adaptive_weight == 1e4 and c.discriminator.norm == "group"
    assert LossConfig.from_dict(c.to_dict()) == c
    with pytest.raises(OneVAEError, match="unknown config key"):
        LossConfig.from_dict({"perceptual": {"path": "x"}})
    with pytest.raises(OneVAEError, match="l1 or l2"):
        LossConfig(pixel="l3")
    loss = ReconstructionLoss.from_config(LossConfig())
    assert loss.perceptual is None and "perceptual loss off" in loss.perceptual_message
