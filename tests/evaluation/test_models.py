"""Models: every registered architecture runs on grey and RGB input, seeded initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlfs.errors import ConfigError
from nlfs.evaluation.models import build_model, init_parameters, model_names

SMALL = 32  # pixels: the smallest size every architecture's downsampling accepts


# EfficientNetV2-S (20M parameters) is built only once, grey: the input adaptation under test.
CASES = [
    (name, c)
    for name in model_names()
    for c in (1, 3)
    if not (name == "efficientnet_v2_s" and c == 3)
]


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_model_runs_a_forward_pass_for_grey_and_rgb(name, channels):
    model = build_model(name, channels, num_classes=7, seed=0)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, channels, SMALL, SMALL))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["tiny_cnn", "small_cnn", "resnet9_preact", "wide_resnet"])
def test_same_seed_same_weights_and_other_seeds_differ(name):
    def weights(seed):
        return build_model(name, 1, 10, seed=seed).state_dict()

    a, b, c = weights(5), weights(5), weights(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_building_a_model_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    build_model("resnet18", 3, 10, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


def test_reinitialising_in_place_equals_building_anew():
    """The evaluator reuses a model across candidates; that must not change the weights."""
    model = build_model("resnet9_preact", 3, 10, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    init_parameters(model, torch.Generator().manual_seed(2))
    fresh = build_model("resnet9_preact", 3, 10, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())


def test_paper_surrogate_has_the_papers_widths_and_dropout():
    model = build_model("resnet9_preact", 3, 10, seed=0)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0] == 8 and set(convs) == {8, 16, 32}
    assert any(isinstance(m, nn.SiLU) for m in model.modules())
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]


def test_unknown_model_lists_known_ones():
    with pytest.raises(ConfigError, match="known: .*resnet18"):
        build_model("vgg99", 3, 10)


def test_unknown_parameter_kinds_are_refused_not_left_uninitialised():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

    with pytest.raises(ConfigError, match="scale"):
        init_parameters(Scaled(), torch.Generator())
