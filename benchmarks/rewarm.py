"""Re-warming the default backbone: the corpus it is trained on, and its masked top-1 on 20NG test messages.

    python -m benchmarks.rewarm corpus --out runs/rewarm-corpus.jsonl
    python -m hpt_core pretrain --data runs/rewarm-corpus.jsonl --out checkpoints/minilm-l6-mlm --fp16-weights ...
    python -m benchmarks.rewarm evaluate --backbone minilm-l6 --backbone minilm-l6-mlm

The corpus never contains a test document of the benchmarks: the 20 Newsgroups *training* split (raw messages,
headers included) plus the WOS-1k abstracts that are training documents under both seeded WOS splits the project
reports (``split_dataset(seed=0)`` with dev/test fractions 0.1/0.1 and 0.1/0.2). ``evaluate`` measures held-out
masked top-1 on 20NG *test* messages: raw text, length 128, 15 % of the text wordpieces replaced by ``[MASK]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from benchmarks.common import NEWS_20NG, RESULTS, WOS_1K, WOS_TAXONOMY, data_file, write_json
from hpt_core.backbones import load_backbone
from hpt_core.data import load_dataset, split_dataset
from hpt_core.pretrain import MaskedLMObjective, masked_accuracy

WOS_SPLITS = ((0.1, 0.1), (0.1, 0.2))  # (dev, test) fractions of the reported WOS splits, seed 0
OUT = RESULTS / "rewarm.json"


def build_corpus(out: Path) -> dict[str, int]:
    """Write the re-warming corpus as JSONL (``{"text": ...}``); returns the counts per source."""
    news = load_dataset(data_file(NEWS_20NG))
    news_train = [d.text for d in news.documents if d.split == "train"]
    wos = load_dataset(data_file(WOS_1K), hierarchy_file=data_file(WOS_TAXONOMY))
    excluded: set[str] = set()
    for dev, test in WOS_SPLITS:
        _, dev_set, test_set = split_dataset(wos, dev, test, seed=0)
        excluded |= {d.text for d in test_set.documents} | {d.text for d in dev_set.documents}
    wos_train = [d.text for d in wos.documents if d.text not in excluded]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for text in news_train + wos_train:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return {"20ng_train": len(news_train), "wos_train": len(wos_train), "total": len(news_train) + len(wos_train)}


def evaluate(backbones: list[str], n_messages: int = 500, seed: int = 0) -> dict[str, dict[str, float]]:
    """Masked top-1 of each backbone on ``n_messages`` seeded 20NG test messages (same masks for every backbone)."""
    news = load_dataset(data_file(NEWS_20NG))
    test = [d.text for d in news.documents if d.split == "test"]
    sample = random.Random(seed).sample(test, min(n_messages, len(test)))
    results = {}
    for name in backbones:
        tokenizer, backbone = load_backbone(name)
        started = time.perf_counter()
        objective = MaskedLMObjective(backbone, tokenizer, max_length=128, probability=0.15)
        top1 = masked_accuracy(objective, sample, batch_size=32, seed=seed)
        results[name] = {
            "masked_top1_20ng_test": top1,
            "messages": len(sample),
            "seconds": time.perf_counter() - started,
        }
        print(f"{name}: masked top-1 {100 * top1:.2f} % on {len(sample)} 20NG test messages", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rewarm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("corpus", help="write the re-warming corpus (JSONL)")
    p.add_argument("--out", default="runs/rewarm-corpus.jsonl")
    p = sub.add_parser("evaluate", help="masked top-1 on 20NG test messages")
    p.add_argument("--backbone", action="append", required=True)
    p.add_argument("--messages", type=int, default=500)
    args = parser.parse_args(argv)
    if args.command == "corpus":
        print(json.dumps(build_corpus(Path(args.out))))
        return 0
    results = evaluate(args.backbone, args.messages)
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    write_json(OUT, previous | results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
