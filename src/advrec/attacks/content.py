"""Targeted adversarial attacks on item images (TAaMR) and the image-quality measures they report.

TAaMR (Di Noia, Malitesta & Merra, DSN-W'20) perturbs the images of the items in a *source*
class so that the recommender's pretrained CNN classifies them as a *target* class; the
recommender (VBPR, AMR) then sees the re-extracted features. The VAR study (Anelli et al.,
SIGIR'21) uses the same two L∞ attacks with ε ∈ {4, 8} (and here 16) on the 0–255 scale:

- :func:`targeted_fgsm`: x' = clip₀₁(x − ε·sign(∇ₓ CE(logits(x), t))), one step;
- :func:`targeted_pgd`: ``steps`` such steps of size α (default ε/6, 10 steps), each projected
  back onto the ε-box around x and onto [0, 1] (Madry et al., ICLR'18; optional random start).

Both work on float images in [0, 1] (``eps`` in those units, e.g. 8/255). :func:`taamr` runs the
whole attack on uint8 images with ``eps`` in 0–255 units, quantises the result to 8 bits as a
saved image would be, re-encodes it and reports the success rate, PSNR and SSIM.

The encoder is any object with ``forward_pixels(x01) -> (features, logits)`` (differentiable
w.r.t. ``x01``, a float tensor (B, 3, H, W) in [0, 1], the model in eval mode) and
``encode(images_uint8, batch_size=64, progress=True) -> (features (n, D), top1 (n,))``, such as
`advrec.models.vision.ImageEncoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from advrec._lazy import lazy
from advrec.errors import DataError, ParamError
from advrec.training.perturbation import fgsm_direction, project
from advrec.training.progress import Progress
from advrec.validation import check_bool, check_choice, check_float, check_int, plain

torch = lazy("torch")
F = lazy("torch.nn.functional")

METHODS = ("pgd", "fgsm")
PGD_STEP_FRACTION = 1 / 6  # VAR (Anelli et al., SIGIR'21): α = ε/6, 10 steps
SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2, SSIM_RANGE = 1.5, 3.5, 0.01, 0.03, 255.0


# ----------------------------------------------------------------------------- pixel attacks
def targeted_fgsm(encoder, images01, target_class, eps: float, *,
                  batch_size: int = 32) -> torch.Tensor:
    """One targeted fast-gradient step: x − ε·sign(∇ₓ CE(logits(x), t)), clipped to [0, 1].

    ``images01``: float tensor (or array) (B, 3, H, W) in [0, 1]. ``target_class``: one class
    index for every image or one per image. ``eps`` in the images' units (8/255 for "ε = 8").
    Returns a detached tensor of the same shape on the images' device.
    """
    eps = check_float(eps, "eps", low=0, high=1, closed="right")
    return _run(encoder, images01, target_class, eps, steps=1, alpha=eps, random_start=False,
                seed=0, batch_size=batch_size)


def targeted_pgd(encoder, images01, target_class, eps: float, steps: int = 10,
                 step_size: float | None = None, random_start: bool = False, seed: int = 0, *,
                 batch_size: int = 32) -> torch.Tensor:
    """Targeted PGD in the L∞ ε-box: ``steps`` descents of CE toward ``target_class`` of size
    ``step_size`` (default ε/6), each followed by projection onto [x − ε, x + ε] ∩ [0, 1].

    ``random_start``: begin at x + U(−ε, ε) (seeded by ``seed``; clipped to [0, 1]) instead of x.
    Units and shapes as :func:`targeted_fgsm`.
    """
    eps = check_float(eps, "eps", low=0, high=1, closed="right")
    steps = check_int(steps, "steps", low=1)
    step_size = check_float(step_size, "step_size", low=0, closed="neither", none_ok=True)
    alpha = eps * PGD_STEP_FRACTION if step_size is None else step_size
    return _run(encoder, images01, target_class, eps, steps=steps, alpha=alpha,
                random_start=check_bool(random_start, "random_start"),
                seed=check_int(seed, "seed"), batch_size=batch_size)


def _run(encoder, images01, target_class, eps, *, steps, alpha, random_start, seed,
         batch_size) -> torch.Tensor:
    _check_encoder(encoder)
    batch_size = check_int(batch_size, "batch_size", low=1)
    x = _check_images01(images01)
    targets = _check_targets(target_class, len(x))
    device = encoder_device(encoder)
    gen = torch.Generator().manual_seed(seed) if random_start else None
    out = torch.empty_like(x)
    for start in range(0, len(x), batch_size):
        x0 = x[start:start + batch_size].to(device)
        t = targets[start:start + batch_size].to(device)
        adv = x0
        if random_start:
            noise = torch.rand(x0.shape, generator=gen, dtype=x0.dtype).to(device)
            adv = (x0 + (2 * noise - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            grad = target_gradient(encoder, adv, t)
            adv = adv - fgsm_direction(grad, alpha, "linf")  # descend CE toward the target
            adv = (x0 + project(adv - x0, eps, "linf")).clamp(0, 1)
        out[start:start + batch_size] = adv.to(out.device)
    return out


def target_gradient(encoder, x01: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇ₓ Σ CE(logits(x), t) for a batch (the encoder's parameters get no ``.grad``)."""
    leaf = x01.detach().requires_grad_(True)
    with torch.enable_grad():
        _, logits = encoder.forward_pixels(leaf)
        if logits.ndim != 2 or len(logits) != len(leaf):
            raise DataError(f"the encoder's forward_pixels returned logits of shape "
                            f"{tuple(logits.shape)}; expected (batch, classes)")
        n_classes = logits.shape[1]
        if int(target.max()) >= n_classes:
            raise ParamError("target_class", f"must be a class index in 0..{n_classes - 1} "
                                             f"(the encoder has {n_classes} classes), got "
                                             f"{int(target.max())}")
        loss = F.cross_entropy(logits, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, leaf)
    return grad


def target_probability(encoder, images01, target_class, *, batch_size: int = 32) -> np.ndarray:
    """softmax(logits(x))[t] per image (float64), from the encoder's ``forward_pixels``."""
    _check_encoder(encoder)
    batch_size = check_int(batch_size, "batch_size", low=1)
    x = _check_images01(images01)
    targets = _check_targets(target_class, len(x))
    device = encoder_device(encoder)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            _, logits = encoder.forward_pixels(x[start:start + batch_size].to(device))
            t = targets[start:start + batch_size].to(device)
            p = torch.softmax(logits.double(), dim=1).gather(1, t[:, None])[:, 0]
            out.append(p.cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def encoder_device(encoder) -> torch.device:
    """Where the encoder computes: its ``device`` attribute, else its first parameter's device,
    else the CPU."""
    dev = getattr(encoder, "device", None)
    if dev is not None:
        return torch.device(dev)
    params = getattr(encoder, "parameters", None)
    if callable(params):
        first = next(iter(params()), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def _check_encoder(encoder) -> None:
    missing = [m for m in ("forward_pixels", "encode") if not callable(getattr(encoder, m, None))]
    if missing:
        raise ParamError("encoder", f"expected an image encoder with forward_pixels(x01) and "
                                    f"encode(images); {type(encoder).__name__} has no "
                                    f"{' or '.join(missing)}")


def _check_images01(images01) -> torch.Tensor:
    x = images01 if isinstance(images01, torch.Tensor) else torch.from_numpy(np.array(images01))
    if x.ndim != 4 or x.shape[1] != 3:
        raise ParamError("images01", f"expected a float tensor (batch, 3, height, width), got "
                                     f"shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ParamError("images01", f"expected float values in [0, 1], got dtype {x.dtype} "
                                     f"(divide uint8 images by 255)")
    x = x.detach().float()
    if x.numel() and (not bool(torch.isfinite(x).all()) or float(x.min()) < 0
                      or float(x.max()) > 1):
        raise ParamError("images01", "expected finite values in [0, 1]")
    return x


def _check_targets(target_class, n: int) -> torch.Tensor:
    if np.ndim(target_class) == 0:
        one = target_class.item() if isinstance(target_class, np.ndarray) else target_class
        return torch.full((n,), check_int(one, "target_class", low=0), dtype=torch.int64)
    t = np.asarray(target_class)
    if t.ndim != 1 or len(t) != n:
        raise ParamError("target_class", f"expected one class index or one per image ({n}), "
                                         f"got shape {t.shape}")
    elif t.size and (not np.issubdtype(t.dtype, np.integer) or int(t.min()) < 0):
        raise ParamError("target_class", f"expected class indices >= 0, got {plain(t[0])}")
    return torch.from_numpy(t.astype(np.int64))


# ----------------------------------------------------------------------------- TAaMR
@dataclass(frozen=True)
class TAaMRResult:
    """What :func:`taamr` did to the attacked images (row k is item ``items[k]``).

    ``originals``: the clean images attacked, uint8 (k, H, W, 3).
    ``images``: the attacked images, uint8 (k, H, W, 3), i.e. rounded to 8 bits as a saved PNG
    would be (the float attack is never seen by the encoder); ``features``/``top1``: the
    encoder's output on those quantised images; ``clean_features``/``clean_top1``: on the
    originals. ``success``: top-1 is now the target class; ``success_rate`` its mean (share of
    the attacked images), ``clean_success_rate`` the same share before the attack. ``psnr``
    (dB, inf for an unchanged image) and ``ssim`` per image against the original (see
    :func:`psnr`, :func:`ssim`), with their means.
    """

    items: np.ndarray
    originals: np.ndarray
    images: np.ndarray
    features: np.ndarray
    top1: np.ndarray
    clean_features: np.ndarray
    clean_top1: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    target_class: int
    source_class: int | None
    method: str
    eps: float
    steps: int
    step_size: float

    @property
    def success(self) -> np.ndarray:
        return self.top1 == self.target_class

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())

    @property
    def clean_success_rate(self) -> float:
        return float((self.clean_top1 == self.target_class).mean())

    @property
    def mean_psnr(self) -> float:
        """Mean of the per-image PSNRs (inf when some image is unchanged)."""
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    @property
    def linf(self) -> int:
        """The largest change of any pixel channel, in 0–255 units (≤ ⌊eps⌋)."""
        diff = self.images.astype(np.int16) - self.originals.astype(np.int16)
        return int(np.abs(diff).max(initial=0))

    def replace_features(self, features: np.ndarray) -> np.ndarray:
        """A copy of a catalogue's feature matrix (one row per image given to :func:`taamr`)
        with the attacked items' rows replaced by their attacked features."""
        out = np.array(features, copy=True)
        if out.ndim != 2 or out.shape[1] != self.features.shape[1] or (
                len(self.items) and int(self.items.max()) >= len(out)):
            raise ParamError("features", f"expected the catalogue's (n_images, "
                                         f"{self.features.shape[1]}) feature matrix, got shape "
                                         f"{out.shape}")
        out[self.items] = self.features
        return out

    def summary(self) -> dict:
        """The scalar results as plain Python values (for a results table or JSON)."""
        return {"method": self.method, "eps": self.eps, "steps": self.steps,
                "step_size": self.step_size, "target_class": self.target_class,
                "source_class": self.source_class, "n_attacked": int(len(self.items)),
                "success_rate": self.success_rate, "clean_success_rate": self.clean_success_rate,
                "mean_psnr": self.mean_psnr, "mean_ssim": self.mean_ssim, "linf": self.linf}


def taamr(encoder, images, target_class: int, *, source_class: int | None = None,
          items=None, method: str = "pgd", eps: float = 8.0, steps: int = 10,
          step_size: float | None = None, random_start: bool = False, seed: int = 0,
          batch_size: int = 32, progress: bool | None = False) -> TAaMRResult:
    """TAaMR: attack item images so that the encoder's top-1 class becomes ``target_class``.

    ``images``: uint8 (n, H, W, 3), one per item (a catalogue). Which are attacked: ``items``
    (positions in ``images``; default all) and, when ``source_class`` is given, only those of
    them whose clean top-1 is ``source_class`` (TAaMR attacks one source category).
    ``method``: "pgd" or "fgsm". ``eps`` and ``step_size`` are in 0–255 units as in the papers
    (4, 8, 16; PGD step default eps/6, ``steps`` 10); the attack itself runs on x/255.

    The attacked float images are rounded to 8 bits; each channel then also lies within
    ⌊eps⌋ of the original (rounding may otherwise add ½ a level), so ``result.linf <= eps``.
    The quantised images are re-encoded for ``features`` and ``top1``. ``random_start``
    (PGD only) is seeded by ``seed`` (batch b by ``seed`` + its first row), so a run is
    reproducible for a given ``batch_size``. ``progress``: as `advrec.training.progress`.
    """
    _check_encoder(encoder)
    imgs = check_images_uint8(images, "images")
    target_class = check_int(target_class, "target_class", low=0)
    source_class = check_int(source_class, "source_class", low=0, none_ok=True)
    if source_class == target_class:
        raise ParamError("source_class", f"must differ from target_class ({target_class})")
    method = check_choice(method, "method", METHODS)
    eps = check_float(eps, "eps", low=0, high=255, closed="right")
    steps = 1 if method == "fgsm" else check_int(steps, "steps", low=1)
    step_size = check_float(step_size, "step_size", low=0, closed="neither", none_ok=True)
    if method == "fgsm":
        step_size = eps
    elif step_size is None:
        step_size = eps * PGD_STEP_FRACTION
    random_start = check_bool(random_start, "random_start")
    seed = check_int(seed, "seed")
    batch_size = check_int(batch_size, "batch_size", low=1)
    chosen = _check_items(items, len(imgs))

    clean_features, clean_top1 = _encode(encoder, imgs[chosen], batch_size)
    if source_class is not None:
        keep = clean_top1 == source_class
        chosen, clean_features, clean_top1 = chosen[keep], clean_features[keep], clean_top1[keep]
    if len(chosen) == 0:
        where = "" if items is None else " among the items given"
        raise DataError(f"no image to attack: none{where} has top-1 class {source_class} "
                        f"(source_class)" if source_class is not None else
                        "no image to attack: items is empty")

    originals = imgs[chosen]
    attacked = np.empty_like(originals)
    level = math.floor(eps)
    with Progress(f"TAaMR {method}", len(chosen), enabled=progress, unit="images") as bar:
        for start in range(0, len(chosen), batch_size):
            batch = originals[start:start + batch_size]
            x01 = torch.from_numpy(np.array(batch, np.float32)).permute(0, 3, 1, 2) / 255
            adv = _run(encoder, x01, target_class, eps / 255, steps=steps,
                       alpha=step_size / 255, random_start=random_start and method == "pgd",
                       seed=seed + start, batch_size=batch_size)
            attacked[start:start + batch_size] = quantise(adv, batch, level)
            bar.advance(n=len(batch))
    features, top1 = _encode(encoder, attacked, batch_size)
    return TAaMRResult(items=chosen, originals=originals, images=attacked, features=features,
                       top1=top1, clean_features=clean_features, clean_top1=clean_top1,
                       psnr=psnr(originals, attacked), ssim=ssim(originals, attacked),
                       target_class=target_class, source_class=source_class, method=method,
                       eps=eps, steps=steps, step_size=float(step_size))


def quantise(x01: torch.Tensor, originals: np.ndarray | None = None,
             max_change: int | None = None) -> np.ndarray:
    """Float images (B, 3, H, W) in [0, 1] as uint8 (B, H, W, 3), rounded to the nearest level;
    with ``originals`` (uint8 (B, H, W, 3)) and ``max_change``, each channel is also kept within
    ``max_change`` levels of the original."""
    q = torch.round(x01.detach().cpu().double() * 255).clamp(0, 255).permute(0, 2, 3, 1)
    q = q.to(torch.int16).numpy()
    if originals is not None and max_change is not None:
        o = originals.astype(np.int16)
        q = np.clip(q, o - max_change, o + max_change)
    return q.astype(np.uint8)


def _encode(encoder, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    features, top1 = encoder.encode(images, batch_size=batch_size, progress=False)
    features, top1 = np.asarray(features, dtype=np.float32), np.asarray(top1, dtype=np.int64)
    if len(features) != len(images) or len(top1) != len(images):
        raise DataError(f"the encoder's encode returned {len(features)} feature rows and "
                        f"{len(top1)} classes for {len(images)} images")
    return features, top1


def _check_items(items, n: int) -> np.ndarray:
    if items is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(items)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1):
        raise ParamError("items", f"expected a 1-D array of image positions, got "
                                  f"{arr.ndim}-D values of type {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
        raise ParamError("items", f"positions must lie in 0..{n - 1} (one per image), got "
                                  f"{int(bad[0])}")
    if len(np.unique(arr)) != len(arr):
        raise ParamError("items", "positions must be distinct")
    return arr


def check_images_uint8(images, name: str = "images") -> np.ndarray:
    """``images`` as a uint8 array (n, H, W, 3) (a clear error otherwise)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ParamError(name, f"expected uint8 images (n, height, width, 3), got dtype "
                               f"{arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ParamError(name, f"expected uint8 images (n, height, width, 3), got shape "
                               f"{arr.shape}")
    return arr


# ----------------------------------------------------------------------------- image quality
def _pair(a, b) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two uint8 images or batches of equal shape as (n, H, W, C) and whether one was given."""
    a, b = np.asarray(a), np.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if x.dtype != np.uint8:
            raise ParamError(name, f"expected uint8 images, got dtype {x.dtype}")
    if a.shape != b.shape:
        raise ParamError("b", f"expected the shape of a {a.shape}, got {b.shape}")
    if a.ndim not in (2, 3, 4):
        raise ParamError("a", f"expected an image (H, W) or (H, W, C) or a batch (n, H, W, C), "
                              f"got shape {a.shape}")
    single = a.ndim < 4
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if single:
        a, b = a[None], b[None]
    return a, b, single


def psnr(a, b):
    """Peak signal-to-noise ratio in dB of uint8 images: 10·log₁₀(255² / MSE), the MSE over
    every pixel and channel of an image. ``inf`` for identical images (MSE 0).

    ``a``, ``b``: one image (H, W[, C]) → a float, or a batch (n, H, W, C) → float64 (n,).
    """
    a, b, single = _pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = (diff * diff).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        out = 10 * np.log10(SSIM_RANGE ** 2 / mse)
    return float(out[0]) if single else out


def _gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)  # scipy.ndimage's radius: 5 taps a side at σ = 1.5
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a, b, *, batch_size: int = 16):
    """Structural similarity (Wang et al., IEEE TIP 2004) of uint8 images.

    The standard form: an 11×11 Gaussian window (σ = 1.5, scipy's 3.5σ truncation), K1 = 0.01,
    K2 = 0.03, L = 255, population (not sample) covariances; the SSIM map is averaged over the
    positions whose window lies inside the image (a 5-pixel border is left out) and then over
    the channels. This is what ``skimage.metrics.structural_similarity(a, b, channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`` computes.
    Both sides of an image must be at least 11 pixels. Computed in float64 with torch conv2d.

    ``a``, ``b``: one image (H, W[, C]) → a float, or a batch (n, H, W, C) → float64 (n,).
    """
    a, b, single = _pair(a, b)
    batch_size = check_int(batch_size, "batch_size", low=1)
    taps = _gaussian_taps()
    k = len(taps)
    n, h, w, c = a.shape
    if h < k or w < k:
        raise ParamError("a", f"SSIM needs images of at least {k}×{k} pixels, got {h}×{w}")
    col = torch.from_numpy(taps).reshape(1, 1, k, 1)
    row = torch.from_numpy(taps).reshape(1, 1, 1, k)
    c1, c2 = (SSIM_K1 * SSIM_RANGE) ** 2, (SSIM_K2 * SSIM_RANGE) ** 2
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.array(a[start:start + batch_size], np.float64))
        y = torch.from_numpy(np.array(b[start:start + batch_size], np.float64))
        x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
        m = len(x)
        stack = torch.stack([x, y, x * x, y * y, x * y], dim=2)  # (m, C, 5, H, W)
        blurred = F.conv2d(F.conv2d(stack.reshape(-1, 1, h, w), col), row)
        ux, uy, uxx, uyy, uxy = blurred.reshape(m, c, 5, h - k + 1, w - k + 1).unbind(2)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[start:start + m] = s.mean(dim=(2, 3)).mean(dim=1).numpy()
    return float(out[0]) if single else out
