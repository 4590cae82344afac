"""The fixed train/dev/test splits of the quality benchmark: the same documents for every method and seed."""

from __future__ import annotations

from benchmarks.common import NEWS_20NG, WOS_1K, WOS_TAXONOMY, data_file
from benchmarks.quality.presets import Preset
from hpt_core.data import Dataset, load_20newsgroups, load_dataset, low_resource, split_dataset
from hpt_core.finetune import Splits


def _sample(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    return low_resource(dataset, size / len(dataset), seed)


def load_splits(preset: Preset) -> dict[str, Splits]:
    """The splits of every dataset of ``preset`` by dataset key; ``origin`` is the sentence the report prints."""
    out: dict[str, Splits] = {}
    seed = preset.data_seed
    if "20ng-10pct" in preset.datasets:
        news = load_20newsgroups(data_file(NEWS_20NG), strip=True)
        full_train = news.subset([d for d in news.documents if d.split == "train"])
        train = low_resource(full_train, preset.news_fraction, seed)
        taken = {id(d) for d in train.documents}
        rest = full_train.subset([d for d in full_train.documents if id(d) not in taken])
        dev = _sample(rest, preset.news_dev, seed)
        test = _sample(news.subset([d for d in news.documents if d.split == "test"]), preset.news_test, seed)
        note = (
            f"20 Newsgroups (headers, quoted replies and signatures stripped): {100 * preset.news_fraction:g} % of "
            f"the standard training split, stratified (seed {seed}); dev carved from the rest of it; "
            + (
                "the standard test split"
                if preset.news_test is None
                else f"a stratified {preset.news_test}-message sample of the standard test split"
            )
        )
        out["20ng-10pct"] = Splits(train, dev, test, note)
    if "wos-1k" in preset.datasets:
        wos = load_dataset(data_file(WOS_1K), hierarchy_file=data_file(WOS_TAXONOMY))
        train, dev, test = split_dataset(wos, preset.wos_dev, preset.wos_test, seed=seed)
        note = (
            f"WOS-1k (1,000 real Web of Science abstracts, the paper's 141-label tree): seeded stratified split "
            f"(seed {seed}), {100 * (1 - preset.wos_dev - preset.wos_test):g}/{100 * preset.wos_dev:g}/"
            f"{100 * preset.wos_test:g} %"
        )
        out["wos-1k"] = Splits(train, dev, test, note)
    if preset.limit is not None:
        for s in out.values():
            s.train, s.dev, s.test = (_sample(d, preset.limit, seed) for d in (s.train, s.dev, s.test))
    return out
