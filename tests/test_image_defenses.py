"""Image-side input transformations: JPEG re-compression and bit-depth reduction."""

from __future__ import annotations

import numpy as np
import pytest

from advrec.attacks.content import psnr, ssim
from advrec.defenses.images import (
    TRANSFORMS,
    bit_depth_levels,
    jpeg_compress,
    reduce_bit_depth,
    transform,
)
from advrec.errors import ParamError


@pytest.fixture(scope="module")
def poster(data_dir):
    from PIL import Image

    path = data_dir / "ml-1m-posters" / "MovieImages" / "260.jpg"  # Star Wars, 185×278
    if not path.is_file():
        pytest.skip("ml-1m-posters not staged")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


# ----------------------------------------------------------------------------- bit depth
def test_bit_depth_by_hand():
    v = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    out = reduce_bit_depth(v, bits=4)
    assert out.shape == v.shape and out.dtype == np.uint8
    assert np.unique(out).tolist() == list(range(0, 256, 17))  # 16 levels, multiples of 17
    flat = out[0, ..., 0].reshape(-1)
    assert flat[0] == 0 and flat[255] == 255
    assert flat[8] == 0 and flat[9] == 17 and flat[25] == 17 and flat[26] == 34  # 8.5 splits
    assert reduce_bit_depth(v, bits=1)[0, ..., 0].reshape(-1).tolist() == [0] * 128 + [255] * 128
    assert np.array_equal(reduce_bit_depth(v, bits=8), v)  # 8 bits: identity
    assert bit_depth_levels(3)[[0, 18, 19, 36, 37, 255]].tolist() == [0, 0, 36, 36, 36, 255]


@pytest.mark.parametrize("bits", range(1, 9))
def test_bit_depth_level_count_and_idempotence(bits):
    levels = bit_depth_levels(bits)
    assert len(np.unique(levels)) == 2 ** bits
    assert levels[0] == 0 and levels[255] == 255
    assert (np.diff(levels.astype(int)) >= 0).all()  # monotone
    assert np.array_equal(levels[levels], levels)  # squeezing twice changes nothing
    assert np.abs(levels.astype(int) - np.arange(256)).max() <= np.ceil(255 / (2 ** bits - 1) / 2)


def test_bit_depth_of_one_image_keeps_its_shape():
    img = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    assert reduce_bit_depth(img, 5).shape == (5, 7, 3)


# ----------------------------------------------------------------------------- JPEG
def test_jpeg_changes_a_real_poster_a_little(poster):
    out = jpeg_compress(poster, quality=75)
    assert out.shape == poster.shape and out.dtype == np.uint8
    value = psnr(poster, out)
    # measured 36.7 dB on poster 260 (2: 31.4, 2571: 36.4; the saturated red/blue poster 1
    # only 24.8 dB: Pillow's default 4:2:0 chroma subsampling costs most there)
    assert 25 < value < 60
    assert 0.8 < ssim(poster, out) < 1
    lower = psnr(poster, jpeg_compress(poster, quality=20))
    assert lower < value  # a lower quality costs more
    batch = jpeg_compress(np.stack([poster, poster[::-1].copy()]), quality=75)
    assert batch.shape == (2, *poster.shape)
    np.testing.assert_array_equal(batch[0], out)  # per image, deterministic


def test_jpeg_of_a_flat_image_is_nearly_exact():
    flat = np.full((2, 16, 24, 3), (200, 30, 90), np.uint8)
    out = jpeg_compress(flat, 90)
    assert out.shape == flat.shape and np.abs(out.astype(int) - flat).max() <= 3


# ----------------------------------------------------------------------------- dispatcher
def test_transform_dispatches_by_name():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    assert TRANSFORMS == ("jpeg", "bit_depth")
    np.testing.assert_array_equal(transform("bit_depth", imgs, bits=3), reduce_bit_depth(imgs, 3))
    np.testing.assert_array_equal(transform("JPEG", imgs), jpeg_compress(imgs, 75))


@pytest.mark.parametrize(("call", "name"), [
    (lambda x: transform("blur", x), "name"),
    (lambda x: transform("jpeg", x, bits=4), "bits"),
    (lambda x: transform("bit_depth", x, quality=4), "quality"),
    (lambda x: transform("bit_depth", x, bits=0), "bits"),
    (lambda x: transform("bit_depth", x, bits=9), "bits"),
    (lambda x: transform("bit_depth", x, bits=4.0), "bits"),
    (lambda x: jpeg_compress(x, quality=0), "quality"),
    (lambda x: jpeg_compress(x, quality=101), "quality"),
    (lambda x: jpeg_compress(x.astype(np.float32)), "images"),
    (lambda x: reduce_bit_depth(x[..., :1]), "images"),
    (lambda x: jpeg_compress(x[0, 0]), "images"),
])
def test_bad_parameters_name_the_parameter(call, name):
    imgs = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ParamError) as err:
        call(imgs)
    assert err.value.name == name
