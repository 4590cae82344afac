"""The texts and trees the speed benchmark runs on: real 20 Newsgroups messages and seeded synthetic label trees."""

from __future__ import annotations

import functools
from typing import Any

from benchmarks.common import NEWS_20NG, data_file

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


@functools.cache
def _news(split: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Stripped non-empty 20 Newsgroups messages of ``split`` and their wordpiece counts (default tokenizer)."""
    from hpt_core.backbones import load_backbone

    docs = [d.text for d in _news_dataset().documents if d.split == split and d.text.strip()]
    tokenizer, _ = load_backbone(None)
    lengths = [len(ids) for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]]
    return tuple(docs), tuple(lengths)


@functools.cache
def _news_dataset() -> Any:
    from hpt_core.data import load_20newsgroups

    return load_20newsgroups(data_file(NEWS_20NG), strip=True)


def news_texts(split: str, min_tokens: int = 0, count: int = 512) -> list[str]:
    """A fixed, evenly spaced sample of ``count`` real 20 Newsgroups messages of ``split``, optionally only those at
    least ``min_tokens`` wordpieces long (so batches really reach the length being measured)."""
    docs, lengths = _news(split)
    chosen = [d for d, n in zip(docs, lengths) if n >= min_tokens]
    step = max(1, len(chosen) // count)
    return chosen[::step][:count]


def news_hierarchy() -> Any:
    return _news_dataset().hierarchy


def synthetic_hierarchy(num_labels: int, depth: int, seed: int = 0) -> Any:
    """A seeded random tree with ``num_labels`` labels over ``depth`` levels; level sizes grow geometrically
    (the shape of real taxonomies), every label of level k > 1 hangs under a random label of level k - 1."""
    import numpy as np

    from hpt_core.hierarchy import LabelHierarchy

    rng = np.random.default_rng(seed)
    ratio = 3.0
    weights = ratio ** np.arange(depth)
    sizes = np.maximum(1, np.floor(num_labels * weights / weights.sum())).astype(int)
    sizes[-1] += num_labels - sizes.sum()
    paths: list[list[str]] = []
    previous: list[list[str]] = []
    for level, size in enumerate(sizes):
        current = []
        for k in range(int(size)):
            parent = previous[int(rng.integers(len(previous)))] if previous else []
            current.append([*parent, f"topic {level + 1}-{k}"])
        paths += current
        previous = current
    return LabelHierarchy.from_paths(paths)
