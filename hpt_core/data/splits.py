"""Train/dev/test splits (the file's own, or a seeded split stratified by label) and low-resource subsamples."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from hpt_core.data.types import SPLITS, Dataset, Document
from hpt_core.errors import ConfigError

__all__ = ["low_resource", "split_dataset"]


def _deepest_label(doc: Document, depth_of: list[int]) -> int:
    """The deepest label of a document (the smallest id among equals); -1 for an unlabelled document."""
    if not doc.labels:
        return -1
    return min(doc.labels, key=lambda i: (-depth_of[i], i))


def _top_label(doc: Document, depth_of: list[int]) -> int:
    return min((i for i in doc.labels if depth_of[i] == 0), default=-1)


def _check_fraction(name: str, value: float, allow_zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not math.isnan(value) and value <= 1
    if not ok or (value < 0 if allow_zero else value <= 0):
        interval = "[0, 1)" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}.")


def _stratified_pick(keys: list[list[int]], indices: list[int], size: int, seed: int) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (rest, picked) with ``len(picked) == size``, stratified by the first usable key."""
    from sklearn.model_selection import train_test_split  # scikit-learn takes seconds to import: only when splitting

    if size <= 0:
        return list(indices), []
    if size >= len(indices):
        return [], list(indices)
    for key in keys:
        try:
            rest, picked = train_test_split(
                indices, test_size=size, random_state=seed, stratify=[key[i] for i in indices]
            )
            return sorted(rest), sorted(picked)
        except ValueError:
            continue  # a class too small for this key
    rest, picked = train_test_split(indices, test_size=size, random_state=seed)
    return sorted(rest), sorted(picked)


def split_dataset(
    dataset: Dataset,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[Dataset, Dataset, Dataset]:
    """Train, dev and test sets.

    When any document carries a split, the given splits are used (documents without one go to train); a split the
    data lacks is carved from train with its fraction (20 Newsgroups has train and test but no dev). Otherwise a
    seeded shuffle split, stratified by each document's deepest label, else by its top-level label, else not at all.
    """
    _check_seed(seed)
    docs = dataset.documents
    if any(d.split is not None for d in docs):
        parts = {s: [d for d in docs if (d.split or "train") == s] for s in SPLITS}
        given = {s for s in SPLITS if parts[s]}
        missing_dev = dev_fraction if "dev" not in given else 0.0
        missing_test = test_fraction if "test" not in given else 0.0
        if (missing_dev or missing_test) and parts["train"]:
            unsplit = dataset.subset([replace(d, split=None) for d in parts["train"]])
            train, dev, test = split_dataset(unsplit, missing_dev, missing_test, seed)
            parts["train"] = train.documents
            parts["dev"] = parts["dev"] or dev.documents
            parts["test"] = parts["test"] or test.documents
        return dataset.subset(parts["train"]), dataset.subset(parts["dev"]), dataset.subset(parts["test"])
    _check_fraction("dev_fraction", dev_fraction, allow_zero=True)
    _check_fraction("test_fraction", test_fraction, allow_zero=True)
    if dev_fraction + test_fraction >= 1:
        raise ConfigError(
            f"dev_fraction + test_fraction must be below 1 to leave training data, got {dev_fraction + test_fraction}."
        )
    n = len(docs)
    n_test, n_dev = round(n * test_fraction), round(n * dev_fraction)
    if n_test + n_dev >= n:
        raise ConfigError(
            f"{dataset.source}: {n} documents are too few for a {dev_fraction:g} dev / {test_fraction:g} test split; "
            "lower the fractions or add documents."
        )
    depth_of = dataset.hierarchy.depth_of
    keys = [[_deepest_label(d, depth_of) for d in docs], [_top_label(d, depth_of) for d in docs]]
    rest, test = _stratified_pick(keys, list(range(n)), n_test, seed)
    train, dev = _stratified_pick(keys, rest, n_dev, seed)
    return tuple(dataset.subset([docs[i] for i in part]) for part in (train, dev, test))  # type: ignore[return-value]


def low_resource(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A seeded subsample of ``fraction`` of the documents, stratified by deepest label.

    Every label class keeps at least one document when ``fraction * n`` is at least the number of classes.
    """
    _check_fraction("fraction", fraction, allow_zero=False)
    _check_seed(seed)
    docs = dataset.documents
    n = len(docs)
    if fraction == 1 or n == 0:
        return dataset.subset(docs)
    size = max(1, round(n * fraction))
    depth_of = dataset.hierarchy.depth_of
    groups: dict[int, list[int]] = {}
    for i, doc in enumerate(docs):
        groups.setdefault(_deepest_label(doc, depth_of), []).append(i)
    classes = sorted(groups)
    rng = np.random.default_rng(seed)
    if size < len(classes):  # cannot cover every class: one document from each of the largest classes
        order = sorted(classes, key=lambda c: (-len(groups[c]), rng.random()))
        quota = {c: (1 if k < size else 0) for k, c in enumerate(order)}
    else:
        quota = _allocate({c: len(groups[c]) for c in classes}, size, rng)
    picked: list[int] = []
    for c in classes:
        if quota[c]:
            picked.extend(rng.choice(groups[c], size=quota[c], replace=False).tolist())
    return dataset.subset([docs[i] for i in sorted(picked)])


def _allocate(counts: dict[int, int], size: int, rng: np.random.Generator) -> dict[int, int]:
    """Per-class sample sizes summing to ``size``: proportional (largest remainder), at least one per class."""
    total = sum(counts.values())
    exact = {c: counts[c] * size / total for c in counts}
    quota = {c: min(counts[c], max(1, math.floor(exact[c]))) for c in counts}
    tiebreak = {c: rng.random() for c in counts}
    while sum(quota.values()) < size:  # give the remaining slots to the largest shortfalls
        open_ = [c for c in counts if quota[c] < counts[c]]
        best = max(open_, key=lambda c: (exact[c] - quota[c], tiebreak[c]))
        quota[best] += 1
    while sum(quota.values()) > size:  # minimum-one bumps overshot: take from the largest surpluses
        over = [c for c in counts if quota[c] > 1]
        worst = max(over, key=lambda c: (quota[c] - exact[c], tiebreak[c]))
        quota[worst] -= 1
    return quota
