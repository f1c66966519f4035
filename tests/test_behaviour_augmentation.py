"""The CIFAR augmentation (``train.loop.crop_flip``): each output image is a 32 x 32 window
of the zero-padded input, sometimes mirrored left-right; over a batch both the windows and
the mirroring really vary. Expectations are built with numpy (np.pad, slicing, np.flip)."""
from __future__ import annotations

import numpy as np
import torch

from cnn_filter_db.train.loop import crop_flip

PAD = 4


def _candidates(image: np.ndarray) -> dict[tuple[int, int, bool], np.ndarray]:
    """Every (dy, dx, flipped) view of one (c, h, w) image that crop_flip may return."""
    c, h, w = image.shape
    padded = np.pad(image, ((0, 0), (PAD, PAD), (PAD, PAD)))
    out = {}
    for dy in range(2 * PAD + 1):
        for dx in range(2 * PAD + 1):
            window = padded[:, dy:dy + h, dx:dx + w]
            out[(dy, dx, False)] = window
            out[(dy, dx, True)] = np.flip(window, axis=2)
    return out


def _which(image: np.ndarray, result: np.ndarray) -> list[tuple[int, int, bool]]:
    return [k for k, v in _candidates(image).items() if np.array_equal(v, result)]


def test_crop_flip_moves_pixels_and_mirrors_images():
    n, c, h, w = 48, 3, 12, 12
    # every pixel a distinct non-zero value: a view is identified by its content alone
    x = np.arange(1, n * c * h * w + 1, dtype=np.float32).reshape(n, c, h, w)
    out = crop_flip(torch.from_numpy(x.copy()), torch.Generator().manual_seed(0), pad=PAD).numpy()
    assert out.shape == x.shape
    views = []
    for i in range(n):
        found = _which(x[i], out[i])
        assert len(found) == 1, f"image {i}: not a padded window (or flipped window) of its input"
        views.append(found[0])
    flipped = sum(f for _, _, f in views)
    moved = sum((dy, dx) != (PAD, PAD) for dy, dx, _ in views)
    # 48 fair coin flips: all heads or all tails has probability 2 * 2**-48
    assert 0 < flipped < n, views
    # 80 of the 81 offsets move the image: at most a few of 48 stay put
    assert moved >= n // 2, views
    assert len({(dy, dx) for dy, dx, _ in views}) > 10  # many different windows


def test_crop_flip_of_identical_images_differs_between_images():
    x = np.tile(np.arange(1, 3 * 8 * 8 + 1, dtype=np.float32).reshape(1, 3, 8, 8), (16, 1, 1, 1))
    out = crop_flip(torch.from_numpy(x), torch.Generator().manual_seed(1), pad=PAD).numpy()
    distinct = {out[i].tobytes() for i in range(16)}
    assert len(distinct) > 8
    # a flipped, unshifted image equals numpy's mirror of the input
    mirror = np.flip(x[0], axis=2)
    assert all(np.array_equal(out[i], mirror) == (_which(x[0], out[i]) == [(PAD, PAD, True)]) for i in range(16))


def test_crop_flip_default_padding_is_four_pixels():
    """The CIFAR recipe's crop: 4 pixels of padding by default (offsets 0..8), and over 200
    images every one of the 9 x 9 offsets' extremes is reached (0 and 8 in both axes)."""
    n = 200
    x = np.arange(1, n * 1 * 10 * 10 + 1, dtype=np.float32).reshape(n, 1, 10, 10)
    out = crop_flip(torch.from_numpy(x.copy()), torch.Generator().manual_seed(5)).numpy()
    views = []
    for i in range(n):
        found = _which(x[i], out[i])
        assert len(found) == 1, f"image {i}: not a window of the 4-pixel padded input"
        views.append(found[0])
    assert {dy for dy, _, _ in views} == set(range(9)) and {dx for _, dx, _ in views} == set(range(9))


def test_crop_flip_draws_only_from_the_given_generator():
    """Same generator seed, different global torch seeds: the same 64 crops and flips."""
    x = torch.from_numpy(np.arange(1, 64 * 3 * 8 * 8 + 1, dtype=np.float32).reshape(64, 3, 8, 8))
    torch.manual_seed(0)
    a = crop_flip(x, torch.Generator().manual_seed(11))
    torch.manual_seed(1)
    b = crop_flip(x, torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    c = crop_flip(x, torch.Generator().manual_seed(12))
    assert not torch.equal(a, c)
