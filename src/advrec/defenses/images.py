"""Image-side input transformations against adversarial item images (TAaMR and the like).

The defender re-processes every item image before the recommender's CNN extracts its features,
hoping to wash out a small, carefully placed perturbation while keeping the picture:

- ``"jpeg"`` (:func:`jpeg_compress`): JPEG re-compression at a given quality (Dziugaite et al.
  2016; Das et al. 2017; Guo et al., ICLR'18), through Pillow in memory;
- ``"bit_depth"`` (:func:`reduce_bit_depth`): colour bit-depth reduction, the feature
  squeezing of Xu, Evans & Qi (NDSS'18): each channel keeps ``2**bits`` evenly spaced levels.

These are the input-transformation defences that studies of visual recommenders under attack
(Anelli et al., SIGIR'21) compare with robust (adversarially trained) feature extractors.
:func:`transform` dispatches by name. Both take and return uint8 images (n, H, W, 3) (or one
image (H, W, 3)) of unchanged shape.
"""

from __future__ import annotations

import io

import numpy as np

from advrec.errors import ParamError
from advrec.validation import check_choice, check_int

TRANSFORMS = ("jpeg", "bit_depth")
_PARAMS = {"jpeg": ("quality",), "bit_depth": ("bits",)}


def _check_images(images, name: str = "images") -> tuple[np.ndarray, bool]:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ParamError(name, f"expected uint8 images (n, height, width, 3) or one image "
                               f"(height, width, 3), got dtype {arr.dtype}")
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ParamError(name, f"expected uint8 images (n, height, width, 3) or one image "
                               f"(height, width, 3), got shape {arr.shape}")
    return arr, arr.ndim == 3


def jpeg_compress(images, quality: int = 75) -> np.ndarray:
    """Each image saved as a baseline JPEG of ``quality`` (1–100, Pillow's scale; 75 is its
    default; Pillow's default 4:2:0 chroma subsampling) in memory and decoded back to RGB."""
    from PIL import Image

    arr, single = _check_images(images)
    quality = check_int(quality, "quality", low=1, high=100)
    batch = arr[None] if single else arr
    out = np.empty_like(batch)
    for k, img in enumerate(batch):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out[k] = np.asarray(decoded.convert("RGB"))
    return out[0] if single else out


def bit_depth_levels(bits: int) -> np.ndarray:
    """The uint8 value each of 0..255 maps to at ``bits`` bits per channel (a 256-entry table):
    v ↦ round(round(v/255·(2^b−1)) · 255/(2^b−1)). Both roundings never meet a tie, so the
    table is exact; 0 ↦ 0 and 255 ↦ 255 at every depth, and 8 bits is the identity."""
    bits = check_int(bits, "bits", low=1, high=8)
    top = 2 ** bits - 1
    v = np.arange(256, dtype=np.float64)
    return np.round(np.round(v / 255 * top) * 255 / top).astype(np.uint8)


def reduce_bit_depth(images, bits: int = 4) -> np.ndarray:
    """Feature squeezing (Xu et al., NDSS'18): every channel value rounded to the nearest of
    ``2**bits`` evenly spaced levels of 0..255 (``bits`` 1–8; at 4 bits the levels are the
    multiples of 17). A table look-up, vectorised over the whole batch."""
    arr, _ = _check_images(images)
    return bit_depth_levels(bits)[arr]


def transform(name: str, images, **params) -> np.ndarray:
    """Apply the input transformation ``name`` ("jpeg": ``quality``; "bit_depth": ``bits``)."""
    name = check_choice(name, "name", TRANSFORMS)
    extra = sorted(set(params) - set(_PARAMS[name]))
    if extra:
        raise ParamError(extra[0], f"is not an option of the {name!r} transformation; it "
                                   f"takes {', '.join(_PARAMS[name])}")
    if name == "jpeg":
        return jpeg_compress(images, **params)
    return reduce_bit_depth(images, **params)
