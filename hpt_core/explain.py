"""Look inside what the prompt learned: nearest vocabulary words of each virtual label word, how far each moved
from its initialisation, and a 2-D map.

Similarity is the cosine between a label word ``v_i`` and each row of the backbone's word-embedding matrix (paper
Table 3). Special tokens and BERT's ``[unused…]`` rows are never returned; ``whole_words=True`` (default) also skips
``##`` continuation pieces and pure punctuation, which rarely mean anything on their own.

The initialisation (``label_word_init``) is the real one: the label words as built from the word embeddings of the
backbone the model was trained from (``config.backbone``, loaded again), since training moves the embeddings too.
When that backbone cannot be loaded here, or its vocabulary is not the model's, the model's current embeddings stand
in and ``LabelInit.source`` says so.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import statistics
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hpt_core.backbones import load_backbone, resolve_backbone
from hpt_core.errors import BackboneError, ConfigError
from hpt_core.label_names import label_names_from_dict, label_texts
from hpt_core.model import HPTModel
from hpt_core.verbalizer import label_name_embeddings

__all__ = [
    "INIT_BACKBONE",
    "INIT_CURRENT",
    "LabelWords",
    "LabelInit",
    "LabelMovement",
    "Movement",
    "WordMap",
    "nearest_words",
    "label_word_map",
    "label_word_matrix",
    "initial_label_words",
    "label_word_init",
    "label_movement",
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


INIT_BACKBONE = "backbone"
INIT_CURRENT = "current embeddings"


@dataclass
class LabelInit:
    """The label words as initialised, and the word embeddings they were built from."""

    vectors: torch.Tensor  # (C, d) initial label words
    embeddings: torch.Tensor  # (V, d) word embeddings at initialisation (fp32, CPU)
    source: str  # INIT_BACKBONE, or INIT_CURRENT when the backbone could not be used
    note: str = ""  # why the current embeddings stand in ("" for INIT_BACKBONE)


def _stamp(where: str) -> float:
    """Modification time of a local backbone's weights (0 for a hub name), so a rewritten backbone is read again."""
    folder = Path(where)
    times = [p.stat().st_mtime for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    return max(times, default=0.0)


@functools.lru_cache(maxsize=2)
def _backbone_embeddings(where: str, stamp: float) -> tuple[torch.Tensor, dict[str, int]]:
    """Word-embedding matrix ``(V, d)`` and vocabulary of the backbone at ``where`` (cached: the app asks often)."""
    quiet = logging.getLogger("hpt_core.backbones")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "no trained MLM head" concerns training, not reading the embeddings
    try:
        tokenizer, backbone = load_backbone(where)
    finally:
        quiet.setLevel(level)
    return backbone.get_input_embeddings().weight.detach().float().cpu().clone(), dict(tokenizer.get_vocab())


def _declared_shape(where: str) -> tuple[int, int] | None:
    """``(vocab_size, hidden_size)`` from a local backbone's config.json, to skip loading an incompatible one."""
    path = Path(where) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["vocab_size"]), int(data["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mismatch(name: str, theirs: tuple[int, ...], ours: tuple[int, ...]) -> str:
    return f"backbone {name!r} has a {theirs[0]}×{theirs[1]} embedding matrix, this model {ours[0]}×{ours[1]}"


def _init_embeddings(model: HPTModel) -> tuple[torch.Tensor | None, str]:
    """The original backbone's word embeddings, or ``None`` and the reason they cannot be used."""
    name = model.config.backbone
    current = tuple(model.word_embeddings.weight.shape)
    try:
        where = resolve_backbone(name)
        declared = _declared_shape(where)
        if declared is not None and declared != current:
            return None, _mismatch(name, declared, current)
        embeddings, vocab = _backbone_embeddings(where, _stamp(where))
    except (BackboneError, OSError, ValueError) as e:
        return None, f"backbone {name!r} cannot be loaded here ({e})"
    if tuple(embeddings.shape) != current:
        return None, _mismatch(name, tuple(embeddings.shape), current)
    if vocab != model.tokenizer.get_vocab():
        return None, f"backbone {name!r} has a different vocabulary from the model's tokenizer"
    return embeddings, ""


def _init_texts(model: HPTModel) -> list[str]:
    """The text each label word was initialised from, in label-id order, as ``HPTModel.__init__`` chooses it."""
    h = model.hierarchy
    return label_texts(h, model.config.label_name_split, label_names_from_dict(model.label_names, h))


def _initial_from(model: HPTModel, embeddings: torch.Tensor) -> torch.Tensor:
    """The label words ``(C, d)`` that ``model``'s verbalizer builds from word embeddings ``embeddings``."""
    verbalizer = model.verbalizer
    if hasattr(verbalizer, "label_words"):
        texts = _init_texts(model)
        return label_name_embeddings(model.tokenizer, embeddings, texts, bool(model.config.label_init_special_tokens))
    if hasattr(verbalizer, "word_ids"):  # the hard prompt's headwords: fixed ids, their embeddings may move
        rows = embeddings[verbalizer.word_ids.cpu()]  # (C, K, d)
        mask = verbalizer.word_mask.cpu()[..., None]
        return (rows * mask).sum(1) / mask.sum(1)
    raise ConfigError("This model is a plain fine-tune classifier: it has no label words to explain.")


# Per model object: the original backbone's word embeddings (shared through the cache above), or None and the reason.
_INITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def label_word_init(model: HPTModel) -> LabelInit:
    """The label words as initialised: the mean embedding of each label name's tokens (with the model's own init
    settings) in the backbone the model was trained from; its current embeddings when that backbone is unusable."""
    with torch.no_grad():
        cached = _INITS.get(model)
        if cached is None:
            embeddings, note = _init_embeddings(model)
            _INITS[model] = cached = (embeddings, note)
        embeddings, note = cached
        if embeddings is None:
            current = model.word_embeddings.weight.detach().float().cpu()
            return LabelInit(_initial_from(model, current), current, INIT_CURRENT, note)
        return LabelInit(_initial_from(model, embeddings), embeddings, INIT_BACKBONE)


def initial_label_words(model: HPTModel) -> torch.Tensor:
    """The label words ``(C, d)`` before training (``label_word_init(model).vectors``)."""
    return label_word_init(model).vectors


_PUNCT = re.compile(r"^[\W_]+$")


_MASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {whole_words: mask}


def _vocabulary_mask(model: HPTModel, whole_words: bool) -> torch.Tensor:
    """``(V,)`` bool: the vocabulary rows a nearest-word list may return. Computed once per model (a pass over the
    whole vocabulary holds the interpreter for ~0.1 s, which requests served beside it would wait for)."""
    masks = _MASKS.setdefault(model, {})
    if whole_words not in masks:
        tokenizer = model.tokenizer
        vocab_size = model.word_embeddings.weight.shape[0]
        tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        special = set(tokenizer.all_special_ids)
        keep = [
            not (
                token is None
                or i in special
                or (token.startswith("[") and token.endswith("]"))
                or whole_words
                and (token.startswith("##") or _PUNCT.match(token))
            )
            for i, token in enumerate(tokens)
        ]
        masks[whole_words] = torch.tensor(keep, dtype=torch.bool)
    return masks[whole_words]


def _nearest(
    model: HPTModel, matrix: torch.Tensor, embeddings: torch.Tensor, ids: list[int], top_k: int, keep: torch.Tensor
) -> list[LabelWords]:
    """The ``top_k`` words of ``embeddings`` ``(V, d)`` (those ``keep`` allows) nearest (cosine) to each row ``ids``
    of ``matrix`` ``(C, d)``."""
    h = model.hierarchy
    vectors = F.normalize(matrix[ids], dim=-1)  # (n, d)
    vocab = F.normalize(embeddings, dim=-1)  # (V, d)
    sims = vectors @ vocab.t()  # (n, V)
    sims[:, ~keep] = -2.0
    k = min(top_k, int(keep.sum()))
    values, indices = sims.topk(k, dim=-1)
    out = []
    for row, label in enumerate(ids):
        words = model.tokenizer.convert_ids_to_tokens(indices[row].tolist())
        out.append(LabelWords(h.name(label), h.path(label), h.depth(label), list(zip(words, values[row].tolist()))))
    return out


@torch.inference_mode()
def nearest_words(
    model: HPTModel,
    top_k: int = 8,
    whole_words: bool = True,
    labels: list[int] | None = None,
    initial: bool = False,
) -> list[LabelWords]:
    """For each label (or those in ``labels``), its ``top_k`` nearest vocabulary words by cosine similarity.

    ``initial=True`` explains the label words as they were before training (``label_word_init``), among the word
    embeddings as they were then.
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}.")
    ids = list(range(model.hierarchy.num_labels)) if labels is None else labels
    keep = _vocabulary_mask(model, whole_words)
    if initial:
        init = label_word_init(model)
        return _nearest(model, init.vectors, init.embeddings, ids, top_k, keep)
    current = model.word_embeddings.weight.detach().float().cpu()
    return _nearest(model, label_word_matrix(model), current, ids, top_k, keep)


@dataclass
class LabelMovement:
    """How one label word moved in training: its cosine to its initialisation and its top-k words before/after."""

    after: LabelWords  # nearest words of the trained label word (current embeddings)
    before: LabelWords  # nearest words of the label word as initialised (embeddings at initialisation)
    cosine_to_init: float
    gained: list[str]  # in the top-k after training, not as initialised (most similar first)
    lost: list[str]  # in the top-k as initialised, not after training

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)

    def to_dict(self) -> dict:
        """The new keys ``explain`` adds to a label's ``LabelWords.to_dict()``."""
        return {"cosine_to_init": round(self.cosine_to_init, 4), "gained": self.gained, "lost": self.lost}


@dataclass
class Movement:
    """Every label word's movement from its initialisation, and a model-level summary."""

    labels: list[LabelMovement]  # in label-id order
    top_k: int
    init_source: str  # INIT_BACKBONE or INIT_CURRENT
    init_note: str  # why the current embeddings stood in ("" for INIT_BACKBONE)

    @property
    def mean_cosine(self) -> float:
        return statistics.fmean(m.cosine_to_init for m in self.labels)

    @property
    def median_cosine(self) -> float:
        return statistics.median(m.cosine_to_init for m in self.labels)

    @property
    def num_changed(self) -> int:
        """Labels whose top-k set of words changed."""
        return sum(m.changed for m in self.labels)

    @property
    def num_same_nearest(self) -> int:
        """Labels that kept their nearest word."""
        return sum(m.after.words[0][0] == m.before.words[0][0] for m in self.labels)

    @property
    def mean_kept(self) -> float:
        """Average number of the top-k initial words still in the top-k after training."""
        return statistics.fmean(len(m.before.words) - len(m.lost) for m in self.labels)

    def summary(self) -> dict:
        return {
            "top_k": self.top_k,
            "num_labels": len(self.labels),
            "init_source": self.init_source,
            "init_note": self.init_note,
            "mean_cosine_to_init": round(self.mean_cosine, 4),
            "median_cosine_to_init": round(self.median_cosine, 4),
            "labels_changed_top_k": self.num_changed,
            "labels_same_nearest_word": self.num_same_nearest,
            "mean_words_kept": round(self.mean_kept, 2),
        }

    def sentence(self) -> str:
        """One line for people: how far the label words moved."""
        n = len(self.labels)
        text = (
            f"Label words moved: mean cosine {self.mean_cosine:.3f} (median {self.median_cosine:.3f}) to their "
            f"initialisation; {self.num_changed} of {n} labels changed their top-{self.top_k} words, "
            f"{self.num_same_nearest} of {n} kept their nearest word."
        )
        if self.init_source != INIT_BACKBONE:
            text += f" (Initialisation rebuilt from the model's current embeddings: {self.init_note}.)"
        return text


@torch.inference_mode()
def label_movement(model: HPTModel, top_k: int = 8, whole_words: bool = True) -> Movement:
    """Per label, the cosine between the trained label word and its initialisation (``label_word_init``) and the
    words gained and lost in its ``top_k`` nearest words; with the model-level summary."""
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}.")
    trained = label_word_matrix(model)  # raises for a plain fine-tune classifier
    init = label_word_init(model)
    ids = list(range(model.hierarchy.num_labels))
    keep = _vocabulary_mask(model, whole_words)
    current = model.word_embeddings.weight.detach().float().cpu()
    after = _nearest(model, trained, current, ids, top_k, keep)
    before = _nearest(model, init.vectors, init.embeddings, ids, top_k, keep)
    cosines = F.cosine_similarity(trained, init.vectors, dim=-1).tolist()
    labels = []
    for a, b, cosine in zip(after, before, cosines):
        now, then = [w for w, _ in a.words], [w for w, _ in b.words]
        gained = [w for w in now if w not in then]
        lost = [w for w in then if w not in now]
        labels.append(LabelMovement(a, b, float(cosine), gained, lost))
    return Movement(labels, top_k, init.source, init.note)


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
