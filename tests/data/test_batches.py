"""The batch loaders: coverage, normalisation, batched augmentation, random-resized crops, determinism."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from edgecv.core.spec import Framing
from edgecv.data.base import Split
from edgecv.data.batches import DeviceBatches, StreamBatches, random_crop, random_flip, random_resized_crop
from edgecv.data.stream import FolderSplit


def _split(n=10, c=1, size=6):
    x = (np.arange(n * c * size * size) % 251).astype(np.uint8).reshape(n, c, size, size)
    return Split(x, np.arange(n, dtype=np.int64))


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    split = _split(10)
    batches = DeviceBatches(split, [0.0], [1.0], 3, torch.device("cpu"), shuffle=True,
                            gen=torch.Generator().manual_seed(1))
    assert len(batches) == 4
    first = torch.cat([y for _, y in batches]).tolist()
    second = torch.cat([y for _, y in batches]).tolist()
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second


def test_drop_last_skips_the_ragged_batch_but_keeps_tiny_splits():
    batches = DeviceBatches(_split(10), [0.0], [1.0], 4, torch.device("cpu"), shuffle=True, drop_last=True)
    assert [len(y) for _, y in batches] == [4, 4]
    tiny = DeviceBatches(_split(3), [0.0], [1.0], 8, torch.device("cpu"), drop_last=True)
    assert [len(y) for _, y in tiny] == [3]


def test_normalisation_matches_the_spec_formula():
    split = _split(4, c=3)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 0.125]
    x, y = next(iter(DeviceBatches(split, mean, std, 4, torch.device("cpu"))))
    expected = (split.x.astype(np.float32) / 255 - np.array(mean).reshape(1, 3, 1, 1)) / np.array(std).reshape(
        1, 3, 1, 1)
    assert np.allclose(x.numpy(), expected, atol=1e-6)
    assert y.tolist() == [0, 1, 2, 3]


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    out = random_crop(x, 2, "constant", gen)
    gen.set_state(state)
    dy = torch.randint(0, 5, (2,), generator=gen)
    dx = torch.randint(0, 5, (2,), generator=gen)
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 5])


def test_random_flip_mirrors_about_half_the_batch():
    x = torch.rand(400, 1, 4, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(400)]
    kept = [torch.equal(out[i], x[i]) for i in range(400)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 150 < sum(flipped) < 250


def test_same_generator_state_gives_the_same_augmented_batches():
    def epoch(seed):
        b = DeviceBatches(_split(12), [0.5], [0.5], 4, torch.device("cpu"), shuffle=True, crop_pad=2, flip=True,
                          gen=torch.Generator().manual_seed(seed))
        return [x for x, _ in b]

    assert all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(3), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(4), strict=True))


def test_random_resized_crops_are_torchvisions_own_drawn_from_the_whole_image(tmp_path):
    """A split marked for random-resized crops gives, per image and seed, exactly what torchvision's
    RandomResizedCrop gives on the whole decoded image; the crops change every epoch, and the same generator
    state draws the same epoch again (a resumed run)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(300, 200), (180, 260), (96, 96), (400, 120)]):
        paths.append(tmp_path / f"{i}.png")  # lossless, so the comparison is exact
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    split = FolderSplit(np.array(paths, dtype=str), np.arange(4), 64, "RGB", Framing(73, "bicubic"))
    crops = split.with_random_crops()
    for i, seed in [(0, 5), (1, 6), (3, 2**40 + 3)]:
        torch.manual_seed(seed)
        with Image.open(paths[i]) as img:
            want = np.asarray(RandomResizedCrop(64, interpolation=InterpolationMode.BICUBIC)(img.convert("RGB")))
        assert np.array_equal(random_resized_crop(crops, i, seed), want.transpose(2, 0, 1))
    assert not np.array_equal(random_resized_crop(crops, 0, 5), split.decode(0))  # not the centre crop

    def epoch(batches):
        return [(x.numpy().copy(), y.tolist()) for x, y in batches]

    def loader(seed):
        return StreamBatches(crops, [0.0] * 3, [1.0] * 3, 4, torch.device("cpu"), shuffle=True, workers=0,
                             gen=torch.Generator().manual_seed(seed))

    batches = loader(3)
    first, second = epoch(batches), epoch(batches)
    assert not np.array_equal(first[0][0], second[0][0])  # new crops every epoch
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, epoch(loader(3)), strict=True))
    held = StreamBatches(crops, [0.0] * 3, [1.0] * 3, 4, torch.device("cpu"), workers=0)  # evaluation
    x, _ = next(iter(held))
    assert np.allclose(x[0].numpy(), split.decode(0) / 255.0)  # evaluation frames, never crops at random
