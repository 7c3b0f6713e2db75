"""Tests of thermo.data: MNIST loader, toy data sets, user data (CSV/arrays)."""
import gzip
import hashlib
import shutil
import struct
import time

import numpy as np
import pytest

import thermo.data as data
from thermo.data import (DataError, from_arrays, load_csv, load_mnist, make_dataset,
                         save_csv, spiral, squares, two_circles, two_clusters)
from thermo.data import mnist as mnist_module
from thermo.data.toy import from_signed_labels, to_signed_labels

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TOY = ["two_clusters", "squares", "spiral", "two_circles"]


# ---------------------------------------------------------------- MNIST (shipped data)

@pytest.fixture(scope="module")
def mnist_test_uint8():
    return load_mnist("test", as_uint8=True)


def test_mnist_train_shapes_ranges_counts():
    X, y = load_mnist("train")
    assert X.shape == (60000, 784) and X.dtype == np.float64
    assert y.shape == (60000,) and y.dtype == np.int64
    assert X.flags.c_contiguous and X.flags.writeable and y.flags.writeable
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    # well-known first training labels
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # pixels are multiples of 1/255
    sample = X[:50] * 255
    assert np.allclose(sample, np.round(sample), atol=1e-9)


def test_mnist_test_counts_and_uint8(mnist_test_uint8):
    Xu, yu = mnist_test_uint8
    assert Xu.shape == (10000, 784) and Xu.dtype == np.uint8
    assert not Xu.flags.writeable          # documented: uint8 arrays are read-only
    with pytest.raises(ValueError):
        Xu[0, 0] = 1
    assert np.bincount(yu, minlength=10).tolist() == TEST_COUNTS
    assert yu[:5].tolist() == [7, 2, 1, 0, 4]
    Xu2, yu2 = load_mnist("test", as_uint8=True)
    assert np.shares_memory(Xu, Xu2)        # served from the process cache, no copy
    assert not np.shares_memory(yu, yu2)    # labels are fresh int64 arrays
    X, y = load_mnist("test")
    np.testing.assert_array_equal(y, yu)
    np.testing.assert_array_equal(X, Xu / 255.0)
    # the float array is a fresh copy: editing it does not change later loads
    X[:] = -1.0
    X2, _ = load_mnist("test")
    assert X2.min() == 0.0


def test_mnist_float32(mnist_test_uint8):
    X, y = load_mnist("test", dtype=np.float32)
    assert X.dtype == np.float32 and X.shape == (10000, 784)
    np.testing.assert_array_equal(X, mnist_test_uint8[0].astype(np.float32) / np.float32(255))


def test_mnist_subset_first_n(mnist_test_uint8):
    X, y = load_mnist("test", subset=123)
    assert X.shape == (123, 784) and y.shape == (123,)
    np.testing.assert_array_equal(y, mnist_test_uint8[1][:123])
    np.testing.assert_array_equal(X, mnist_test_uint8[0][:123] / 255.0)
    Xu, _ = load_mnist("test", subset=5, as_uint8=True)
    assert not Xu.flags.writeable


def test_mnist_subset_stratified(mnist_test_uint8):
    n = 1000
    X, y = load_mnist("test", subset=n, seed=3)
    assert X.shape == (n, 784)
    counts = np.bincount(y, minlength=10)
    expected = np.array(TEST_COUNTS) * n / 10000
    assert counts.sum() == n
    assert np.all(np.abs(counts - expected) < 1.0)     # proportions kept up to rounding
    # the rows are real test rows with their own labels, without repeats
    full_x, full_y = mnist_test_uint8
    row_index = {full_x[i].tobytes(): i for i in range(full_x.shape[0])}
    idx = np.array([row_index[r.tobytes()] for r in (X * 255).round().astype(np.uint8)])
    assert np.unique(idx).size == n
    np.testing.assert_array_equal(full_y[idx], y)
    # reproducible, seed-dependent, not simply the first rows
    X2, y2 = load_mnist("test", subset=n, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = load_mnist("test", subset=n, seed=4)
    assert not np.array_equal(X, X3)
    assert not np.array_equal(y, full_y[:n])
    # a Generator is accepted as seed
    X4, _ = load_mnist("test", subset=n, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(X, X4)
    # tiny subsets still get the right total
    _, y5 = load_mnist("test", subset=7, seed=0)
    assert y5.size == 7


def test_mnist_second_load_is_fast():
    load_mnist("train", subset=10)          # checksum + decode cached
    start = time.perf_counter()
    X, _ = load_mnist("train")
    elapsed = time.perf_counter() - start
    assert X.shape == (60000, 784)
    assert elapsed < 1.5, f"cached load of the training set took {elapsed:.2f} s"


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(split="validation"), ValueError, "split"),
    (dict(split="test", subset=0), ValueError, "subset"),
    (dict(split="test", subset=10001), ValueError, "10000"),
    (dict(split="test", subset=2.5), TypeError, "subset"),
    (dict(split="test", subset=True), TypeError, "subset"),
    (dict(split="test", dtype=np.int32), TypeError, "floating"),
    (dict(split="test", subset=5, seed="a"), TypeError, "seed"),
])
def test_mnist_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_mnist(**kwargs)


# ---------------------------------------------------------------- MNIST (corrupted copies)

def _idx(array, type_byte=0x08, magic01=b"\x00\x00", ndim=None, dims=None, extra=b""):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    dims = array.shape if dims is None else dims
    ndim = len(dims) if ndim is None else ndim
    header = magic01 + bytes([type_byte, ndim]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.tobytes() + extra


def _write_mnist(directory, n=12, images=None, labels=None, sums=True, seed=0):
    """Write a small valid 'test' split (optionally with replaced raw IDX bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    lab = (np.arange(n) % 10).astype(np.uint8)
    raw = {"t10k-images-idx3-ubyte.gz": _idx(img) if images is None else images,
           "t10k-labels-idx1-ubyte.gz": _idx(lab) if labels is None else labels}
    for name, content in raw.items():
        (directory / name).write_bytes(gzip.compress(content))
    if sums:
        _write_sums(directory)
    return img, lab


def _write_sums(directory):
    lines = []
    for path in sorted(directory.glob("*.gz")):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_small_valid_copy_loads(tmp_path):
    img, lab = _write_mnist(tmp_path / "ok")
    X, y = load_mnist("test", directory=tmp_path / "ok", as_uint8=True)
    np.testing.assert_array_equal(X, img.reshape(12, 784))
    np.testing.assert_array_equal(y, lab)


def test_data_dir_environment_variable(tmp_path, monkeypatch):
    img, _ = _write_mnist(tmp_path / "root" / "mnist", seed=1)
    monkeypatch.setenv("THERMO_DATA_DIR", str(tmp_path / "root"))     # parent of mnist/
    X, _ = load_mnist("test", as_uint8=True)
    np.testing.assert_array_equal(X, img.reshape(12, 784))
    img2, _ = _write_mnist(tmp_path / "flat", seed=2)
    monkeypatch.setenv("THERMO_DATA_DIR", str(tmp_path / "flat"))     # the directory itself
    X, _ = load_mnist("test", as_uint8=True)
    np.testing.assert_array_equal(X, img2.reshape(12, 784))
    monkeypatch.setenv("THERMO_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="THERMO_DATA_DIR"):
        load_mnist("test")
    # the explicit argument wins over the environment
    X, _ = load_mnist("test", directory=tmp_path / "root" / "mnist", as_uint8=True)
    np.testing.assert_array_equal(X, img.reshape(12, 784))


def test_missing_file_named(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist("test", directory=tmp_path)


@pytest.fixture
def real_test_copy(tmp_path):
    src = mnist_module.mnist_directory()
    dst = tmp_path / "mnist"
    dst.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "SHA256SUMS"):
        shutil.copyfile(src / name, dst / name)
    return dst


def test_checksum_mismatch_flipped_byte(real_test_copy):
    path = real_test_copy / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*checksum mismatch"):
        load_mnist("test", directory=real_test_copy)


def test_checksum_mismatch_truncated(real_test_copy):
    path = real_test_copy / "t10k-images-idx3-ubyte.gz"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*checksum mismatch"):
        load_mnist("test", directory=real_test_copy)
    # DataError is a ValueError
    with pytest.raises(ValueError):
        load_mnist("test", directory=real_test_copy)


def test_truncated_gzip_after_checksum(real_test_copy):
    path = real_test_copy / "t10k-images-idx3-ubyte.gz"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    _write_sums(real_test_copy)        # checksums recomputed: reach the decoder
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*truncated"):
        load_mnist("test", directory=real_test_copy)
    # and with the check switched off the same error comes from the decoder
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*truncated"):
        load_mnist("test", directory=real_test_copy, verify=False)


def test_not_gzip(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip data at all")
    _write_sums(tmp_path)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*gzip"):
        load_mnist("test", directory=tmp_path)


_IMG = np.zeros((12, 28, 28), dtype=np.uint8)
_LAB = (np.arange(12) % 10).astype(np.uint8)


@pytest.mark.parametrize("which, raw, match", [
    ("images", _idx(_IMG, magic01=b"\x08\x03"), "magic number"),
    ("labels", _idx(_LAB, magic01=b"\x00\x01"), "magic number"),
    ("images", _idx(_IMG, type_byte=0x0D), "element type 0x0d"),
    ("labels", _idx(_LAB, ndim=3, dims=(12,))[:4] + struct.pack(">3I", 12, 1, 1) + _LAB.tobytes(),
     "3 dimension"),
    ("images", _idx(np.zeros((12, 27, 28), np.uint8)), "27 x 28"),
    ("images", _idx(_IMG)[:-100], "payload truncated"),
    ("images", _idx(_IMG, extra=b"\x00" * 7), "trailing bytes"),
    ("images", _idx(_IMG)[:10], "header truncated"),
    ("labels", _idx(_LAB[:11]), "11 labels but"),
    ("labels", _idx(np.full(12, 10, np.uint8)), "label 10"),
    ("images", _idx(_IMG, dims=(12, 0xFFFFFFFF, 0xFFFFFFFF)), "payload truncated"),
], ids=["images-magic", "labels-magic", "element-type", "ndim", "dims", "payload-short",
        "payload-long", "header-short", "count-mismatch", "label-range",
        "huge-dims"])
def test_header_validation(tmp_path, which, raw, match):
    kwargs = {which: raw}
    _write_mnist(tmp_path, **kwargs)            # checksums recomputed for the bad file
    name = "t10k-images-idx3-ubyte.gz" if which == "images" else "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=match) as info:
        load_mnist("test", directory=tmp_path)
    assert name in str(info.value)
    with pytest.raises(DataError, match=match):
        load_mnist("test", directory=tmp_path, verify=False)


def test_checksum_file_problems(tmp_path):
    _write_mnist(tmp_path, sums=False)
    with pytest.raises(DataError, match="SHA256SUMS.*missing"):
        load_mnist("test", directory=tmp_path)
    X, _ = load_mnist("test", directory=tmp_path, verify=False)     # skipped on request
    assert X.shape == (12, 784)
    (tmp_path / "SHA256SUMS").write_text("abc  t10k-images-idx3-ubyte.gz\n")
    with pytest.raises(DataError, match="SHA256SUMS, line 1"):
        load_mnist("test", directory=tmp_path)
    _write_sums(tmp_path)
    lines = (tmp_path / "SHA256SUMS").read_text().splitlines()
    (tmp_path / "SHA256SUMS").write_text(
        "\n".join(l for l in lines if "labels" not in l) + "\n")
    with pytest.raises(DataError, match="no checksum listed for 't10k-labels-idx1-ubyte.gz'"):
        load_mnist("test", directory=tmp_path)


def test_changed_file_is_checked_again(tmp_path):
    _write_mnist(tmp_path, seed=5)
    load_mnist("test", directory=tmp_path)                  # verified and cached
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])               # changed behind our back
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist("test", directory=tmp_path)
    # a new valid content under the same name is decoded anew, not served from the cache
    img, _ = _write_mnist(tmp_path, seed=6)
    X, _ = load_mnist("test", directory=tmp_path, as_uint8=True)
    np.testing.assert_array_equal(X, img.reshape(12, 784))
    # the stale decoded copy was dropped from the cache
    stale = [k for k in mnist_module._decoded if str(tmp_path.resolve()) in k[0][0]]
    assert len(stale) == 1


# ---------------------------------------------------------------- toy data sets

@pytest.mark.parametrize("name", TOY)
def test_toy_shapes_balance_reproducibility(name):
    gen = getattr(data, name)
    X, y = gen(n=101, noise=0.1, seed=7)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == {0, 1}
    assert np.bincount(y).tolist() == [51, 50]
    assert np.all(np.isfinite(X))
    X2, y2 = gen(n=101, noise=0.1, seed=7)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, y3 = gen(n=101, noise=0.1, seed=8)
    assert not np.array_equal(X, X3)
    X4, y4 = gen(n=101, noise=0.0, seed=8)      # also without noise seeds matter
    X5, y5 = gen(n=101, noise=0.0, seed=9)
    assert not np.array_equal(X4, X5)
    # classes are shuffled, not in blocks
    assert 0 < y[:50].sum() < 50
    # make_dataset dispatches to the same generator
    X6, y6 = make_dataset(name, 101, 0.1, 7)
    np.testing.assert_array_equal(X, X6)
    np.testing.assert_array_equal(y, y6)
    # a Generator works as seed
    X7, _ = gen(n=101, noise=0.1, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(X, X7)


def test_two_clusters_geometry_and_noise():
    X, y = two_clusters(n=4000, noise=0.0, seed=1)
    np.testing.assert_allclose(X[y == 1].mean(axis=0), [2, 2], atol=0.05)
    np.testing.assert_allclose(X[y == 0].mean(axis=0), [-2, -2], atol=0.05)
    np.testing.assert_allclose(X[y == 1].std(axis=0), [0.5, 0.5], rtol=0.06)
    Xn, yn = two_clusters(n=4000, noise=0.5, seed=1)
    np.testing.assert_allclose(Xn[yn == 0].std(axis=0), [4.0, 4.0], rtol=0.06)
    # without noise the clusters are linearly separable along x1 + x2 = 0
    assert np.mean((X.sum(axis=1) > 0) == (y == 1)) > 0.99
    assert np.mean((Xn.sum(axis=1) > 0) == (yn == 1)) < 0.9


def test_squares_geometry_and_noise():
    X, y = squares(n=2000, noise=0.0, seed=2)
    assert np.all((X[:, 0] * X[:, 1] > 0) == (y == 1))
    assert np.all(np.abs(X) >= 0.3) and np.all(np.abs(X) <= 5.3)
    quadrant = (X[:, 0] > 0).astype(int) * 2 + (X[:, 1] > 0)
    assert np.all(np.bincount(quadrant, minlength=4) > 400)     # all four quadrants used
    Xn, yn = squares(n=2000, noise=0.3, seed=2)
    agree = np.mean((Xn[:, 0] * Xn[:, 1] > 0) == (yn == 1))
    assert 0.6 < agree < 0.99


def test_spiral_geometry_and_noise():
    X, y = spiral(n=1000, noise=0.0, seed=3)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() <= 2.5
    angle = 1.4 * np.pi * r + np.where(y == 1, 0.0, np.pi)      # t = 7 pi s, r = 5 s
    np.testing.assert_allclose(X, np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1),
                               atol=1e-12)
    Xn, yn = spiral(n=1000, noise=0.2, seed=3)
    rn = np.hypot(Xn[:, 0], Xn[:, 1])
    an = 1.4 * np.pi * rn + np.where(yn == 1, 0.0, np.pi)
    resid = np.abs(Xn - np.stack([rn * np.sin(an), rn * np.cos(an)], axis=1))
    assert resid.max() > 0.05


def test_two_circles_radii_separate_classes():
    X, y = two_circles(n=2000, noise=0.0, seed=4)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r[y == 1].max() <= 2.5
    assert r[y == 0].min() >= 3.5 and r[y == 0].max() <= 5.0
    Xn, yn = two_circles(n=2000, noise=0.3, seed=4)
    rn = np.hypot(Xn[:, 0], Xn[:, 1])
    assert rn[yn == 1].max() > 3.0          # noise makes the classes overlap
    assert np.std(rn[yn == 0]) > np.std(r[y == 0])


def test_make_dataset_names_and_errors():
    for alias, canonical in [("TwoClusters", "two_clusters"), ("four-squares", "squares"),
                             ("twospirals", "spiral"), ("two circles", "two_circles"),
                             (0, "two_circles"), (3, "spiral")]:
        X, y = make_dataset(alias, 20, 0.1, 5)
        Xc, yc = make_dataset(canonical, 20, 0.1, 5)
        np.testing.assert_array_equal(X, Xc)
    with pytest.raises(ValueError, match="two_clusters.*squares.*spiral.*two_circles"):
        make_dataset("moons", 10)
    with pytest.raises(ValueError, match="codes"):
        make_dataset(7, 10)
    with pytest.raises(TypeError, match="name"):
        make_dataset(None, 10)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(n=1), ValueError, "n must be at least 2"),
    (dict(n=10.0), TypeError, "n must be an int"),
    (dict(n=10, noise=-0.1), ValueError, "noise"),
    (dict(n=10, noise=float("nan")), ValueError, "noise"),
    (dict(n=10, noise="a"), TypeError, "noise"),
    (dict(n=10, seed=1.5), TypeError, "seed"),
])
@pytest.mark.parametrize("name", TOY)
def test_toy_bad_arguments(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(data, name)(**kwargs)


def test_signed_labels():
    y = np.array([0, 1, 1, 0])
    s = to_signed_labels(y)
    assert s.tolist() == [-1, 1, 1, -1] and s.dtype == np.int64
    np.testing.assert_array_equal(from_signed_labels(s), y)
    np.testing.assert_array_equal(from_signed_labels([1.0, -1.0]), [1, 0])
    with pytest.raises(ValueError, match="0 or 1"):
        to_signed_labels([0, 2])
    with pytest.raises(ValueError, match="-1 or \\+1"):
        from_signed_labels([0, 1])


# ---------------------------------------------------------------- user data: arrays

def test_from_arrays_conversion():
    X, y = from_arrays([[0, 1], [1, 0], [2, 2]], [0.0, 2.0, 1.0])
    assert X.dtype == np.float64 and X.flags.c_contiguous and X.shape == (3, 2)
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    X, y = from_arrays(np.ones((3, 2), np.float32), np.array([[1], [0], [1]]),
                       n_features=2, n_classes=2, dtype=np.float32)
    assert X.dtype == np.float32 and y.shape == (3,)
    X, y = from_arrays(np.ones((4, 3)), np.arange(8.0).reshape(4, 2), task="regression")
    assert y.shape == (4, 2) and y.dtype == np.float64


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((np.ones(3), [0, 1, 0]), {}, ValueError, "X must be 2-D"),
    ((np.ones((0, 2)), []), {}, ValueError, "empty"),
    ((np.ones((3, 0)), [0, 1, 0]), {}, ValueError, "empty"),
    ((np.ones((3, 2)), [0, 1]), {}, ValueError, "different lengths"),
    ((np.array([[1.0, np.nan], [0, 0]]), [0, 1]), {}, ValueError, r"finite; X\[0, 1\]"),
    ((np.array([[1.0, np.inf], [0, 0]]), [0, 1]), {}, ValueError, "finite"),
    ((np.array([["a", "b"]]), [0]), {}, TypeError, "X must hold real numbers"),
    ((np.ones((2, 2)), ["a", "b"]), {}, TypeError, "y must hold real numbers"),
    ((np.ones((2, 2)), [0, 0.5]), {}, ValueError, "integers"),
    ((np.ones((2, 2)), [0, np.nan]), {}, ValueError, "finite"),
    ((np.ones((2, 2)), [1, -1]), {}, ValueError, "from_signed_labels"),
    ((np.ones((2, 2)), [0, -3]), {}, ValueError, "non-negative"),
    ((np.ones((2, 2)), [0, 3]), dict(n_classes=3), ValueError, r"\[0, 3\)"),
    ((np.ones((2, 2)), [0, 1]), dict(n_features=3), ValueError, "n_features=3"),
    ((np.ones((2, 2)), [[0, 1], [1, 0]]), {}, ValueError, "one-hot"),
    ((np.ones((2, 2)), [0, 1]), dict(task="ranking"), ValueError, "task"),
    ((np.ones((2, 2)), [0.5, 1.5]), dict(task="regression", n_classes=2), ValueError,
     "n_classes"),
    ((np.ones((2, 2)), [0.5, np.inf]), dict(task="regression"), ValueError, "finite"),
    ((np.ones((2, 2)), [0, 1]), dict(n_classes=0), ValueError, "n_classes"),
    ((np.ones((2, 2)), [0, 1]), dict(n_classes=2.0), TypeError, "n_classes"),
    ((np.ones((2, 2)), [0, 1]), dict(dtype=np.int64), TypeError, "floating"),
])
def test_from_arrays_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        from_arrays(*args, **kwargs)


# ---------------------------------------------------------------- user data: CSV

def test_csv_round_trip(tmp_path):
    X, y = spiral(n=50, noise=0.05, seed=0)
    path = save_csv(tmp_path / "spiral.csv", X, y)
    assert path.read_text().splitlines()[0] == "x1,x2,label"
    X2, y2 = load_csv(path)
    np.testing.assert_array_equal(X, X2)           # exact: shortest repr round trip
    np.testing.assert_array_equal(y, y2)
    assert y2.dtype == np.int64
    # label column by name, and TATi's -1/+1 written and read back as 0/1
    save_csv(tmp_path / "signed.csv", X, y, signed_labels=True)
    labels = [line.rsplit(",", 1)[1] for line in
              (tmp_path / "signed.csv").read_text().splitlines()[1:]]
    assert set(labels) == {"-1", "1"}
    X3, y3 = load_csv(tmp_path / "signed.csv", label_column="label")
    np.testing.assert_array_equal(y, y3)
    np.testing.assert_array_equal(X, X3)
    # taken as they are on request
    _, y4 = load_csv(tmp_path / "signed.csv", signed_labels=False, task="regression")
    np.testing.assert_array_equal(y4, to_signed_labels(y))


def test_csv_tati_file(tmp_path):
    path = tmp_path / "dataset-twoclusters.csv"
    path.write_text("x1,x2,label\n-2.5,-2.2,-1\n1.0,2.8,1\n\n-2.0,-1.6,-1\n")
    X, y = load_csv(path)
    np.testing.assert_array_equal(X, [[-2.5, -2.2], [1.0, 2.8], [-2.0, -1.6]])
    assert y.tolist() == [0, 1, 0]


def test_csv_layouts(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("label;f1;f2\n2;0.5;1.5\n0;1;2\n1;3;4\n")
    X, y = load_csv(path, label_column=0, delimiter=";", n_classes=3)
    np.testing.assert_array_equal(X, [[0.5, 1.5], [1, 2], [3, 4]])
    assert y.tolist() == [2, 0, 1]
    X, y = load_csv(path, label_column=["f1", "f2"], delimiter=";", task="regression")
    assert X.shape == (3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(y, [[0.5, 1.5], [1, 2], [3, 4]])
    nohead = tmp_path / "b.csv"
    nohead.write_text("1,2,0\n3,4,1\n")
    X, y = load_csv(nohead, header=False)
    assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]
    # regression round trip with named columns
    Xr = np.array([[0.1, 0.2], [0.3, 0.4]])
    yr = np.array([[1.25, -2.0], [3.5, 1e-300]])
    save_csv(tmp_path / "r.csv", Xr, yr, feature_names=["a", "b"], label_name=["u", "v"])
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "a,b,u,v"
    X2, y2 = load_csv(tmp_path / "r.csv", label_column=["u", "v"], task="regression")
    np.testing.assert_array_equal(X2, Xr)
    np.testing.assert_array_equal(y2, yr)


@pytest.mark.parametrize("content, kwargs, exc, match", [
    ("", {}, ValueError, "empty"),
    ("x1,x2,label\n", {}, ValueError, "no data rows"),
    ("x1,x2,label\n1,2,0\n3,4\n", {}, ValueError, "line 3: 2 fields, expected 3"),
    ("x1,x2,label\n1,abc,0\n", {}, ValueError, "line 2, column 'x2': non-numeric value 'abc'"),
    ("x1,x2,label\n1,,0\n", {}, ValueError, "line 2, column 'x2': missing value"),
    ("x1,x2,label\n1,2,0\n1,nan,1\n", {}, ValueError, "line 3, column 'x2'.*not finite"),
    ("x1,x2,label\n1,2,0\n", dict(label_column="y"), ValueError, "no column named 'y'"),
    ("x1,x2,label\n1,2,0\n", dict(label_column=5), ValueError, "out of range"),
    ("x1,x2,label\n1,2,0\n", dict(label_column=1.5), TypeError, "label_column"),
    ("x1,x2,label\n1,2,0.5\n", {}, ValueError, "integers"),
    ("x1,x2,label\n1,2,3\n", dict(n_classes=3), ValueError, r"\[0, 3\)"),
    ("x1,x2,label\n1,2,0\n", dict(label_column=["x2", "label"]), ValueError, "regression"),
    ("x1,x2,label\n1,2,0\n", dict(signed_labels=True), ValueError, "not -1 or \\+1"),
    ("1,2,0\n3,4,1\n", {}, ValueError, "looks like data"),
    ("x,x,label\n1,2,0\n", {}, ValueError, "duplicate column"),
    ("1,2,0\n", dict(header=False, label_column="label"), ValueError, "no header"),
    ("x1,x2,label\n1,2,0\n", dict(task="ranking"), ValueError, "task"),
    ("x1,x2,label\n1,2,0\n", dict(delimiter=",,"), ValueError, "delimiter"),
    ("x1,x2,label\n1,2,0\n", dict(header="yes"), TypeError, "header"),
])
def test_csv_errors_name_the_file(tmp_path, content, kwargs, exc, match):
    path = tmp_path / "bad_input.csv"
    path.write_text(content)
    with pytest.raises(exc, match=match) as info:
        load_csv(path, **kwargs)
    argument_error = exc is TypeError or "delimiter" in kwargs or "task" in kwargs
    if not argument_error:          # problems with the data name the file
        assert "bad_input.csv" in str(info.value)


def test_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="path"):
        load_csv(42)


def test_save_csv_errors(tmp_path):
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="feature_names has 3 names for 2"):
        save_csv(tmp_path / "a.csv", X, [0, 1, 0], feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="delimiter"):
        save_csv(tmp_path / "a.csv", X, [0, 1, 0], feature_names=["a,b", "c"])
    with pytest.raises(ValueError, match="unique"):
        save_csv(tmp_path / "a.csv", X, [0, 1, 0], feature_names=["a", "label"])
    with pytest.raises(ValueError, match="binary"):
        save_csv(tmp_path / "a.csv", X, [0, 2, 0], signed_labels=True)
    with pytest.raises(ValueError, match="integer class labels"):
        save_csv(tmp_path / "a.csv", X, [0.0, 1.0, 0.0], signed_labels=True)
    with pytest.raises(ValueError, match="different lengths"):
        save_csv(tmp_path / "a.csv", X, [0, 1])
    with pytest.raises(ValueError, match="finite"):
        save_csv(tmp_path / "a.csv", np.full((3, 2), np.nan), [0, 1, 0])
    assert not (tmp_path / "a.csv").exists()
