"""Image data sets as ``datasets.DatasetDict``: CIFAR-10, CIFAR-10N and the digits quickstart.

Every split has ``pixel_values`` (``Array3D`` uint8, channels x height x width, values 0..255,
normalised later on the fly by :class:`jal_trainer.data.ImageCollator`), ``label`` (``ClassLabel``
with class names) and ``index`` (int64, the example's position in the original split, so label
files such as CIFAR-10N join on it after subsetting). uint8 keeps CIFAR-10's 50,000 training
images at 150 MB instead of 600 MB as float32.

Example:
    >>> from jal_trainer.data import load_digits
    >>> dds = load_digits()
    >>> dds["train"].num_rows, dds["test"].num_rows
    (1297, 500)
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.features.features import Array3DExtensionType
from datasets.fingerprint import generate_random_fingerprint
from datasets.table import InMemoryTable
from tqdm.auto import tqdm

from jal_trainer.atomic import atomic_target
from jal_trainer.data._files import find_data_file
from jal_trainer.data.subsets import stratified_indices, stratified_subset  # noqa: F401  (re-exported)
from jal_trainer.paths import resolve_path

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10N_COLUMNS = ("aggre_label", "random_label1", "random_label2", "random_label3", "worse_label")
DIGITS_CLASSES = tuple(str(d) for d in range(10))
DIGITS_TEST_SIZE = 500

_CIFAR_SUBDIR, _CIFAR_FILE = "cifar10_jpeg", "cifar10_jpeg.npz"
_CIFARN_SUBDIR, _CIFARN_FILE = "cifar_n", "cifar10n_labels.npz"


# ---- arrays -> datasets ---------------------------------------------------------------------------


def images_to_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    columns: Mapping[str, np.ndarray] | None = None,
    features: Mapping[str, datasets.features.features.FeatureType] | None = None,
    fingerprint: str | None = None,
) -> datasets.Dataset:
    """Wrap uint8 images (N, C, H, W) and labels (N,) into a ``Dataset`` without copying pixels.

    The pixels become an ``Array3D`` uint8 column built directly in Arrow (``Dataset.from_dict``
    would walk 150 MB of CIFAR pixels in Python). Extra ``columns`` are (N,) arrays; their
    ``features`` default to ``Value`` of the array's dtype.

    Example:
        >>> ds = images_to_dataset(np.zeros((2, 1, 8, 8), np.uint8), np.array([0, 1]), ["a", "b"])
        >>> ds.features["pixel_values"].shape
        (1, 8, 8)
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"images must be (N, C, H, W) with N = len(labels); got {images.shape} and {labels.shape}.")
    shape = tuple(int(s) for s in images.shape[1:])
    storage = pa.array(images.reshape(-1))
    for size in reversed(shape):  # innermost lists first: W, then H, then C
        offsets = np.arange(0, len(storage) + 1, size, dtype=np.int32)
        storage = pa.ListArray.from_arrays(pa.array(offsets), storage)
    arrays = {
        "pixel_values": pa.ExtensionArray.from_storage(Array3DExtensionType(shape, "uint8"), storage),
        "label": pa.array(labels),
    }
    feats = {"pixel_values": datasets.Array3D(shape, "uint8"), "label": datasets.ClassLabel(names=list(label_names))}
    for name, values in (columns or {}).items():
        values = np.asarray(values)
        if len(values) != len(labels):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(labels)} images.")
        arrays[name] = pa.array(values)
        feats[name] = (features or {}).get(name) or datasets.Value(str(values.dtype))
    features_ = datasets.Features(feats)
    table = InMemoryTable(pa.table(arrays).cast(features_.arrow_schema))
    # An explicit fingerprint skips hashing the whole pixel table (seconds for CIFAR).
    fingerprint = fingerprint or generate_random_fingerprint()
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features_), fingerprint=fingerprint)


def image_array(dataset: datasets.Dataset, column: str = "pixel_values") -> np.ndarray:
    """All images of a split as one uint8 array (N, C, H, W), read from Arrow in one go.

    Use this rather than ``np.asarray(dataset["pixel_values"])``, which walks rows in Python
    (seconds per thousand CIFAR images) and widens to int64.

    Example:
        >>> image_array(load_digits()["test"]).shape
        (500, 1, 8, 8)
    """
    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} not in {dataset.column_names}; load an image data set or pass column=.")
    return np.asarray(dataset.with_format("numpy", columns=[column], dtype=np.uint8)[:][column], dtype=np.uint8)


def ensure_pixel_values(dds: datasets.DatasetDict) -> datasets.DatasetDict:
    """Give a Hub image data set (an ``Image`` column such as ``img``) a uint8 ``pixel_values`` column.

    Leaves data sets that already have ``pixel_values``, or no ``Image`` column, unchanged.

    Example:
        >>> ensure_pixel_values(load_digits())["train"].column_names
        ['pixel_values', 'label', 'index']
    """
    out = {}
    for split, ds in dds.items():
        image_columns = [k for k, f in ds.features.items() if isinstance(f, datasets.Image)]
        has_pixels = "pixel_values" in ds.column_names or not image_columns
        out[split] = ds if has_pixels else _image_column_to_pixels(ds, image_columns[0])
    return datasets.DatasetDict(out)


def _image_column_to_pixels(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """Replace the PIL ``column`` by uint8 ``pixel_values`` (C, H, W); grey stays 1 channel, the rest is RGB."""
    first = ds[0][column]
    mode = "L" if first.mode in ("L", "1") else "RGB"
    shape = (1 if mode == "L" else 3, first.height, first.width)

    def to_pixels(batch: dict[str, list]) -> dict[str, list]:
        arrays = [np.asarray(img.convert(mode), dtype=np.uint8) for img in batch[column]]
        arrays = [a.reshape(a.shape[0], a.shape[1], -1).transpose(2, 0, 1) for a in arrays]  # (H, W[, C]) -> CHW
        if any(a.shape != shape for a in arrays):
            raise ValueError(f"images in {column!r} differ in size; resize them to {shape[1:]} before training.")
        return {"pixel_values": arrays}

    features = ds.features.copy()
    del features[column]
    features["pixel_values"] = datasets.Array3D(shape, "uint8")
    return ds.map(to_pixels, batched=True, remove_columns=[column], features=features, desc="pixel_values")


# ---- CIFAR-10 -------------------------------------------------------------------------------------


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


# ---- digits -------------------------------------------------------------------------------------


def load_digits(path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """The quickstart data set: scikit-learn's 1,797 handwritten digits, shipped in the package.

    8x8 grey images, 10 classes, split once (stratified, seed 0) into 1,297 ``train`` and 500
    ``test`` images; the split is stored in the file, so it never changes. Columns:
    ``pixel_values`` (uint8, 1 x 8 x 8; the original 0..16 intensities scaled to 0..255),
    ``label`` (ClassLabel "0".."9"), ``index`` (position in scikit-learn's ``load_digits``).

    Args:
        path: an npz with ``images`` (N, 8, 8) 0..16, ``labels`` (N,) and ``test_mask`` (N,);
            default the packaged ``jal_trainer/resources/digits.npz``.

    Example:
        >>> dds = load_digits()
        >>> dds["train"].features["pixel_values"].shape
        (1, 8, 8)
    """
    source = resources.files("jal_trainer") / "resources" / "digits.npz" if path is None else resolve_path(path)
    if not source.is_file():
        raise FileNotFoundError(
            f"digits: {source} not found. Reinstall jal-trainer (the file ships in jal_trainer/resources) or pass "
            "path= to an npz with images, labels and test_mask."
        )
    with source.open("rb") as handle, np.load(handle) as archive:
        images, labels, test_mask = archive["images"], archive["labels"], archive["test_mask"].astype(bool)
    # 0..16 -> 0..255 so every image data set shares the uint8 convention of the collators
    pixels = np.round(images.astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    splits = {}
    for split, mask in (("train", ~test_mask), ("test", test_mask)):
        index = np.flatnonzero(mask)
        splits[split] = images_to_dataset(
            pixels[index], labels[index], DIGITS_CLASSES, columns={"index": index}, fingerprint=f"jal-digits-{split}"
        )
    return datasets.DatasetDict(splits)
