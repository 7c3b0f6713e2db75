"""Loader for the MNIST handwritten digits shipped with thermo.

The four gzip-compressed IDX files (60,000 training and 10,000 test images of
28 x 28 pixels, with their labels) live in ``data/mnist/`` of the repository,
next to a ``SHA256SUMS`` file holding the checksums of the ``.gz`` files.

Every load checks, for each file, the SHA-256 checksum of the ``.gz`` file
against ``SHA256SUMS``, the IDX magic number (two zero bytes, element type
``0x08`` = unsigned byte, number of dimensions), the dimensions (28 x 28
images, as many images as labels) and that the payload length equals the
product of the dimensions.  Any failure raises :class:`DataError`, naming the
file and what is wrong.

Two process-level caches keep repeated loads cheap:

* verified checksums, keyed by the file's path, size, inode and modification
  times (a changed file is hashed again);
* the decoded ``uint8`` arrays, keyed the same way.  They are stored
  read-only and never handed out writable (see :func:`load_mnist` for what is
  returned).

The directory holding the files is, in order of precedence: the
``directory`` argument; the environment variable ``THERMO_DATA_DIR`` (its
``mnist`` sub-directory if there is one, else the directory itself); the
``data/mnist`` directory of the repository, found relative to this file.
"""
import gzip
import hashlib
import math
import os
import threading
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "load_mnist", "mnist_directory", "clear_cache",
           "MNIST_FILES", "N_CLASSES", "IMAGE_SHAPE"]

#: File names of the images and labels of each split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: Number of digit classes.
N_CLASSES = 10
#: Height and width of one image.
IMAGE_SHAPE = (28, 28)

_CHECKSUM_FILE = "SHA256SUMS"
_ENV_VAR = "THERMO_DATA_DIR"
_IDX_UBYTE = 0x08
_IDX_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short (int16)",
                   0x0C: "int (int32)", 0x0D: "float (float32)", 0x0E: "double (float64)"}

_lock = threading.Lock()
_verified = {}   # (path, stat signature) -> hex digest that matched SHA256SUMS
_decoded = {}    # (images key, labels key) -> (images uint8 (n, 784), labels uint8 (n,)), read-only


class DataError(ValueError):
    """A data file is missing a checksum, corrupted, truncated or malformed.

    The message names the file and says what is wrong.
    """


def clear_cache():
    """Forget all verified checksums and decoded arrays of this process.

    Returns
    -------
    None
    """
    with _lock:
        _verified.clear()
        _decoded.clear()


def _repo_data_directory():
    # thermo/data/mnist.py -> <repo root>/data/mnist
    return Path(__file__).resolve().parents[2] / "data" / "mnist"


def mnist_directory(directory=None):
    """Return the directory the MNIST files are read from.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Directory holding the ``.gz`` files and ``SHA256SUMS``.  When not
        given, the environment variable ``THERMO_DATA_DIR`` is used (its
        ``mnist`` sub-directory if that exists, else the directory itself),
        and otherwise ``<repository root>/data/mnist``.

    Returns
    -------
    pathlib.Path
        The directory (not checked for existence of the files).

    Raises
    ------
    TypeError
        If `directory` is not a path.
    FileNotFoundError
        If the chosen directory does not exist.

    Examples
    --------
    >>> mnist_directory(".").as_posix()
    '.'
    >>> (mnist_directory() / "SHA256SUMS").name
    'SHA256SUMS'
    """
    if directory is not None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a str or path, got {type(directory).__name__}")
        path = Path(directory)
        source = "directory argument"
    elif os.environ.get(_ENV_VAR):
        base = Path(os.environ[_ENV_VAR])
        path = base / "mnist" if (base / "mnist").is_dir() else base
        source = f"environment variable {_ENV_VAR}"
    else:
        path = _repo_data_directory()
        source = "repository default"
    if not path.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {str(path)!r} (from the {source}) does not exist; pass "
            f"directory=... or set {_ENV_VAR} to the directory holding the MNIST .gz files")
    return path


def _stat_key(path):
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _read_checksums(directory):
    sums_path = directory / _CHECKSUM_FILE
    try:
        text = sums_path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise DataError(f"{sums_path}: checksum file missing; cannot verify the MNIST files "
                        f"(pass verify=False to skip the check)") from None
    except UnicodeDecodeError:
        raise DataError(f"{sums_path}: not an ASCII checksum file") from None
    sums = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        digest = parts[0].lower()
        if (len(parts) != 2 or len(digest) != 64
                or any(c not in "0123456789abcdef" for c in digest)):
            raise DataError(f"{sums_path}, line {lineno}: expected '<64 hex digits>  <file name>', "
                            f"got {line!r}")
        name = parts[1].strip().lstrip("*")
        sums[name] = digest
    return sums


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path, sums):
    """Check the SHA-256 of `path` against `sums`, caching a success."""
    key = _stat_key(path)
    expected = sums.get(path.name)
    if expected is None:
        raise DataError(f"{path}: no checksum listed for {path.name!r} in "
                        f"{path.parent / _CHECKSUM_FILE}")
    with _lock:
        if _verified.get(key) == expected:
            return
    actual = _sha256(path)
    if actual != expected:
        raise DataError(f"{path}: SHA-256 checksum mismatch (file is corrupted or truncated, "
                        f"{key[1]} bytes): expected {expected}, got {actual}")
    with _lock:
        _verified[key] = expected


def _decompress(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from exc
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise DataError(f"{path}: truncated gzip stream ({exc})") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from exc


def _parse_idx(path, data, ndim):
    """Validate an IDX byte string and return (dims, uint8 payload view)."""
    if len(data) < 4:
        raise DataError(f"{path}: IDX header truncated: {len(data)} bytes, need at least 4")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: bad IDX magic number {data[:4].hex()}: the first two bytes "
                        f"must be zero")
    if data[2] != _IDX_UBYTE:
        name = _IDX_TYPE_NAMES.get(data[2], "unknown")
        raise DataError(f"{path}: IDX element type 0x{data[2]:02x} ({name}); MNIST files "
                        f"must hold unsigned bytes (0x08)")
    if data[3] != ndim:
        raise DataError(f"{path}: IDX file has {data[3]} dimension(s), expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header truncated: {len(data)} bytes, need {header} "
                        f"for {ndim} dimension(s)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims)     # Python ints: no overflow for corrupt sizes
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(f"{path}: IDX payload {what}: dims {dims} need {expected} bytes, "
                        f"found {actual}")
    return dims, np.frombuffer(data, dtype=np.uint8, offset=header)


def _decode_split(images_path, labels_path):
    img_dims, img = _parse_idx(images_path, _decompress(images_path), 3)
    if img_dims[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: images are {img_dims[1]} x {img_dims[2]} pixels, "
                        f"expected {IMAGE_SHAPE[0]} x {IMAGE_SHAPE[1]}")
    lab_dims, lab = _parse_idx(labels_path, _decompress(labels_path), 1)
    if lab_dims[0] != img_dims[0]:
        raise DataError(f"{labels_path}: {lab_dims[0]} labels but {images_path.name} holds "
                        f"{img_dims[0]} images")
    if img_dims[0] == 0:
        raise DataError(f"{images_path}: holds no images")
    if lab.size and int(lab.max()) >= N_CLASSES:
        bad = int(np.argmax(lab >= N_CLASSES))
        raise DataError(f"{labels_path}: label {int(lab[bad])} at index {bad} is not a digit 0-9")
    images = img.reshape(img_dims[0], IMAGE_SHAPE[0] * IMAGE_SHAPE[1])
    # np.frombuffer over bytes is already read-only; make sure of it.
    images.flags.writeable = False
    lab.flags.writeable = False
    return images, lab


def _load_raw(split, directory, verify):
    """Return the cached read-only uint8 (images, labels) of `split`."""
    directory = mnist_directory(directory)
    images_path, labels_path = (directory / name for name in MNIST_FILES[split])
    for path in (images_path, labels_path):
        if not path.is_file():
            raise FileNotFoundError(f"MNIST file {str(path)!r} not found; pass directory=... "
                                    f"or set {_ENV_VAR}")
    if verify:
        sums = _read_checksums(directory)
        _verify(images_path, sums)
        _verify(labels_path, sums)
    key = (_stat_key(images_path), _stat_key(labels_path))
    with _lock:
        cached = _decoded.get(key)
    if cached is None:
        cached = _decode_split(images_path, labels_path)
        with _lock:
            # drop stale entries of the same files (changed on disk since)
            for old in [k for k in _decoded if (k[0][0], k[1][0]) == (key[0][0], key[1][0])]:
                del _decoded[old]
            _decoded[key] = cached
    return cached


def _check_subset(subset, n_total):
    if subset is None:
        return None
    if isinstance(subset, (bool, np.bool_)) or not isinstance(subset, (int, np.integer)):
        raise TypeError(f"subset must be an int or None, got {type(subset).__name__}")
    subset = int(subset)
    if not 1 <= subset <= n_total:
        raise ValueError(f"subset must be between 1 and {n_total} (the size of the split), "
                         f"got {subset}")
    return subset


def _stratified_indices(labels, n, rng):
    """Sorted indices of `n` rows sampled per class in proportion to the class sizes."""
    counts = np.bincount(labels, minlength=N_CLASSES).astype(np.int64)
    exact = counts * n / counts.sum()
    take = np.floor(exact).astype(np.int64)
    # largest remainders get the leftover rows (ties: lower class first)
    order = np.lexsort((np.arange(counts.size), -(exact - take)))
    take[order[: n - int(take.sum())]] += 1
    chosen = []
    for k in np.flatnonzero(take):
        members = np.flatnonzero(labels == k)
        chosen.append(rng.choice(members, size=int(take[k]), replace=False))
    return np.sort(np.concatenate(chosen))


def load_mnist(split="train", subset=None, seed=None, dtype=np.float64, directory=None,
               as_uint8=False, verify=True):
    """Load the MNIST images and labels of one split.

    Parameters
    ----------
    split : {"train", "test"}
        The 60,000 training or the 10,000 test images.
    subset : int, optional
        Number of rows to return.  Without `seed` the first `subset` rows;
        with `seed` a stratified random sample: every digit gets a share of
        the rows proportional to its frequency in the split (rounded by
        largest remainder), returned in the order of the file.
    seed : int or numpy.random.Generator, optional
        Seed of the stratified sample; ignored when `subset` is None.
    dtype : numpy floating dtype
        Dtype of the returned pixels (default float64); ignored with `as_uint8`.
    directory : str or os.PathLike, optional
        Directory holding the files; see :func:`mnist_directory`.
    as_uint8 : bool
        Return the raw pixel values 0-255 as uint8 instead of floats.
    verify : bool
        Check the SHA-256 checksums against ``SHA256SUMS`` (default).  The
        IDX header and payload are validated regardless.

    Returns
    -------
    X : numpy.ndarray, shape (n, 784)
        Pixels row-major per image.  Floats in [0, 1] (value / 255), a new
        writable array; with `as_uint8`, a **read-only** uint8 array (a view of
        the process cache when `subset` is None) -- call ``.copy()`` to modify.
    y : numpy.ndarray of int64, shape (n,)
        Digit labels 0-9, a new writable array.

    Raises
    ------
    DataError
        If a file's checksum does not match or it is not a well-formed IDX
        file (bad magic number, element type, number of dimensions,
        dimensions or payload length); the message names the file.
    FileNotFoundError
        If the directory or a file is missing.
    ValueError, TypeError
        For invalid arguments.

    Examples
    --------
    >>> X, y = load_mnist("test", subset=1000, seed=0)
    >>> X.shape, y.dtype
    ((1000, 784), dtype('int64'))
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    if not as_uint8:
        try:
            dtype = np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"dtype {dtype!r} is not a numpy dtype") from exc
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a floating dtype (e.g. float64, float32), got {dtype}")
    if isinstance(seed, (bool, np.bool_)) or (
            seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator))):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    images, labels = _load_raw(split, directory, verify)
    subset = _check_subset(subset, labels.size)
    if subset is None:
        raw_x, raw_y = images, labels
    elif seed is None:
        raw_x, raw_y = images[:subset], labels[:subset]
    else:
        idx = _stratified_indices(labels, subset, np.random.default_rng(seed))
        raw_x, raw_y = images[idx], labels[idx]
    y = raw_y.astype(np.int64)
    if as_uint8:
        if raw_x.flags.writeable:
            raw_x.flags.writeable = False
        return raw_x, y
    # one pass: uint8 -> dtype and division by 255 (correctly rounded)
    X = np.divide(raw_x, dtype.type(255), dtype=dtype)
    return X, y
