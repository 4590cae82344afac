"""Look inside what the prompt learned: nearest vocabulary words of each virtual label word, and a 2-D map.

Similarity is the cosine between a label word ``v_i`` and each row of the backbone's word-embedding matrix (paper
Table 3). Special tokens and BERT's ``[unused…]`` rows are never returned; ``whole_words=True`` (default) also skips
``##`` continuation pieces and pure punctuation, which rarely mean anything on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hpt_core.errors import ConfigError
from hpt_core.model import HPTModel
from hpt_core.verbalizer import label_name_embeddings

__all__ = [
    "LabelWords",
    "WordMap",
    "nearest_words",
    "label_word_map",
    "label_word_matrix",
    "initial_label_words",
    "word_map",
]


@dataclass
class LabelWords:
    """Nearest vocabulary words of one label's virtual label word."""

    label: str
    path: list[str]
    depth: int
    words: list[tuple[str, float]]  # (word, cosine similarity), most similar first

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "path": self.path,
            "depth": self.depth,
            "words": [{"word": w, "similarity": round(s, 4)} for w, s in self.words],
        }


def label_word_matrix(model: HPTModel) -> torch.Tensor:
    """The label words ``(C, d)`` (HPT and soft prompt); for the hard prompt, the mean embedding of each headword."""
    verbalizer = model.verbalizer
    if hasattr(verbalizer, "label_words"):
        return verbalizer.label_words.detach().float().cpu()
    if hasattr(verbalizer, "word_ids"):
        rows = model.word_embeddings.weight.detach().float().cpu()[verbalizer.word_ids.cpu()]  # (C, K, d)
        mask = verbalizer.word_mask.cpu()[..., None]
        return (rows * mask).sum(1) / mask.sum(1)
    raise ConfigError("This model is a plain fine-tune classifier: it has no label words to explain.")


def initial_label_words(model: HPTModel) -> torch.Tensor:
    """The label words ``(C, d)`` before training: the mean word embedding of each label's (short) name, as the
    verbalizer initialises them, computed with the model's current word embeddings."""
    h = model.hierarchy
    names = [h.short_name(i) for i in range(h.num_labels)]
    words = model.word_embeddings.weight.detach().float().cpu()
    return label_name_embeddings(model.tokenizer, words, names, bool(model.config.label_init_special_tokens))


_PUNCT = re.compile(r"^[\W_]+$")


def _vocabulary_mask(model: HPTModel, whole_words: bool) -> torch.Tensor:
    tokenizer = model.tokenizer
    vocab_size = model.word_embeddings.weight.shape[0]
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    special = set(tokenizer.all_special_ids)
    keep = torch.ones(vocab_size, dtype=torch.bool)
    for i, token in enumerate(tokens):
        if (
            token is None
            or i in special
            or (token.startswith("[") and token.endswith("]"))
            or whole_words
            and (token.startswith("##") or _PUNCT.match(token))
        ):
            keep[i] = False
    return keep


@torch.inference_mode()
def nearest_words(
    model: HPTModel,
    top_k: int = 8,
    whole_words: bool = True,
    labels: list[int] | None = None,
    initial: bool = False,
) -> list[LabelWords]:
    """For each label (or those in ``labels``), its ``top_k`` nearest vocabulary words by cosine similarity.

    ``initial=True`` explains the label words as they were before training (``initial_label_words``).
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}.")
    h = model.hierarchy
    ids = list(range(h.num_labels)) if labels is None else labels
    matrix = initial_label_words(model) if initial else label_word_matrix(model)
    vectors = F.normalize(matrix[ids], dim=-1)  # (n, d)
    vocab = F.normalize(model.word_embeddings.weight.detach().float().cpu(), dim=-1)  # (V, d)
    keep = _vocabulary_mask(model, whole_words)
    sims = vectors @ vocab.t()  # (n, V)
    sims[:, ~keep] = -2.0
    k = min(top_k, int(keep.sum()))
    values, indices = sims.topk(k, dim=-1)
    out = []
    for row, label in enumerate(ids):
        words = model.tokenizer.convert_ids_to_tokens(indices[row].tolist())
        out.append(LabelWords(h.name(label), h.path(label), h.depth(label), list(zip(words, values[row].tolist()))))
    return out


def label_word_map(model: HPTModel, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP coordinates ``(C, 2)`` of the label words (cosine metric); PCA when there are fewer than 5 labels."""
    return _project(label_word_matrix(model).numpy(), seed, n_neighbors)


@dataclass
class WordMap:
    """A 2-D map of the label words and of their nearest vocabulary words, fitted together."""

    label_coords: np.ndarray  # (C, 2)
    words: list[LabelWords]  # nearest words of every label, in label-id order
    word_coords: list[np.ndarray]  # per label, (k, 2) coordinates of its nearest words


def word_map(model: HPTModel, top_k: int = 8, seed: int = 0, n_neighbors: int = 15) -> WordMap:
    """UMAP (cosine) of the label words together with each one's ``top_k`` nearest vocabulary words, so that the
    words around a label on the map are the words it is closest to. PCA when there are fewer than 5 points."""
    words = nearest_words(model, top_k=top_k)
    vocab = model.word_embeddings.weight.detach().float().cpu()
    token_ids = [model.tokenizer.convert_tokens_to_ids([w for w, _ in lw.words]) for lw in words]
    unique = sorted({i for ids in token_ids for i in ids})
    vectors = torch.cat([label_word_matrix(model), vocab[unique]]).numpy()
    coords = _project(vectors, seed, n_neighbors)
    c = model.hierarchy.num_labels
    row_of = {token: c + k for k, token in enumerate(unique)}
    return WordMap(coords[:c], words, [coords[[row_of[i] for i in ids]] for ids in token_ids])


def _project(vectors: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    """2-D coordinates ``(N, 2)``: UMAP with the cosine metric, PCA below 5 points."""
    if len(vectors) < 5:
        centred = vectors - vectors.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))).astype(np.float32)
    import umap  # umap-learn (numba) takes many seconds to import: only when a map is drawn

    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(n_neighbors, len(vectors) - 1), metric="cosine", random_state=seed
    )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)
