"""Item images (posters, product photos) for visual recommenders: which file shows which item, a
hash of the files' bytes, and decoding them into fixed-size RGB arrays for a CNN.

An :class:`ImageSet` is laid over the item id space of an :class:`~advrec.data.Interactions`
(row ``i`` is internal item ``i``): :func:`image_set_for` maps each raw item id to a file name
(``pattern`` with ``{id}`` = raw id + ``id_offset``); an item whose file does not exist has
``present[i] == False`` and no image (its content features are a zero row, see
:mod:`advrec.data.content`). :func:`dataset_images` does this for a registered data set with
images (``ml-1m-posters``: :func:`poster_image_set`).

``manifest_hash`` identifies exactly what the encoder will see, for the feature cache: the
sha256 of one line per item, in item order, ``"<i>\\t<relative path>\\t<sha256 of the file>\\n"``
(``"<i>\\t\\t\\n"`` for an item without an image), after the header line
``"advrec-images v1 <n_items>\\n"``. The files' bytes are always hashed (3,872 posters, 54 MB:
well under a second from a warm disk), never their size or mtime; when the data set ships a
manifest (``MANIFEST.tsv``, columns ``path`` and ``sha256``) every image is also checked
against it, so a changed, missing or extra file is a :class:`DataError` naming it.

:func:`load_images` decodes by content (a PNG named ``.jpg`` and a grayscale JPEG are fine),
converts to RGB (an alpha channel is dropped), resizes the shorter side to
``round(size / crop_fraction)`` pixels with bilinear filtering and cuts the centred
``size`` × ``size`` square: the usual ImageNet evaluation transform (short side 256, centre crop
224 for the default ``crop_fraction`` 0.875). ``crop_fraction=1`` resizes the short side to
``size`` itself and keeps more of a tall poster.

numpy and Pillow only (Pillow is imported on first use).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

import advrec.data.datasets as datasets
from advrec.errors import ConfigError, DataError, ParamError
from advrec.validation import check_float, check_index_array, check_int, plain

__all__ = ["DEFAULT_CROP_FRACTION", "DEFAULT_SIZE", "ImageSet", "dataset_images", "decode_image",
           "image_set_for", "load_images", "poster_image_set", "read_manifest"]

DEFAULT_SIZE = 224
"""Side of the square images fed to the CNN (EfficientNet-Lite0 and most ImageNet CNNs)."""
DEFAULT_CROP_FRACTION = 0.875
"""Share of the resized short side kept by the centre crop (224 of 256)."""
HASH_HEADER = "advrec-images v1"
_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class ImageSet:
    """The image of every item of an id space (row ``i`` = internal item ``i``).

    ``folder``: where the files are; ``item_ids``: each item's raw id; ``files``: each item's
    path relative to ``folder`` (``None``: the item has no image); ``sha256``: each file's
    sha256 (``None`` likewise); ``manifest_hash``: see the module docstring; ``name``: what the
    images are (a data set name). ``present`` (derived): bool mask of the items with an image.
    """

    folder: Path
    item_ids: np.ndarray
    files: tuple[str | None, ...]
    sha256: tuple[str | None, ...]
    manifest_hash: str
    name: str = ""
    present: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if len(self.files) != n or len(self.sha256) != n:
            raise ParamError("files", f"expected one entry per item ({n}), got {len(self.files)} "
                                      f"files and {len(self.sha256)} hashes")
        present = np.fromiter((f is not None for f in self.files), dtype=bool, count=n)
        object.__setattr__(self, "folder", Path(self.folder))
        object.__setattr__(self, "present", present)

    @property
    def n_items(self) -> int:
        return len(self.files)

    @property
    def n_present(self) -> int:
        return int(self.present.sum())

    @property
    def missing(self) -> np.ndarray:
        """Internal ids of the items without an image."""
        return np.flatnonzero(~self.present)

    def path(self, item: int) -> Path | None:
        """The image file of internal item ``item`` (None when it has none)."""
        item = check_int(item, "item", low=0, high=self.n_items - 1)
        rel = self.files[item]
        return None if rel is None else self.folder / rel

    def __repr__(self) -> str:
        return (f"ImageSet({self.name or self.folder!s}: {self.n_present} of {self.n_items} "
                f"items have an image, manifest {self.manifest_hash[:12]})")


# ----------------------------------------------------------------------------- building
def image_set_for(item_ids, folder: str | os.PathLike, pattern: str = "{id}.jpg", *,
                  id_offset: int = 0, manifest: str | os.PathLike | None = None,
                  name: str = "") -> ImageSet:
    """The :class:`ImageSet` of an id space: item ``i``'s image is
    ``folder / pattern.format(id=item_ids[i] + id_offset)`` when that file exists.

    ``item_ids``: the raw item ids in internal order (``Interactions.item_ids``, or the
    Interactions itself); ``id_offset`` is added to integer ids (ml-1m-implicit's raw id is
    MovieID − 1, its posters are named by MovieID: offset 1) and must be 0 for string ids.
    ``manifest``: a TAB-separated file with a header naming ``path`` and ``sha256`` columns
    (paths relative to ``folder``); every image found is checked against it, and a listed
    image that is missing is an error too. Every file's bytes are hashed.
    """
    item_ids = np.asarray(getattr(item_ids, "item_ids", item_ids))
    if item_ids.ndim != 1:
        raise ParamError("item_ids", f"expected one raw id per item, got shape {item_ids.shape}")
    if not isinstance(folder, (str, os.PathLike)):
        raise ParamError("folder", f"expected a folder path, got {plain(folder)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    if not isinstance(pattern, str) or "{id}" not in pattern:
        raise ParamError("pattern", f"expected a file name pattern with {{id}}, such as "
                                    f"'{{id}}.jpg', got {plain(pattern)}")
    id_offset = check_int(id_offset, "id_offset")
    integer = item_ids.dtype.kind in "iu"
    if id_offset and not integer:
        raise ParamError("id_offset", f"applies to integer ids only; the item ids are "
                                      f"{item_ids.dtype} (pass id_offset=0)")
    listed = read_manifest(folder / manifest) if manifest is not None else None
    files: list[str | None] = []
    hashes: list[str | None] = []
    for raw in item_ids.tolist():
        rel = _relative(pattern.format(id=raw + id_offset if integer else raw), pattern)
        path = folder / rel
        if path.is_file():
            digest = _sha256(path)
            if listed is not None:
                _check_listed(path, rel, digest, listed, manifest)
            files.append(rel)
            hashes.append(digest)
        else:
            if listed is not None and rel in listed:
                raise DataError(f"{path}: missing, but {manifest} lists it")
            files.append(None)
            hashes.append(None)
    return ImageSet(folder, item_ids, tuple(files), tuple(hashes), _manifest_hash(files, hashes),
                    name=str(name))


def _relative(rel: str, pattern: str) -> str:
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ParamError("pattern", f"must give a path inside the folder; {pattern!r} gives "
                                    f"{rel!r}")
    return pure.as_posix()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({exc.strerror or exc})") from None
    return h.hexdigest()


def _check_listed(path: Path, rel: str, digest: str, listed: dict[str, str], manifest) -> None:
    expected = listed.get(rel)
    if expected is None:
        raise DataError(f"{path}: not listed in {manifest}")
    if expected != digest:
        raise DataError(f"{path}: sha256 {digest} differs from {expected} in {manifest}; the "
                        f"file was changed or damaged")


def _manifest_hash(files, hashes) -> str:
    h = hashlib.sha256(f"{HASH_HEADER} {len(files)}\n".encode())
    for i, (rel, digest) in enumerate(zip(files, hashes, strict=True)):
        h.update(f"{i}\t{rel or ''}\t{digest or ''}\n".encode())
    return h.hexdigest()


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` from a TAB-separated manifest whose header names ``path`` and
    ``sha256`` columns (the format of ml-1m-posters' ``MANIFEST.tsv``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise DataError(f"{path}: cannot read the manifest ({reason})") from None
    header = lines[0].split("\t") if lines else []
    if "path" not in header or "sha256" not in header:
        raise DataError(f"{path}: line 1: expected a header with 'path' and 'sha256' columns, got "
                        f"{plain(lines[0] if lines else '')}")
    ip, ih = header.index("path"), header.index("sha256")
    out: dict[str, str] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(header) or len(cols[ih]) != 64:
            raise DataError(f"{path}: line {lineno}: expected {len(header)} TAB-separated "
                            f"columns with a 64-digit sha256, got {plain(line)}")
        out[PurePosixPath(cols[ip]).as_posix()] = cols[ih].lower()
    return out


def dataset_images(name: str, *, root: str | os.PathLike | None = None,
                   items=None) -> ImageSet:
    """The :class:`ImageSet` of a registered data set with images (its spec's ``images``),
    over the item id space of ``items`` (an Interactions or raw item ids; default: the data
    set's own interactions, e.g. ml-1m-implicit's 3,706 items for ml-1m-posters). Checked
    against the data set's manifest."""
    spec = datasets._spec(name)
    layout = spec.images
    if layout is None:
        raise DataError(f"data set {name!r} has no item images")
    folder = datasets._locate(spec, root)
    if items is None:
        items = datasets.load(name, root=root)
    return image_set_for(items, folder, layout.pattern, id_offset=layout.id_offset,
                         manifest=layout.manifest, name=name)


def poster_image_set(root: str | os.PathLike | None = None, items=None) -> ImageSet:
    """The ml-1m-posters images over ml-1m-implicit's item ids (or those of ``items``): item
    ``i`` shows MovieID ``item_ids[i] + 1``; 3,699 of the 3,706 items have a poster, the other 7
    have ``present`` False."""
    return dataset_images("ml-1m-posters", root=root, items=items)


# ----------------------------------------------------------------------------- decoding
def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("decoding images needs Pillow: pip install 'advrec[vision]'") from None
    return Image


def decode_image(path: str | os.PathLike, size: int = DEFAULT_SIZE,
                 crop_fraction: float = DEFAULT_CROP_FRACTION) -> np.ndarray:
    """One image file as uint8 RGB (size, size, 3): decoded by content, converted to RGB, short
    side resized to ``round(size / crop_fraction)`` (bilinear), centre-cropped to ``size``.
    A file that is missing or not a readable image is a :class:`DataError` naming it."""
    Image = _pil()
    size = check_int(size, "size", low=1)
    crop_fraction = check_float(crop_fraction, "crop_fraction", low=0, high=1, closed="right")
    path = Path(path)
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")  # decodes the whole file
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from None
    short = max(size, round(size / crop_fraction))
    w, h = rgb.size
    scale = short / min(w, h)
    new = (max(short, round(w * scale)), max(short, round(h * scale)))
    if new != (w, h):
        rgb = rgb.resize(new, Image.Resampling.BILINEAR)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    out = np.asarray(rgb.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return out


def load_images(image_set: ImageSet, items=None, size: int = DEFAULT_SIZE,
                crop_fraction: float = DEFAULT_CROP_FRACTION) -> np.ndarray:
    """The images of ``items`` (internal ids; default: every item that has an image, in item
    order) as one uint8 array (n, size, size, 3), each as :func:`decode_image` makes it.

    An item without an image is a :class:`DataError` naming it (select
    ``np.flatnonzero(image_set.present)``); so is a file that cannot be decoded.
    """
    if not isinstance(image_set, ImageSet):
        raise ParamError("image_set", f"expected an ImageSet, got {type(image_set).__name__}")
    size = check_int(size, "size", low=1)
    crop_fraction = check_float(crop_fraction, "crop_fraction", low=0, high=1, closed="right")
    if items is None:
        items = np.flatnonzero(image_set.present)
    else:
        items = check_index_array(items, "items", image_set.n_items)
    lacking = items[~image_set.present[items]]
    if lacking.size:
        shown = ", ".join(str(int(i)) for i in lacking[:5]) + (", ..." if lacking.size > 5 else "")
        raise DataError(f"{lacking.size} requested item(s) have no image in "
                        f"{image_set.name or image_set.folder} (internal ids {shown})")
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for k, i in enumerate(items.tolist()):
        out[k] = decode_image(image_set.folder / image_set.files[i], size, crop_fraction)
    return out
