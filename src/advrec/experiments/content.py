"""Content features and content attacks of an experiment: the items' feature matrix from
``data.content`` (or the posters of ``ml-1m-posters``), built once and cached by the source's
hash, and the TAaMR attack of each ``content_attacks`` variant, run once per seed and shared by
every content-aware model (the attack is on the CNN, not on the recommender)."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advrec.errors import ConfigError

POSTERS = "ml-1m-posters"  # the registered data set that brings its images


@dataclass
class AttackedContent:
    """What one TAaMR variant did: the attacked items (internal ids), their re-extracted raw
    features (after the image defence), the mask of the source category's items, the
    attack's scalar results and a few before/after examples (JPEG data URLs with classes)."""

    items: np.ndarray
    features: np.ndarray
    clean_features: np.ndarray
    in_source: np.ndarray
    info: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)

    def feature_delta(self, model):
        """Δ on ``model``'s (scaled) content block that puts the attacked features in place."""
        import torch

        block = model.parameter_blocks()["item_content"]
        delta = torch.zeros_like(block)
        idx = torch.from_numpy(self.items).to(block.device)
        new = torch.from_numpy(self.features / model.feature_scale_).to(block)
        delta[idx] = new - block[idx]
        return delta

    def summary(self) -> dict[str, Any]:
        return dict(self.info)


def content_source(config) -> dict[str, Any] | None:
    """The content recipe of the experiment's data (``data.content``, or the posters of
    ``ml-1m-posters``), as a plain dict; None when the data has no content."""
    data = config.data
    if data.content is not None:
        return data.content.model_dump()
    if data.path is None and data.dataset == POSTERS:
        return {"source": "posters", "path": None, "pattern": "{id}.jpg",
                "encoder": "efficientnet-lite0", "batch_size": 64}
    return None


def item_features(recipe: dict[str, Any], train, device: str | None = None,
                  progress: bool | None = False):
    """The ``ItemFeatures`` of ``train``'s items from a content recipe: images through the CNN
    (cached by the image set's hash and the encoder), a feature file, or a tags file."""
    from advrec.data import content as C

    source = recipe["source"]
    if source == "file":
        return C.ItemFeatures.from_file(recipe["path"], train.n_items)
    if source == "tags":
        return C.ItemFeatures.from_tags(C.read_item_tags(recipe["path"]), item_ids=train.item_ids,
                                        source=str(recipe["path"]))
    from advrec.models.vision import ImageEncoder, image_features, poster_features

    encoder = ImageEncoder(recipe["encoder"], device=device)
    if source == "posters":
        return poster_features(encoder=encoder, items=train.item_ids,
                               batch_size=recipe["batch_size"], progress=progress)
    return image_features(image_set(recipe, train), encoder, batch_size=recipe["batch_size"],
                          progress=progress)


def image_set(recipe: dict[str, Any], train):
    """The image of each of ``train``'s items (by raw id and ``pattern``) under the recipe's
    folder, or the staged posters."""
    from advrec.data import images as I

    if recipe["source"] == "posters":
        return I.poster_image_set(items=train.item_ids)
    if recipe["source"] != "images":
        raise ConfigError(f"content_attacks attack images, but data.content.source is "
                          f"{recipe['source']!r}: give source: images (a folder of item images)")
    return I.image_set_for(train.item_ids, recipe["path"], recipe["pattern"])


def class_index(value: str | int, names: tuple[str, ...], what: str) -> int:
    """An ImageNet class by name (``comic_book`` or ``comic book``) or index."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return value
    else:
        wanted = str(value).strip().lower().replace(" ", "_")
        for i, n in enumerate(names):
            if n.lower().replace(" ", "_") == wanted:
                return i
    raise ConfigError(f"content_attacks.{what}: {value!r} is not an ImageNet class name or index "
                      f"0..{len(names) - 1} (e.g. {names[917]!r})")


def auto_classes(categories: np.ndarray, popularity: np.ndarray, min_items: int
                 ) -> tuple[int, int]:
    """(source, target) visual classes: among the classes of at least ``min_items`` items, the
    one whose items have the fewest training interactions on average, and the one with the
    most (TAaMR attacks a less recommended category toward a more recommended one)."""
    present = categories >= 0
    counts = np.bincount(categories[present], minlength=1)
    frequent = np.flatnonzero(counts >= min_items)
    if len(frequent) < 2:
        raise ConfigError(f"content_attacks: fewer than two visual classes hold "
                          f"{min_items} items (min_class_items); name source and target")
    totals = np.bincount(categories[present], weights=popularity[present],
                         minlength=len(counts))
    mean = totals[frequent] / counts[frequent]
    return int(frequent[np.argmin(mean)]), int(frequent[np.argmax(mean)])


TRANSFORM_KEYS = ("transform", "transform_params", "examples")  # what the pixel attack ignores


def attack_content(recipe: dict[str, Any], features, train, attack: dict[str, Any], seed: int,
                   device: str | None = None, progress: bool | None = False,
                   cache: dict | None = None) -> AttackedContent:
    """Run one TAaMR variant on ``train``'s items: choose the classes, attack the source
    items' images, apply the image defence, re-extract their features. ``cache`` (a dict)
    keeps the pixel attack of each variant, so variants that differ only in the image defence
    attack once."""
    from advrec.attacks.content import taamr
    from advrec.data.images import load_images
    from advrec.defenses.images import transform
    from advrec.models.vision import ImageEncoder, class_names

    names = class_names()
    categories = np.asarray(features.categories)
    popularity = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
    wants_auto = "auto" in (attack["source"], attack["target"])
    auto = (auto_classes(categories, popularity, attack["min_class_items"]) if wants_auto
            else (None, None))
    source = auto[0] if attack["source"] == "auto" else class_index(attack["source"], names,
                                                                     "source")
    target = auto[1] if attack["target"] == "auto" else class_index(attack["target"], names,
                                                                     "target")
    if source == target:
        raise ConfigError(f"content_attacks: source and target are the same class "
                          f"({names[source]!r})")
    in_source = categories == source
    items = np.flatnonzero(in_source)
    if len(items) == 0:
        raise ConfigError(f"content_attacks.source: no item's image is classified "
                          f"{names[source]!r}")
    if attack["max_items"] is not None:
        items = items[:attack["max_items"]]
    encoder = ImageEncoder(recipe["encoder"], device=device)
    key = json.dumps([seed, recipe, source, target, items.tolist(),
                      {k: v for k, v in attack.items() if k not in TRANSFORM_KEYS}],
                     sort_keys=True, default=str)
    res = None if cache is None else cache.get(key)
    if res is None:
        images = load_images(image_set(recipe, train), items)
        res = taamr(encoder, images, target, method=attack["method"], eps=attack["eps"],
                    steps=attack["steps"], seed=seed, progress=progress)
        if cache is not None:
            cache[key] = res
    shown = res.images
    new_features, new_top1 = res.features, res.top1
    if attack["transform"] != "none":
        shown = transform(attack["transform"], res.images,
                          **attack["transform_params"].get(attack["transform"], {}))
        new_features, new_top1 = encoder.encode(shown, progress=False)
    success = float(np.mean(new_top1 == target))
    info = {**res.summary(), "source_class": source, "source_name": names[source],
            "target_name": names[target], "n_source_items": int(in_source.sum()),
            "transform": attack["transform"], "success_rate_attack": res.success_rate,
            "success_rate": success}
    attacked = items[res.items]  # taamr's rows are positions in the images given to it
    examples = [{"item": str(train.item_ids[attacked[j]]),
                 "before": _data_url(res.originals[j]), "after": _data_url(shown[j]),
                 "class_before": names[int(res.clean_top1[j])],
                 "class_after": names[int(new_top1[j])],
                 "psnr": float(res.psnr[j]), "ssim": float(res.ssim[j])}
                for j in range(min(attack["examples"], len(attacked)))]
    return AttackedContent(items=attacked, features=new_features, clean_features=res.clean_features,
                           in_source=in_source, info=info, examples=examples)


def _data_url(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) image as a PNG data URL (lossless: what the encoder saw)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
