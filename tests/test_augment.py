"""Tests of the speed-perturbation remix (gmsep.data.augment)."""

import pytest
import torch
from gmsep.data.augment import SpeedPerturbRemix


def batch(num_items=2, time=800, num_spks=3):
    torch.manual_seed(0)
    return torch.randn(num_items, time, num_spks), torch.randn(num_items, time)


@pytest.mark.parametrize("num_spks", [2, 3])
def test_remix_sums_are_exact(num_spks):
    sources, noise = batch(num_spks=num_spks)
    remix = SpeedPerturbRemix(8000)
    for _ in range(5):
        mix, perturbed, clean_mix = remix(sources, noise)
        length = mix.shape[1]
        assert length <= sources.shape[1]
        assert perturbed.shape == (2, length, num_spks)
        assert clean_mix.shape == (2, length)
        assert torch.equal(clean_mix, perturbed.sum(-1))
        assert torch.equal(mix, perturbed.sum(-1) + noise[:, :length])


def test_speed_100_is_identity():
    sources, noise = batch()
    mix, perturbed, clean_mix = SpeedPerturbRemix(16000, speeds=[100])(
        sources, noise
    )
    assert torch.equal(perturbed, sources)
    assert torch.equal(clean_mix, sources.sum(-1))
    assert torch.equal(mix, sources.sum(-1) + noise)


@pytest.mark.parametrize("speed", [95, 105])
def test_other_speeds_change_the_sources(speed):
    sources, noise = batch()
    _, perturbed, _ = SpeedPerturbRemix(8000, speeds=[speed])(sources, noise)
    # 105 % shortens the sources; 95 % lengthens them, cropped back to T
    expected = 800 * 100 // 105 if speed == 105 else 800
    assert abs(perturbed.shape[1] - expected) <= 1
    original = sources[:, : perturbed.shape[1]]
    assert not torch.allclose(perturbed, original, atol=1e-2)


def test_each_source_gets_its_own_speed():
    sources, noise = batch(num_items=3, num_spks=3)
    remix = SpeedPerturbRemix(8000, speeds=[95, 105])
    torch.manual_seed(1)
    _, perturbed, _ = remix(sources, noise)
    length = perturbed.shape[1]
    speeds = set()
    for b in range(3):
        for s in range(3):
            candidates = {
                speed: SpeedPerturbRemix(8000, speeds=[speed])(
                    sources[b : b + 1, :, s : s + 1], noise[b : b + 1]
                )[1][0, :length, 0]
                for speed in (95, 105)
            }
            matches = [
                speed
                for speed, candidate in candidates.items()
                if torch.allclose(perturbed[b, :, s], candidate, atol=1e-6)
            ]
            assert len(matches) == 1
            speeds.add(matches[0])
    assert speeds == {95, 105}


def test_shape_errors():
    remix = SpeedPerturbRemix(8000)
    sources, noise = batch()
    with pytest.raises(ValueError, match="sources"):
        remix(sources[..., 0], noise)
    with pytest.raises(ValueError, match="noise"):
        remix(sources, noise[:, :700])


def test_without_noise_the_mixture_is_the_clean_mixture():
    """The clean condition (input mix_clean): no noise is added back."""
    sources, _ = batch()
    mix, perturbed, clean_mix = SpeedPerturbRemix(8000)(sources, None)
    assert torch.equal(clean_mix, perturbed.sum(-1))
    assert torch.equal(mix, clean_mix)
