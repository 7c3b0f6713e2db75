"""Two-dimensional toy classification data sets, as known from TATi.

TATi (and the TensorFlow playground before it) offers four binary
classification sets in the square ``[-r, r]^2`` with ``r = 5``:

``two_clusters``
    Two Gaussian clouds centred at ``(2, 2)`` (class 1) and ``(-2, -2)``
    (class 0), standard deviation ``0.5 + 7 * noise`` per coordinate.
``squares``
    XOR quadrants: points uniform in the four quadrants, kept ``0.3`` away
    from the axes; class 1 in the first and third quadrant (``x1 * x2 > 0``),
    class 0 in the second and fourth.
``spiral``
    Two interleaved spiral arms of 1.75 turns and radius up to ``r / 2``;
    class 1 on the arm starting at angle 0, class 0 on the arm rotated by pi.
``two_circles``
    A disc of radius ``r / 2`` (class 1) inside a ring of radii
    ``0.7 r`` to ``r`` (class 0); radius and angle uniform.

Differences from TATi, on purpose:

* labels are class indices ``{0, 1}`` (``int64``), as the networks of thermo
  expect; TATi's +1 is class 1 and its -1 is class 0.
  :func:`to_signed_labels` and :func:`from_signed_labels` convert.
* classes are exactly balanced (counts differ by at most one for odd `n`) and
  the rows are shuffled;
* `noise` always displaces the points, never flips labels: TATi's squares and
  two circles used the noise to flip labels near the class boundary, which
  unbalances the classes.  Here squares and two circles add a displacement
  uniform in ``[-r, r]^2`` times `noise`, the spiral one uniform in
  ``[-1, 1]^2`` times `noise` (as TATi), and two clusters widen.
* points along the spiral arms are drawn at random positions instead of on a
  regular grid, so that different seeds give different data sets.
"""
import numbers

import numpy as np

__all__ = ["two_clusters", "squares", "spiral", "two_circles", "make_dataset",
           "to_signed_labels", "from_signed_labels", "DATASETS", "RADIUS"]

#: Half-width of the square ``[-r, r]^2`` the sets live in (TATi's ``r``).
RADIUS = 5.0


def _check_args(n, noise, seed):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 2:
        raise ValueError(f"n must be at least 2 (one point per class), got {n}")
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a real number, got {type(noise).__name__}")
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and non-negative, got {noise}")
    if isinstance(seed, (bool, np.bool_)) or not (
            seed is None or isinstance(seed, (numbers.Integral, np.random.Generator))):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return int(n), noise, np.random.default_rng(seed)


def _labels(n, rng):
    """Balanced labels: n // 2 ones, the rest zeros, in random order."""
    y = np.zeros(n, dtype=np.int64)
    y[: n // 2] = 1
    return rng.permutation(y)


def two_clusters(n=500, noise=0.1, seed=None):
    """Two Gaussian clouds centred at (2, 2) and (-2, -2).

    Parameters
    ----------
    n : int
        Number of points (at least 2).
    noise : float
        Non-negative; the standard deviation per coordinate is ``0.5 + 7 * noise``.
    seed : int or numpy.random.Generator, optional
        Seed of the random numbers; None draws fresh entropy.

    Returns
    -------
    X : numpy.ndarray of float64, shape (n, 2)
        Coordinates.
    y : numpy.ndarray of int64, shape (n,)
        Class 1 for the cloud at (2, 2), class 0 for the one at (-2, -2);
        ``n // 2`` points are of class 1.

    Examples
    --------
    >>> X, y = two_clusters(6, seed=0)
    >>> X.shape, y
    ((6, 2), array([0, 1, 0, 0, 1, 1]))
    >>> bool(np.all((X.sum(axis=1) > 0) == (y == 1)))
    True
    """
    n, noise, rng = _check_args(n, noise, seed)
    y = _labels(n, rng)
    centre = np.where(y == 1, 2.0, -2.0)[:, None]
    X = centre + rng.normal(0.0, 0.5 + 7.0 * noise, size=(n, 2))
    return X, y


def squares(n=500, noise=0.1, seed=None):
    """XOR quadrants: class 1 where ``x1 * x2 > 0``, class 0 elsewhere.

    Parameters
    ----------
    n : int
        Number of points (at least 2).
    noise : float
        Non-negative; each point is displaced by ``noise`` times a vector
        uniform in ``[-5, 5]^2``.  With ``noise = 0`` every coordinate has
        absolute value in ``[0.3, 5.3]``.
    seed : int or numpy.random.Generator, optional
        Seed of the random numbers.

    Returns
    -------
    X : numpy.ndarray of float64, shape (n, 2)
        Coordinates.
    y : numpy.ndarray of int64, shape (n,)
        Class indices; ``n // 2`` points are of class 1, half of each class
        (in expectation) in each of its two quadrants.

    Examples
    --------
    >>> X, y = squares(100, noise=0.0, seed=0)
    >>> bool(np.all((X[:, 0] * X[:, 1] > 0) == (y == 1)))
    True
    """
    n, noise, rng = _check_args(n, noise, seed)
    y = _labels(n, rng)
    padding = 0.3
    magnitude = rng.uniform(0.0, RADIUS, size=(n, 2)) + padding
    sign1 = rng.choice(np.array([-1.0, 1.0]), size=n)
    sign2 = np.where(y == 1, sign1, -sign1)
    X = magnitude * np.stack([sign1, sign2], axis=1)
    X += noise * rng.uniform(-RADIUS, RADIUS, size=(n, 2))
    return X, y


def spiral(n=500, noise=0.1, seed=None):
    """Two interleaved spiral arms.

    A point at arm parameter ``s`` uniform in ``[0, 1/2)`` lies at radius
    ``5 s`` and angle ``7 pi s`` (plus pi for class 0), coordinates
    ``(radius sin(angle), radius cos(angle))`` as in TATi.

    Parameters
    ----------
    n : int
        Number of points (at least 2).
    noise : float
        Non-negative; each coordinate is displaced by ``noise`` times a
        number uniform in ``[-1, 1]``.
    seed : int or numpy.random.Generator, optional
        Seed of the random numbers.

    Returns
    -------
    X : numpy.ndarray of float64, shape (n, 2)
        Coordinates.
    y : numpy.ndarray of int64, shape (n,)
        Class 1 on the arm starting at angle 0, class 0 on the other;
        ``n // 2`` points are of class 1.

    Examples
    --------
    >>> X, y = spiral(10, seed=0)
    >>> X.shape, int(y.sum()), y.dtype
    ((10, 2), 5, dtype('int64'))
    """
    n, noise, rng = _check_args(n, noise, seed)
    y = _labels(n, rng)
    s = rng.uniform(0.0, 0.5, size=n)
    radius = RADIUS * s
    angle = 3.5 * 2.0 * np.pi * s + np.where(y == 1, 0.0, np.pi)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    X += noise * rng.uniform(-1.0, 1.0, size=(n, 2))
    return X, y


def two_circles(n=500, noise=0.1, seed=None):
    """A disc (class 1) inside a ring (class 0), both centred at the origin.

    Parameters
    ----------
    n : int
        Number of points (at least 2).
    noise : float
        Non-negative; each point is displaced by ``noise`` times a vector
        uniform in ``[-5, 5]^2``.  With ``noise = 0`` class 1 lies within
        radius 2.5 and class 0 between radii 3.5 and 5.
    seed : int or numpy.random.Generator, optional
        Seed of the random numbers.

    Returns
    -------
    X : numpy.ndarray of float64, shape (n, 2)
        Coordinates.
    y : numpy.ndarray of int64, shape (n,)
        Class indices; ``n // 2`` points are of class 1.

    Examples
    --------
    >>> X, y = two_circles(100, noise=0.0, seed=0)
    >>> radius = np.hypot(X[:, 0], X[:, 1])
    >>> bool(radius[y == 1].max() <= 2.5 < 3.5 <= radius[y == 0].min())
    True
    """
    n, noise, rng = _check_args(n, noise, seed)
    y = _labels(n, rng)
    u = rng.uniform(0.0, 1.0, size=n)
    radius = np.where(y == 1, 0.5 * RADIUS * u, RADIUS * (0.7 + 0.3 * u))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    X += noise * rng.uniform(-RADIUS, RADIUS, size=(n, 2))
    return X, y


#: Generators by canonical name.
DATASETS = {
    "two_clusters": two_clusters,
    "squares": squares,
    "spiral": spiral,
    "two_circles": two_circles,
}
# Spellings accepted by make_dataset (lower case, without "_", "-" and spaces).
_ALIASES = {
    "twoclusters": "two_clusters", "clusters": "two_clusters",
    "squares": "squares", "foursquares": "squares", "xor": "squares",
    "spiral": "spiral", "spirals": "spiral", "twospirals": "spiral",
    "twocircles": "two_circles", "circles": "two_circles",
}
# TATi's integer codes (ClassificationDatasets.TWOCIRCLES, SQUARES, TWOCLUSTERS, SPIRAL).
_TATI_CODES = {0: "two_circles", 1: "squares", 2: "two_clusters", 3: "spiral"}


def make_dataset(name, n=500, noise=0.1, seed=None):
    """Generate a toy data set by name.

    Parameters
    ----------
    name : str or int
        One of ``"two_clusters"``, ``"squares"``, ``"spiral"``,
        ``"two_circles"``; case, ``"_"``, ``"-"`` and spaces are ignored and
        TATi's spellings (``"twoclusters"``, ``"foursquares"``,
        ``"twospirals"``, ``"twocircles"``) are accepted, as are TATi's integer
        codes 0 (two circles), 1 (squares), 2 (two clusters), 3 (spiral).
    n : int
        Number of points.
    noise : float
        Noise level, see the individual generators.
    seed : int or numpy.random.Generator, optional
        Seed of the random numbers.

    Returns
    -------
    X : numpy.ndarray of float64, shape (n, 2)
    y : numpy.ndarray of int64, shape (n,)

    Raises
    ------
    ValueError
        If `name` is not a known data set; the message lists the valid names.

    Examples
    --------
    >>> X, y = make_dataset("TwoSpirals", n=8, seed=1)  # TATi's spelling
    >>> X.shape, np.bincount(y)
    ((8, 2), array([4, 4]))
    >>> make_dataset(2, n=4, seed=0)[0].shape  # TATi's code 2: two clusters
    (4, 2)
    """
    valid = ", ".join(repr(k) for k in DATASETS)
    if isinstance(name, (numbers.Integral,)) and not isinstance(name, (bool, np.bool_)):
        if int(name) not in _TATI_CODES:
            raise ValueError(f"unknown TATi data set code {name}; valid codes are 0-3, "
                             f"valid names {valid}")
        canonical = _TATI_CODES[int(name)]
    elif isinstance(name, str):
        key = name.lower().replace("_", "").replace("-", "").replace(" ", "")
        if key not in _ALIASES:
            raise ValueError(f"unknown toy data set {name!r}; valid names are {valid}")
        canonical = _ALIASES[key]
    else:
        raise TypeError(f"name must be a str, got {type(name).__name__}; valid names are {valid}")
    return DATASETS[canonical](n=n, noise=noise, seed=seed)


def to_signed_labels(y):
    """Convert class indices {0, 1} to TATi's labels {-1, +1}.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Class indices 0 or 1 (integer-valued floats accepted).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        ``2 y - 1``: class 1 becomes +1, class 0 becomes -1.

    Raises
    ------
    ValueError
        If a label is not 0 or 1.

    Examples
    --------
    >>> to_signed_labels([0, 1, 1])
    array([-1,  1,  1])
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numeric, got dtype {y.dtype}")
    bad = ~((y == 0) | (y == 1))
    if np.any(bad):
        raise ValueError(f"class labels must be 0 or 1 to convert to +-1; found "
                         f"{np.unique(y[bad])[:5].tolist()}")
    return 2 * y.astype(np.int64) - 1


def from_signed_labels(y):
    """Convert TATi's labels {-1, +1} to class indices {0, 1}.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Labels -1 or +1 (integer-valued floats accepted).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        ``(y + 1) / 2``: +1 becomes class 1, -1 becomes class 0.

    Raises
    ------
    ValueError
        If a label is not -1 or +1.

    Examples
    --------
    >>> from_signed_labels([-1, 1, 1.0])
    array([0, 1, 1])
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numeric, got dtype {y.dtype}")
    bad = ~((y == -1) | (y == 1))
    if np.any(bad):
        raise ValueError(f"signed labels must be -1 or +1; found {np.unique(y[bad])[:5].tolist()}")
    return (y.astype(np.int64) + 1) // 2
