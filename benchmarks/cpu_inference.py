"""CPU inference options of ``Predictor`` on real data: fp32 against int8 dynamic quantisation and bf16 autocast,
for both demo checkpoints on a seeded sample of the 20 Newsgroups standard test split (stripped as in training).

    python -m benchmarks.cpu_inference [--documents 600] [--out benchmarks/results/cpu-inference.json]

Reports micro/macro-F1, the change against fp32, predictions that change, and documents per second. Absolute speed on
a shared 2-core machine is noisy; the F1 change is not.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CHECKPOINTS, NEWS_20NG, RESULTS, data_file, write_json

OUT = RESULTS / "cpu-inference.json"
MODELS = ("20ng-hpt", "20ng-finetune")
# torch and hpt_core are imported inside ``measure`` (light start-up: ``--help`` loads neither).


def measure(documents: int) -> dict[str, Any]:
    import torch

    from hpt_core.data import load_20newsgroups
    from hpt_core.inference import decode
    from hpt_core.metrics import evaluate_sets
    from hpt_core.predict import PRECISIONS, Predictor

    news = load_20newsgroups(data_file(NEWS_20NG), strip=True)
    test = [d for d in news.documents if d.split == "test" and d.text.strip()]
    step = max(1, len(test) // documents)
    sample = test[::step][:documents]
    texts, gold = [d.text for d in sample], [d.labels for d in sample]
    out: dict[str, Any] = {
        "documents": len(sample),
        "sample": f"every {step}th non-empty message of the standard test split",
        "threads": torch.get_num_threads(),
        "bf16_cpu_support": bool(getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available()),
        "models": {},
    }
    for name in MODELS:
        rows: dict[str, Any] = {}
        reference = None
        for precision in PRECISIONS:
            predictor = Predictor.from_pretrained(CHECKPOINTS / name, device="cpu", precision=precision)
            predictor.scores(texts[:8])  # warm-up
            started = time.perf_counter()
            scores = predictor.scores(texts)
            seconds = time.perf_counter() - started
            predicted = decode(scores)
            report = evaluate_sets(gold, predicted, news.hierarchy)
            if reference is None:
                reference = (scores, predicted, report)
            rows[precision] = {
                "micro_f1": round(report.micro_f1, 4),
                "macro_f1": round(report.macro_f1, 4),
                "micro_f1_change_points": round(100 * (report.micro_f1 - reference[2].micro_f1), 2),
                "macro_f1_change_points": round(100 * (report.macro_f1 - reference[2].macro_f1), 2),
                "changed_predictions": sum(a != b for a, b in zip(predicted, reference[1])),
                "max_abs_score_change": round(float(np.abs(scores - reference[0]).max()), 4),
                "docs_per_second": round(len(texts) / seconds, 1),
                "speedup_vs_fp32": None,
            }
            print(f"{name} {precision}: {rows[precision]}", flush=True)
        for precision in PRECISIONS:
            rows[precision]["speedup_vs_fp32"] = round(
                rows[precision]["docs_per_second"] / rows["fp32"]["docs_per_second"], 2
            )
        out["models"][name] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_inference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=600)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = measure(args.documents)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
