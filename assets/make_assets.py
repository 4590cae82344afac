"""Regenerate ``assets/`` from the real data in ``../shared/data`` (run from the repository root):

    python assets/make_assets.py

- ``wos-1k/``: the fine-tune panel's demo dataset, the 1,000 real WOS abstracts in the HPT format with the paper's
  141-label taxonomy and the dataset's licence, copied unchanged.
- ``examples/20ng.json``: three test-split 20 Newsgroups messages per top-level label (headers, quotes and
  signatures stripped), for the default ``20ng-hpt`` model; ``examples/wos.json``: two WOS test-split abstracts per
  domain. Picked by a seeded draw among messages of readable length, never by how a model scores them.
- ``eval/20ng-test-slice.jsonl``: the 200 test messages of the demo checkpoints' ``test_slice_200`` metrics (every
  37th message of the standard test split, stripped), which the app's Evaluate tab scores to list mistakes.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.demo_checkpoints import evaluation_slice  # noqa: E402
from hpt_core.data import Dataset, load_20newsgroups, load_dataset, split_dataset  # noqa: E402
from hpt_core.finetune import to_jsonl  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
ASSETS = ROOT / "assets"


def _examples(dataset: Dataset, per_top: int, seed: int, min_words: int, max_words: int) -> list[dict]:
    h = dataset.hierarchy
    rng = random.Random(seed)
    out = []
    for top in h.labels_at_depth(0):
        pool = [
            d
            for d in dataset.documents
            if top in d.labels and min_words <= len(d.text.split()) <= max_words and d.text.isascii()
        ]
        rng.shuffle(pool)
        picked: list = []
        seen_leaves: set[int] = set()
        for doc in pool:  # prefer different leaves under the same top label
            leaf = max(doc.labels, key=lambda i: h.depth_of[i])
            if leaf not in seen_leaves:
                picked.append(doc)
                seen_leaves.add(leaf)
            if len(picked) == per_top:
                break
        picked += [d for d in pool if d not in picked][: per_top - len(picked)]  # a single-leaf top label
        for doc in picked:
            leaf = max(doc.labels, key=lambda i: h.depth_of[i])
            out.append({"text": " ".join(doc.text.split()), "label": h.path(leaf)})
    return out


def main() -> None:
    wos_dir = ASSETS / "wos-1k"
    wos_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / "wos" / "subset_1k" / "wos_total_1k.json", wos_dir / "wos_total_1k.json")
    shutil.copyfile(SHARED / "wos" / "wos.taxnomy", wos_dir / "wos.taxnomy")
    shutil.copyfile(SHARED / "wos" / "ReadMe_HDLTex.txt", wos_dir / "LICENSE-HDLTex.txt")

    examples = ASSETS / "examples"
    examples.mkdir(parents=True, exist_ok=True)
    news = load_20newsgroups(SHARED / "20newsgroups" / "20news-bydate.jsonl.gz", strip=True)
    news_test = news.subset([d for d in news.documents if d.split == "test"])
    wos = load_dataset(
        SHARED / "wos" / "subset_1k" / "wos_total_1k.json", hierarchy_file=SHARED / "wos" / "wos.taxnomy"
    )
    _, _, wos_test = split_dataset(wos, 0.1, 0.2, seed=0)
    for name, data, per_top in (("20ng", news_test, 3), ("wos", wos_test, 2)):
        rows = _examples(data, per_top, seed=0, min_words=25, max_words=140)
        (examples / f"{name}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{name}: {len(rows)} examples")

    # The Evaluate tab's documents for the demo checkpoints: the test slice their metrics.json scores
    # (test_slice_200), minus messages that are empty once headers, quotes and signatures are gone.
    evaluation = ASSETS / "eval"
    evaluation.mkdir(parents=True, exist_ok=True)
    picked = evaluation_slice(news_test.documents)
    kept = news_test.subset([d for d in picked if d.text.strip()])
    (evaluation / "20ng-test-slice.jsonl").write_text(to_jsonl(kept), encoding="utf-8")
    print(f"eval: {len(kept)} of {len(picked)} slice messages (the others are empty after stripping)")


if __name__ == "__main__":
    main()
