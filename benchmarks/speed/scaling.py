"""How the costs grow: training step against sequence length and against the number of labels (real and synthetic
trees), prediction throughput against batch size."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import NYT_TAXONOMY, WOS_TAXONOMY, data_file
from benchmarks.speed.data import news_hierarchy, news_texts, synthetic_hierarchy
from benchmarks.speed.settings import BATCH, CHECKPOINT, LENGTH, PREDICT_BATCH
from benchmarks.speed.steps import backbone_mlm_step_fn, hpt_batches, hpt_model, hpt_step_fn, interleaved

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


def scaling(quick: bool) -> dict[str, Any]:
    """Training step time against sequence length and number of labels; prediction throughput against batch size."""
    import torch

    from hpt_core.hierarchy import LabelHierarchy
    from hpt_core.predict import Predictor

    repeats = 2 if quick else 5
    news = news_hierarchy()
    out: dict[str, Any] = {"length": [], "labels": [], "batch": []}

    lengths = (64, 128) if quick else (64, 128, 256, 512)
    long_texts = news_texts("train", min_tokens=max(lengths), count=BATCH * 2)
    for length in lengths:
        model = hpt_model(news, max_length=length)
        times = interleaved(
            {
                "hpt": hpt_step_fn(model, hpt_batches(model, news, long_texts)),
                "backbone_mlm": backbone_mlm_step_fn(long_texts, length),
            },
            repeats,
        )
        row = {"max_length": length, **{k: round(v, 4) for k, v in times.items()}}
        row["ratio"] = round(times["hpt"] / times["backbone_mlm"], 3)
        out["length"].append(row)
        print(f"length {row}", flush=True)

    trees = [("20 Newsgroups", news), ("WOS", LabelHierarchy.from_taxonomy(data_file(WOS_TAXONOMY)))]
    trees.append(("NYT", LabelHierarchy.from_taxonomy(data_file(NYT_TAXONOMY))))
    synthetic = [(5000, 8)] if quick else [(500, 4), (1000, 4), (2000, 4), (5000, 4), (5000, 8)]
    if quick:
        trees = trees[:1]
    trees += [(f"synthetic {n}/{d}", synthetic_hierarchy(n, d)) for n, d in synthetic]
    texts = news_texts("train", min_tokens=LENGTH, count=BATCH * 2)
    test = news_texts("test", count=PREDICT_BATCH)
    for name, tree in trees:
        torch.manual_seed(0)
        model = hpt_model(tree)
        step = hpt_step_fn(model, hpt_batches(model, tree, texts))

        def graph_pass(model: Any = model) -> None:
            model.injected_template().sum().backward()

        predictor = Predictor(model, batch_size=PREDICT_BATCH)
        chosen = [len(p.labels) for p in predictor.predict(test)]

        def predict(predictor: Any = predictor) -> None:
            predictor.model.eval()
            predictor.predict(test)

        def scores(predictor: Any = predictor) -> None:
            predictor.model.eval()
            predictor.scores(test)

        model.train()

        def train_step(model: Any = model, step: Callable[[], None] = step) -> None:
            model.train()
            step()

        fns = {"step": train_step, "graph": graph_pass, "scores": scores, "predict": predict}
        times = interleaved(fns, repeats)
        row = {
            "tree": name,
            "labels": tree.num_labels,
            "depth": tree.num_levels,
            "template_tokens": model.template.template_length,
            "step_seconds": round(times["step"], 4),
            "graph_seconds": round(times["graph"], 5),
            "graph_share": round(times["graph"] / times["step"], 4),
            "scores_batch32_seconds": round(times["scores"], 4),
            "predict_batch32_seconds": round(times["predict"], 4),
            "predicted_labels_per_doc": round(sum(chosen) / len(chosen), 1),
        }
        out["labels"].append(row)
        print(f"labels {row}", flush=True)
        del model, step, predictor

    predictor = Predictor.from_pretrained(CHECKPOINT, device="cpu")
    docs = news_texts("test", count=32 if quick else 256)
    for size in (1, 32) if quick else (1, 2, 4, 8, 16, 32, 64):
        predictor.batch_size = size
        predictor.predict(docs[:size])  # warm-up
        started = time.perf_counter()
        predictor.predict(docs)
        row = {"batch_size": size, "docs_per_second": round(len(docs) / (time.perf_counter() - started), 1)}
        out["batch"].append(row)
        print(f"batch {row}", flush=True)
    return out
