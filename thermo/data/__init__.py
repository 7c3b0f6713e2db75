"""Data sets for thermo: MNIST, TATi's 2-D toy sets and user data.

``load_mnist`` reads the shipped MNIST IDX files (checksummed, cached),
``two_clusters``, ``squares``, ``spiral``, ``two_circles`` and
``make_dataset`` generate the toy classification sets, and ``load_csv``,
``save_csv`` and ``from_arrays`` bring in user data.  Labels are int64 class
indices; ``to_signed_labels`` / ``from_signed_labels`` convert to and from
TATi's -1/+1 convention.
"""
from thermo.data.mnist import DataError, load_mnist, mnist_directory
from thermo.data.toy import (from_signed_labels, make_dataset, spiral, squares,
                             to_signed_labels, two_circles, two_clusters)
from thermo.data.user import from_arrays, load_csv, save_csv

__all__ = ["load_mnist", "DataError", "mnist_directory", "two_clusters", "squares",
           "spiral", "two_circles", "make_dataset", "to_signed_labels",
           "from_signed_labels", "load_csv", "save_csv", "from_arrays"]
