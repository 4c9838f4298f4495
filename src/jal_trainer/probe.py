"""Frozen-encoder classification: embed texts once, then train only a head on the embeddings.

With ``freeze_encoder: true`` a recipe trains a classifier head on top of a frozen pretrained
encoder. Running the frozen encoder at every step of every epoch would redo the same work, so the
sentence embeddings (mean-pooled last hidden states, L2-normalised: how all-MiniLM-L6-v2 was
trained to be used) are computed once, cached on disk, and the head trains on them in seconds.
This is what makes a grid of losses x noise rates x seeds affordable on a CPU.

Example:
    >>> from jal_trainer.probe import ProbeConfig, ProbeForClassification
    >>> model = ProbeForClassification(ProbeConfig(hidden_size=384, num_labels=2))
    >>> model(embeddings=torch.zeros(4, 384)).logits.shape
    torch.Size([4, 2])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from datasets import DatasetDict
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from jal_trainer.atomic import atomic_target

EMBEDDINGS = "embeddings"


class ProbeConfig(PretrainedConfig):
    """Config of a classification head on frozen sentence embeddings."""

    model_type = "jal-probe"

    def __init__(self, hidden_size: int = 384, hidden_layers: int = 0, encoder: str | None = None, **kwargs) -> None:
        self.hidden_size = hidden_size
        self.hidden_layers = hidden_layers  # 0: a linear head; n: n hidden ReLU layers of hidden_size
        self.encoder = encoder  # the frozen encoder the embeddings come from (path or Hub id)
        super().__init__(**kwargs)


class ProbeForClassification(PreTrainedModel):
    """Linear (or small MLP) classifier over embeddings (N, hidden_size) -> logits (N, num_labels)."""

    config_class = ProbeConfig
    main_input_name = EMBEDDINGS

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__(config)
        layers: list[nn.Module] = []
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU()]
        layers.append(nn.Linear(config.hidden_size, config.num_labels))
        self.head = nn.Sequential(*layers)
        self.post_init()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs) -> SequenceClassifierOutput:
        logits = self.head(embeddings)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(ProbeConfig.model_type, ProbeConfig, exist_ok=True)


def embed_dataset(dataset: DatasetDict, encoder: str, *, text_column: str = "text", max_length: int = 128,
                  batch_size: int = 64, cache_dir: str | os.PathLike[str] | None = None) -> DatasetDict:
    """Replace the text column of every split by frozen sentence embeddings (cached on disk).

    Args:
        dataset: splits with a ``text_column``.
        encoder: path or Hub id of a transformers encoder (e.g. all-MiniLM-L6-v2).
        cache_dir: where embeddings are cached (default ``~/.cache/jal_trainer/embeddings``); the key
            covers the texts, the encoder's weights file and ``max_length``.

    Returns:
        The same splits with an ``embeddings`` column (float32, (hidden_size,)) instead of the text.
    """
    cache = Path(cache_dir or Path.home() / ".cache" / "jal_trainer" / "embeddings")
    cache.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, object] = {}
    out = {}
    for split, ds in dataset.items():
        texts = ds[text_column]
        key = _cache_key(texts, encoder, max_length)
        path = cache / f"{key}.npy"
        rows, tag = _row_hashes(texts), _cache_key([], encoder, max_length)[:12]  # tag: encoder and max_length
        # a subset of a cached split's rows (jal clean dropped some) is read from it, not embedded again
        vectors = None if path.exists() else _from_cached_rows(cache, tag, rows)
        if vectors is None:
            if not path.exists():
                if not loaded:
                    loaded["tokenizer"] = AutoTokenizer.from_pretrained(encoder)
                    loaded["model"] = AutoModel.from_pretrained(encoder).eval()
                _save_atomic(path, _embed(texts, loaded["tokenizer"], loaded["model"], max_length, batch_size, split))
            vectors = np.load(path)
            _save_atomic(path.with_name(f"{key}.rows.{tag}.npy"), rows)
        out[split] = ds.add_column(EMBEDDINGS, list(vectors)).remove_columns(text_column)
    return DatasetDict(out)


def _cache_key(texts: list[str], encoder: str, max_length: int) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    weights = next((Path(encoder) / n for n in ("model.safetensors", "pytorch_model.bin")
                    if (Path(encoder) / n).exists()), None)
    stamp = f"{weights.stat().st_size}" if weights else encoder
    h.update(f"{os.path.abspath(encoder) if weights else encoder}|{stamp}|{max_length}".encode())
    return h.hexdigest()[:24]


def _row_hashes(texts: list[str]) -> np.ndarray:
    """(N,) uint64: a 64-bit hash of each text, to find the rows of a subset in a cached split."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                     for t in texts], dtype=np.uint64)


def _from_cached_rows(cache: Path, tag: str, rows: np.ndarray) -> np.ndarray | None:
    """(N, hidden) embeddings of ``rows`` taken from a cached split holding every one of them, else None.

    A split with rows dropped (`jal clean`) or subsampled has a new cache key, but its texts were
    embedded with the same encoder and ``max_length`` (``tag``) when the full split ran.
    """
    for index_path in sorted(cache.glob(f"*.rows.{tag}.npy")):
        cached = np.load(index_path)
        order = np.argsort(cached, kind="stable")
        where = np.searchsorted(cached[order], rows)
        where = np.minimum(where, len(cached) - 1)
        found = order[where]
        vectors_path = cache / f"{index_path.name.split('.')[0]}.npy"
        if len(cached) and np.array_equal(cached[found], rows) and vectors_path.exists():
            return np.load(vectors_path, mmap_mode="r")[found]
    return None


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` unless it is there (several ranks may embed one split at once)."""
    if not path.exists():
        with atomic_target(path) as tmp:
            np.save(tmp, array)


@torch.no_grad()
def _embed(texts: list[str], tokenizer, model, max_length: int, batch_size: int, split: str) -> np.ndarray:
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"Embedding {split}", unit="batch"):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, L, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # mean over real tokens
        chunks.append(nn.functional.normalize(pooled, dim=-1).float().numpy())
    return np.concatenate(chunks)


def probe_model(encoder: str, num_labels: int, id2label: dict[int, str],
                hidden_layers: int = 0) -> ProbeForClassification:
    """A fresh head sized for the encoder's hidden size."""
    hidden = AutoConfig.from_pretrained(encoder).hidden_size
    config = ProbeConfig(hidden_size=hidden, hidden_layers=hidden_layers, encoder=encoder, num_labels=num_labels,
                         id2label=id2label, label2id={v: k for k, v in id2label.items()})
    return ProbeForClassification(config)


__all__ = ["EMBEDDINGS", "ProbeConfig", "ProbeForClassification", "embed_dataset", "probe_model"]
