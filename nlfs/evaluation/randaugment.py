"""RandAugment, TrivialAugmentWide and AutoAugment for whole batches, with tensor ops only.

torchvision's transforms draw one operation per call from the global generator and apply it to
the whole tensor, so per-image policies cost a Python loop, and every draw is a host round trip.
Here every image of a float batch ``[N, C, H, W]`` in [0, 1] draws its own operations and
magnitudes from an explicit ``torch.Generator`` on the batch's device, and each round applies
them all at once:

- the geometric operations (shear x/y, translate x/y, rotate) as one per-image affine matrix
  through a single ``F.grid_sample`` (nearest, fill 0: torchvision's defaults);
- the colour operations by masks over the batch: brightness, colour (saturation), contrast and
  sharpness are blends with a degenerate image (PIL's ``ImageEnhance``), so one blend serves all
  four; posterize, solarize, autocontrast, equalize and invert are computed for the batch and
  selected per image with ``torch.where``.

Nothing reads a drawn value on the host (no ``.item()``, no branching on draws), so a CUDA step
that uses these needs no synchronisation. Operations, magnitude bins, signs, fill and arithmetic
follow torchvision's v2 ``_auto_augment.py`` and its functional ops (tests check both).

References: Cubuk et al., "AutoAugment" (CVPR 2019) and "RandAugment" (CVPRW 2020); Müller &
Hutter, "TrivialAugment" (ICCV 2021).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from nlfs.errors import ConfigError

OPS = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
    "Invert",
)
"""Every operation; RandAugment and TrivialAugmentWide draw uniformly from all but ``Invert``."""
SIGNED = frozenset(OPS[1:10])
"""Operations whose magnitude gets a random sign (probability 1/2 each)."""
_OP = {name: index for index, name in enumerate(OPS)}
_ENHANCE = ("Brightness", "Color", "Contrast", "Sharpness")
_GREY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma weights, as torchvision's rgb_to_grayscale

# The CIFAR-10 policy found by AutoAugment (Cubuk et al. 2019), as torchvision lists it: 25
# sub-policies of two (operation, probability, magnitude bin of 10) steps.
CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


def magnitude_table(bins: int, height: int, width: int, wide: bool = False) -> torch.Tensor:
    """Unsigned magnitudes ``[len(OPS), bins]`` (float32, CPU), bin by bin as torchvision's.

    Rows of operations without a magnitude are 0. ``wide`` selects TrivialAugmentWide's ranges.
    Built with float32 ``linspace`` as torchvision does, so the values are bit for bit its own.
    """
    steps = torch.arange(bins) / ((bins - 1) / (6 if wide else 4))

    def span(high: float) -> torch.Tensor:
        return torch.linspace(0.0, high, bins)

    rows = {
        "ShearX": span(0.99 if wide else 0.3),
        "ShearY": span(0.99 if wide else 0.3),
        "TranslateX": span(32.0 if wide else 150.0 / 331.0 * width),
        "TranslateY": span(32.0 if wide else 150.0 / 331.0 * height),
        "Rotate": span(135.0 if wide else 30.0),
        **{name: span(0.99 if wide else 0.9) for name in _ENHANCE},
        "Posterize": (8 - steps).round(),
        "Solarize": torch.linspace(1.0, 0.0, bins),
    }
    return torch.stack([rows.get(name, torch.zeros(bins)) for name in OPS])


def apply_ops(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Apply operation ``OPS[op[i]]`` with signed ``magnitude[i]`` to image ``x[i]``.

    Args:
        x: float images ``[N, C, H, W]`` in [0, 1], C 1 or 3.
        op: operation indices ``[N]`` (int64) into :data:`OPS`.
        magnitude: ``[N]`` float magnitudes as torchvision passes them to its op (degrees,
            pixels, factors minus 1, bits, thresholds; 0 for operations without one).
    """
    return _colour(_geometric(x, op, magnitude), op, magnitude)


def _is(op: torch.Tensor, *names: str) -> torch.Tensor:
    """Where ``op`` is one of ``names`` (any shape)."""
    mask = op == _OP[names[0]]
    for name in names[1:]:
        mask = mask | (op == _OP[name])
    return mask


def _geometric(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Shears, translations and rotations: one inverse affine matrix per image, one sample.

    The matrices are torchvision's ``_get_inverse_affine_matrix`` for its calls (shears about
    the top-left corner, integer translations, rotations about the centre), formed in float64
    like its Python arithmetic; images with a colour operation get the identity, which nearest
    sampling reproduces exactly.
    """
    n, _, h, w = x.shape
    m = magnitude.double()
    zero = torch.zeros_like(m)
    shear_x = torch.where(_is(op, "ShearX"), m, zero)
    shear_y = torch.where(_is(op, "ShearY"), m, zero)
    shift_x = torch.where(_is(op, "TranslateX"), m.trunc(), zero)  # torchvision's int()
    shift_y = torch.where(_is(op, "TranslateY"), m.trunc(), zero)
    angle = torch.deg2rad(torch.where(_is(op, "Rotate"), m, zero).remainder(360.0))
    cos, sin = angle.cos(), angle.sin()
    # exactly one of rotation, shear and shift is non-zero per image: adding the zeros is exact
    theta = torch.stack(
        (
            cos,
            shear_x - sin,
            shear_x * (h / 2) - shift_x,
            sin + shear_y,
            cos,
            shear_y * (w / 2) - shift_y,
        ),
        dim=1,
    ).to(x.dtype)
    base, half_size = _grid_constants(h, w, x.device, x.dtype)
    rescaled = theta.view(n, 2, 3).transpose(1, 2) / half_size  # [n, 3, 2]
    # base @ rescaled written out: a batched matmul with an inner size of 3 is slow on the CPU
    grid = base[..., 0:1] * rescaled[:, None, 0] + base[..., 1:2] * rescaled[:, None, 1]
    grid = (grid + rescaled[:, None, 2]).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=64)
def _grid_constants(
    h: int, w: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's ``_affine_grid`` inputs: pixel-centred output coordinates ``[1, h*w, 3]``
    and the half size that scales the matrices to grid units (built once per shape: no
    host-to-device copy per batch)."""
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h)
    base = torch.stack((xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w)), dim=-1)
    half_size = torch.tensor([0.5 * w, 0.5 * h])
    return base.view(1, h * w, 3).to(device, dtype), half_size.to(device, dtype)


def _colour(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    n = len(x)
    select = op.view(n, 1, 1, 1)
    m = magnitude.view(n, 1, 1, 1)
    out = _enhance(x, select, m)
    # posterize keeps `bits` bits: 2**bits levels (8 elsewhere, so no overflow to select away)
    bits = torch.where(select == _OP["Posterize"], m, 8.0)
    levels = torch.exp2(bits.round()).to(x.dtype)
    posterized = torch.minimum((x * levels).floor(), levels - 1) / levels  # x >= 0
    out = torch.where(select == _OP["Posterize"], posterized, out)
    # invert is solarize with threshold 0
    threshold = torch.where(select == _OP["Invert"], 0.0, m)
    out = torch.where(_is(select, "Solarize", "Invert") & (x >= threshold), 1.0 - x, out)
    out = torch.where(select == _OP["AutoContrast"], _autocontrast(x), out)
    return torch.where(select == _OP["Equalize"], _equalize(x), out)


def _enhance(x: torch.Tensor, select: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Brightness, colour, contrast and sharpness: ``x + (1 - factor) * (degenerate - x)``.

    The degenerate image is black (brightness), the grey image (colour), the grey mean
    (contrast) or the 3x3-smoothed image inside a one-pixel border (sharpness); the factor is
    ``1 + m``. Other operations blend with weight 0, i.e. keep ``x``. A grey image's colour
    operation is the identity, as in torchvision (and PIL).
    """
    grey = _grey(x)

    def share(name: str) -> torch.Tensor:
        return (select == _OP[name]).to(x.dtype)

    # per-image 0/1 weights pick the degenerate image (products with 0 are exact zeros); for
    # other operations it is 0, and their blend weight is 0 too
    degenerate = share("Contrast") * grey.mean((1, 2, 3), True)
    degenerate = torch.addcmul(degenerate, share("Color"), grey)  # grey input: grey = x
    degenerate = torch.addcmul(degenerate, share("Sharpness"), _smoothed(x))
    weight = torch.where(_is(select, *_ENHANCE), -m, 0.0).to(x.dtype)  # 1 - factor
    return torch.addcmul(x, weight, degenerate - x).clamp_(0.0, 1.0)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (r * _GREY[0] + g * _GREY[1] + b * _GREY[2])[:, None]


def _smoothed(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (1s around a 5, over 13) inside a one-pixel border, the image itself
    on the border. A 3x3 box sum (two passes of shifted slices) plus 4 times the centre: about
    4x cheaper than a grouped convolution on the CPU."""
    rows = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    smoothed = x.clone()
    smoothed[..., 1:-1, 1:-1] = (box + 4.0 * x[..., 1:-1, 1:-1]) / 13.0
    return smoothed


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to [0, 1]; a constant channel is left as it is."""
    low = x.amin((2, 3), keepdim=True)
    high = x.amax((2, 3), keepdim=True)
    flat = high == low
    low = torch.where(flat, torch.zeros_like(low), low)
    span = torch.where(flat, torch.ones_like(high), high - low)
    return ((x - low) / span).clamp(0.0, 1.0)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel: torchvision's batched kernel (PIL's rule).

    It works on the batch as a whole with tensor ops and reads nothing back to the host.
    """
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(x)


class BatchPolicy:
    """A policy that draws, per image, a few operations and their signed magnitudes.

    Subclasses say which operations and magnitude bins each round uses (:meth:`_pick`); the base
    class looks the magnitudes up, draws their signs and applies the rounds in order. Magnitude
    tables are built once per image size and device.
    """

    bins = 31
    wide = False

    def __init__(self) -> None:
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment float images ``[N, C, H, W]`` in [0, 1]; every draw comes from ``gen``."""
        for op, magnitude in self.draw(len(x), x.shape[-2], x.shape[-1], gen):
            x = apply_ops(x, op, magnitude)
        return x

    def draw(
        self, n: int, height: int, width: int, gen: torch.Generator
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each round's operation indices and signed magnitudes ``[n]`` on ``gen.device``."""
        key = (height, width, gen.device)
        if key not in self._tables:
            table = magnitude_table(self.bins, height, width, self.wide)
            signed = torch.tensor([name in SIGNED for name in OPS])
            self._tables[key] = (table.to(gen.device), signed.to(gen.device))
        table, signed = self._tables[key]
        rounds = []
        for op, level in self._pick(n, gen):
            # torchvision negates when rand <= 0.5, for signed operations only
            flip = signed[op] & (torch.rand(n, generator=gen, device=gen.device) <= 0.5)
            magnitude = table[op, level]
            rounds.append((op, torch.where(flip, -magnitude, magnitude)))
        return rounds

    def _pick(self, n: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each round's operation indices and magnitude bins ``[n]`` (int64, on ``gen.device``)."""
        raise NotImplementedError


def _uniform_ops(n: int, gen: torch.Generator) -> torch.Tensor:
    """Operations drawn uniformly from all but ``Invert`` (RandAugment's and TrivialAugment's)."""
    return torch.randint(len(OPS) - 1, (n,), generator=gen, device=gen.device)


class RandAugment(BatchPolicy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` uniform operations at one magnitude bin.

    Raises:
        ConfigError: ``num_ops`` negative or ``magnitude`` outside ``0..bins - 1``.
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, bins: int = 31) -> None:
        super().__init__()
        if num_ops < 0 or not 0 <= magnitude < bins:
            raise ConfigError(
                f"RandAugment needs num_ops >= 0 and magnitude in 0..{bins - 1}; "
                f"got {num_ops} and {magnitude}"
            )
        self.num_ops, self.magnitude, self.bins = num_ops, magnitude, bins

    def _pick(self, n: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        level = torch.full((n,), self.magnitude, device=gen.device)
        return [(_uniform_ops(n, gen), level) for _ in range(self.num_ops)]


class TrivialAugmentWide(BatchPolicy):
    """TrivialAugment Wide (Müller & Hutter 2021): one uniform operation at a uniform bin."""

    wide = True

    def _pick(self, n: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        op = _uniform_ops(n, gen)
        return [(op, torch.randint(self.bins, (n,), generator=gen, device=gen.device))]


class AutoAugment(BatchPolicy):
    """AutoAugment's CIFAR-10 policy: one uniform sub-policy, each step applied with its
    probability (bins of 10)."""

    bins = 10

    def __init__(self) -> None:
        super().__init__()
        self._policy: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def _pick(self, n: int, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if gen.device not in self._policy:
            steps = [step for pair in CIFAR10_POLICY for step in pair]
            shape = (len(CIFAR10_POLICY), 2)
            ops = torch.tensor([_OP[name] for name, _, _ in steps]).view(shape)
            probs = torch.tensor([p for _, p, _ in steps]).view(shape)
            levels = torch.tensor([level or 0 for _, _, level in steps]).view(shape)
            self._policy[gen.device] = tuple(t.to(gen.device) for t in (ops, probs, levels))
        ops, probs, levels = self._policy[gen.device]
        sub = torch.randint(len(CIFAR10_POLICY), (n,), generator=gen, device=gen.device)
        rounds = []
        for step in range(2):
            applied = torch.rand(n, generator=gen, device=gen.device) <= probs[sub, step]
            op = torch.where(applied, ops[sub, step], _OP["Identity"])
            rounds.append((op, levels[sub, step]))
        return rounds
