"""CIFAR-10 and CIFAR-10N as ``datasets.DatasetDict``, decoded from the shared JPEG archive and cached.

Every split has ``pixel_values`` (uint8, 3 x 32 x 32), ``label`` (``ClassLabel``, 10 names) and
``index`` (int64, the example's position in the original split, so label files such as
CIFAR-10N join on it after subsetting). The first full load decodes the JPEGs and caches the
uint8 arrays as ``.npy``; later loads read the cache.

Example:
    >>> from jal_trainer.data.cifar import load_cifar10
    >>> dds = load_cifar10(train_subset=1000, test_subset=200)  # doctest: +SKIP
    >>> dds["train"].features["label"].names[:2]  # doctest: +SKIP
    ['airplane', 'automobile']
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import numpy as np
from tqdm.auto import tqdm

from jal_trainer.atomic import atomic_target
from jal_trainer.data._files import find_data_file
from jal_trainer.data.images import images_to_dataset
from jal_trainer.data.subsets import stratified_indices
from jal_trainer.paths import resolve_path

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10N_COLUMNS = ("aggre_label", "random_label1", "random_label2", "random_label3", "worse_label")

_CIFAR_SUBDIR, _CIFAR_FILE = "cifar10_jpeg", "cifar10_jpeg.npz"
_CIFARN_SUBDIR, _CIFARN_FILE = "cifar_n", "cifar10n_labels.npz"


def decode_jpegs(
    blob: np.ndarray, offsets: np.ndarray, indices: Sequence[int] | np.ndarray | None = None, *, progress: bool = False
) -> np.ndarray:
    """Decode concatenated JPEG images into a uint8 array (n, C, H, W).

    Args:
        blob: (bytes,) uint8, the JPEG files one after another.
        offsets: (N + 1,) int64; image i is ``blob[offsets[i]:offsets[i + 1]]``.
        indices: which images to decode (default all, in order).
        progress: show a tqdm bar.

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, "JPEG")
        >>> jpeg = np.frombuffer(buf.getvalue(), np.uint8)
        >>> decode_jpegs(jpeg, np.array([0, jpeg.size])).shape
        (1, 3, 4, 4)
    """
    from PIL import Image  # Pillow comes with matplotlib; imported here as only CIFAR needs it

    indices = np.arange(len(offsets) - 1) if indices is None else np.asarray(indices, dtype=np.int64)

    def decode(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)

    first = decode(int(indices[0])) if indices.size else np.zeros((3, 0, 0), np.uint8)
    out = np.empty((indices.size, *first.shape), dtype=np.uint8)
    for k, i in enumerate(tqdm(indices, desc="Decoding JPEG", unit="img", disable=not progress)):
        out[k] = first if k == 0 else decode(int(i))
    return out


def default_cache_dir() -> Path:
    """``$JAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/jal_trainer``, else ``~/.cache/jal_trainer``."""
    if os.environ.get("JAL_CACHE_DIR"):
        return Path(os.environ["JAL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "jal_trainer"


def _cache_file(source: Path, split: str, cache_dir: Path) -> Path:
    # Keyed by size and mtime: a replaced archive gets a new cache entry, an unchanged one is reused.
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / f"cifar10-{key}-{split}.npy"


def _save_atomically(array: np.ndarray, target: Path) -> None:
    try:
        with atomic_target(target) as tmp:  # concurrent ranks never read a half-written file
            np.save(tmp, array)
    except OSError as err:
        warnings.warn(f"could not cache decoded CIFAR images in {target.parent} ({err}); they will be decoded again.")


def _cifar_split(
    source: Path, split: str, subset: int | None, seed: int, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,), original indices (n,)) of one CIFAR split."""
    with np.load(source) as archive:
        labels = archive[f"{split}_labels"].astype(np.int64)
        index = np.arange(labels.size) if subset is None else stratified_indices(labels, subset, seed=seed)
        cached = _cache_file(source, split, cache_dir) if cache_dir is not None else None
        if cached is not None and cached.is_file():
            images = np.load(cached, mmap_mode="r")
            return (np.array(images) if subset is None else images[index]), labels[index], index
        blob, offsets = archive[f"{split}_jpeg"], archive[f"{split}_offsets"]
    if subset is not None:  # a subset decodes only its own images and leaves the cache alone
        return decode_jpegs(blob, offsets, index, progress=subset > 5000), labels[index], index
    images = decode_jpegs(blob, offsets, progress=True)
    if cached is not None:
        _save_atomically(images, cached)
    return images, labels, index


def load_cifar10(
    path: str | os.PathLike[str] | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> datasets.DatasetDict:
    """CIFAR-10 in the original CIFAR order: ``train`` (50,000) and ``test`` (10,000).

    Columns: ``pixel_values`` (uint8, 3 x 32 x 32), ``label`` (ClassLabel, 10 names), ``index``
    (position in the original split). The first full load decodes the JPEGs (about 8 s) and
    caches the uint8 arrays as ``.npy`` in ``cache_dir`` (default :func:`default_cache_dir`);
    later loads read the cache. A subset decodes only its own images.

    Args:
        path: ``cifar10_jpeg.npz`` or a folder holding it (default ``<shared>/data/cifar10_jpeg``).
        train_subset, test_subset: keep a class-stratified, seeded subset of this many examples.
        seed: seed of the subsets.
        cache_dir: where decoded arrays are cached; ``use_cache=False`` disables the cache.

    Example:
        >>> dds = load_cifar10(train_subset=1000, test_subset=200)
        >>> dds["train"].features["label"].names[:2]
        ['airplane', 'automobile']
    """
    source = find_data_file(path, subdir=_CIFAR_SUBDIR, filename=_CIFAR_FILE, what="CIFAR-10")
    return _load_cifar(source, (train_subset, test_subset), seed, _cache_root(cache_dir, use_cache), {})


def _cache_root(cache_dir: str | os.PathLike[str] | None, use_cache: bool) -> Path | None:
    if not use_cache:
        return None
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def _load_cifar(
    source: Path,
    subsets: tuple[int | None, int | None],
    seed: int,
    cache: Path | None,
    train_columns: Mapping[str, np.ndarray],
) -> datasets.DatasetDict:
    """Both CIFAR splits; ``train_columns`` are full-length (50,000) label arrays joined on ``index``."""
    splits = {}
    stat = source.stat()
    for split, subset in zip(("train", "test"), subsets):
        images, labels, index = _cifar_split(source, split, subset, seed, cache)
        columns = {"index": index}
        features = {}
        for name, values in (train_columns if split == "train" else {}).items():
            columns[name] = values[index]
            features[name] = datasets.ClassLabel(names=list(CIFAR10_CLASSES))
        key = f"{source}|{stat.st_mtime_ns}|{split}|{subset}|{seed}|{sorted(columns)}"
        splits[split] = images_to_dataset(
            images,
            labels,
            CIFAR10_CLASSES,
            columns=columns,
            features=features,
            fingerprint=hashlib.sha1(key.encode()).hexdigest()[:16],
        )
    return datasets.DatasetDict(splits)


def _cifar_source(cifar_path: str | os.PathLike[str] | None, labels_path: str | os.PathLike[str] | None) -> Path:
    """The CIFAR-10 archive: ``cifar_path``, else found beside the CIFAR-10N labels, else the default."""
    if cifar_path is not None or labels_path is None:
        return find_data_file(cifar_path, subdir=_CIFAR_SUBDIR, filename=_CIFAR_FILE, what="CIFAR-10")
    root = resolve_path(labels_path)
    root = root.parent if root.is_file() else root
    return find_data_file(root, subdir=_CIFAR_SUBDIR, filename=_CIFAR_FILE, what="CIFAR-10")


def load_cifar10n_labels(
    path: str | os.PathLike[str] | None = None, *, cifar_path: str | os.PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """The CIFAR-10N label arrays (50,000 each, CIFAR train order), checked against CIFAR-10.

    Returns ``clean_label`` and the five human label sets of :data:`CIFAR10N_COLUMNS`, int64.

    Raises:
        ValueError: when ``clean_label`` differs from the CIFAR-10 training labels (files from
            different releases or orders), which would silently misalign every noisy label.

    Example:
        >>> labels = load_cifar10n_labels()
        >>> round(float((labels["worse_label"] != labels["clean_label"]).mean()), 4)
        0.4021
    """
    label_file = find_data_file(path, subdir=_CIFARN_SUBDIR, filename=_CIFARN_FILE, what="CIFAR-10N labels")
    cifar_file = _cifar_source(cifar_path, path)
    with np.load(label_file) as archive:
        missing = [c for c in ("clean_label", *CIFAR10N_COLUMNS) if c not in archive.files]
        if missing:
            raise ValueError(f"{label_file} lacks {missing}; use cifar10n_labels.npz as described in SOURCES.md.")
        labels = {c: archive[c].astype(np.int64) for c in ("clean_label", *CIFAR10N_COLUMNS)}
    with np.load(cifar_file) as archive:
        train_labels = archive["train_labels"].astype(np.int64)
    clean = labels["clean_label"]
    if clean.shape != train_labels.shape or not np.array_equal(clean, train_labels):
        differ = int((clean != train_labels).sum()) if clean.shape == train_labels.shape else "all"
        raise ValueError(
            f"CIFAR-10N clean_label in {label_file} does not match the CIFAR-10 train labels in {cifar_file} "
            f"({differ} of {train_labels.size} differ): the files are not in the same order. Use the CIFAR-10 "
            "archive in original CIFAR order (SOURCES.md) or pass the matching cifar_path."
        )
    return labels


def load_cifar10n(
    path: str | os.PathLike[str] | None = None,
    *,
    cifar_path: str | os.PathLike[str] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> datasets.DatasetDict:
    """CIFAR-10 with the CIFAR-10N human labels joined on the training split.

    ``label`` stays the clean label; the train split gains the ClassLabel columns
    ``aggre_label``, ``random_label1``, ``random_label2``, ``random_label3`` and ``worse_label``
    (noise rates 9.01, 17.23, 18.12, 17.64 and 40.21 %), aligned through ``index``. Train on one
    of them with ``add_label_noise(dds, "column", column="worse_label")``.

    Args:
        path: ``cifar10n_labels.npz``, its folder, or the shared/data folder.
        cifar_path: the CIFAR-10 archive or folder (default: found from ``path`` or the shared folder).
        train_subset, test_subset, seed, cache_dir, use_cache: as in :func:`load_cifar10`.

    Example:
        >>> dds = load_cifar10n(train_subset=500, test_subset=100)
        >>> "worse_label" in dds["train"].column_names
        True
    """
    labels = load_cifar10n_labels(path, cifar_path=cifar_path)
    columns = {c: labels[c] for c in CIFAR10N_COLUMNS}
    source = _cifar_source(cifar_path, path)
    return _load_cifar(source, (train_subset, test_subset), seed, _cache_root(cache_dir, use_cache), columns)
