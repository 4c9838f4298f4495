"""Batched image augmentation on torch tensors: the same code runs on CPU and on an accelerator.

The CIFAR protocol of the JAL paper (reference section 4): random 32x32 crop of the image
zero-padded by 4 pixels, horizontal flip with probability 0.5, per-channel normalisation. The
crop and flip act on uint8 images before normalisation, like torchvision's ``RandomCrop(32,
padding=4)`` + ``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize``, so padded pixels are black.
Random draws take an optional ``torch.Generator`` (on the images' device) for reproducibility;
without one they use torch's global generator, which ``transformers.set_seed`` seeds.

Example:
    >>> import torch
    >>> images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    >>> g = torch.Generator().manual_seed(0)
    >>> out = normalize(augment_images(images, generator=g), CIFAR10_MEAN, CIFAR10_STD)
    >>> out.shape, out.dtype
    (torch.Size([8, 3, 32, 32]), torch.float32)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

# Per-channel statistics of the CIFAR-10 training images in [0, 1] (the values of the common
# noisy-label code bases, also used by the JAL code).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# Statistics of the digits training split (load_digits, intensities scaled to 0..255, then /255).
DIGITS_MEAN = (0.3065,)
DIGITS_STD = (0.3762,)

_STATS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar10n": (CIFAR10_MEAN, CIFAR10_STD),
    "digits": (DIGITS_MEAN, DIGITS_STD),
}


def image_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) for a built-in image data set name (``digits``, ``cifar10``, ``cifar10n``).

    For other data (a Hub id), compute them from the training split with
    :func:`compute_image_stats`.

    Example:
        >>> image_stats("digits")
        ((0.3065,), (0.3762,))
    """
    key = name.lower()
    if key not in _STATS:
        raise ValueError(
            f"no stored image statistics for {name!r} (known: {', '.join(_STATS)}); compute them with "
            "jal_trainer.data.compute_image_stats(dataset['train'])."
        )
    return _STATS[key]


def compute_image_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1].

    Accepts a tensor, an array, or a ``datasets.Dataset`` with ``pixel_values``.

    Example:
        >>> compute_image_stats(torch.full((2, 1, 4, 4), 255, dtype=torch.uint8))
        ((1.0,), (0.0,))
    """
    if hasattr(images, "column_names"):  # a datasets.Dataset
        from jal_trainer.data.vision import image_array

        images = image_array(images)
    x = torch.as_tensor(images).to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), unbiased=False)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def normalize(
    images: torch.Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> torch.Tensor:
    """Float32 images: integer inputs are scaled from 0..255 to [0, 1], then ``(x - mean) / std`` per channel.

    Floating inputs are taken as already in [0, 1]. ``mean``/``std`` of None skip that step.

    Args:
        images: (B, C, H, W) uint8 or float.
        mean, std: C values each (sequences, or (C,) tensors).

    Example:
        >>> normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.25,))[0, 0, 0, 0].item()
        2.0
    """
    x = images.to(torch.float32)
    if not images.is_floating_point():
        x = x / 255.0
    if mean is None and std is None:
        return x
    if mean is None or std is None or len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel ({x.shape[1]}), got mean={mean} std={std}; "
            "use jal_trainer.data.image_stats(name)."
        )
    # Tensors already on the images' device are used as they are (no copy, no host sync).
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop(images: torch.Tensor, padding: int = 4, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop each image at a random offset from a copy zero-padded by ``padding`` pixels per side.

    Vectorised: one gather for the whole batch; each image's shift (dy, dx) is uniform in
    ``[-padding, padding]^2``, independently per image.

    Args:
        images: (B, C, H, W), any dtype, on any device.
        padding: pixels of zero padding per side (0 returns the input).
        generator: ``torch.Generator`` on the images' device, or None for the global one.

    Example:
        >>> random_crop(torch.ones(2, 3, 8, 8), 2).shape
        torch.Size([2, 3, 8, 8])
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}.")
    if padding == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
    rows = (top[:, None] + torch.arange(h, device=device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(w, device=device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=device)[:, None, None]
    # Advanced indices around the channel slice put the broadcast dims first: (B, H, W, C).
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_hflip(images: torch.Tensor, p: float = 0.5, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``, independently per image.

    Example:
        >>> x = torch.arange(4.0).view(1, 1, 1, 4)
        >>> random_hflip(x, p=1.0).flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability p must be in [0, 1], got {p}.")
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment_images(
    images: torch.Tensor,
    *,
    crop_padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random crop with ``crop_padding`` then horizontal flip (p=0.5), the CIFAR training augmentation.

    Example:
        >>> augment_images(torch.zeros(4, 3, 32, 32, dtype=torch.uint8)).dtype
        torch.uint8
    """
    images = random_crop(images, crop_padding, generator=generator)
    return random_hflip(images, generator=generator) if flip else images


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIGITS_MEAN",
    "DIGITS_STD",
    "augment_images",
    "compute_image_stats",
    "image_stats",
    "normalize",
    "random_crop",
    "random_hflip",
]
