"""Train the demo checkpoints the app serves: HPT and the vanilla fine-tune baseline on the full 20 Newsgroups.

    python -m benchmarks.demo_checkpoints                 # both (about 20 minutes each on 2 CPU cores)
    python -m benchmarks.demo_checkpoints --only 20ng-hpt
    python -m benchmarks.demo_checkpoints --baselines    # TF-IDF and sentence-embedding baselines on the same split
    python -m benchmarks.demo_checkpoints --duel         # the Fine-tune tab's duel, recorded in both model cards
    python -m benchmarks.demo_checkpoints --rescore      # dev/test metrics again with today's metrics code, no training
    python -m benchmarks.demo_checkpoints --only 20ng-hpt --reselect-weights   # re-choose the storage, no training

Data: the standard 20 Newsgroups training split (headers, quoted replies and signatures stripped, as in the quality
benchmark), 10 % of it carved out as dev (stratified, seed 0) for model selection; metrics on the whole standard test
split (7,532 messages). Weights are stored in the smallest precision of ``WEIGHTS`` (fp16; fp16 differences from the
backbone file; fp16 word embeddings only; fp32) whose scores stay within ``FP16_TOLERANCE`` of the fp32 model on
1,000 test messages. ``metrics.json`` holds the shipped weights' test metrics, that check, and the metrics of 200 test
messages spread over the split (``test_slice_200``), which the tests reproduce (``--refresh`` recomputes them without
training). ``--reselect-weights`` repeats the precision choice on a checkpoint that is still stored in fp32 (the
trained weights themselves) and recomputes its test metrics with the weights it ships.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CHECKPOINTS, NEWS_20NG, RESULTS, ROOT, data_file, write_json
from benchmarks.quality.classical import run_classical
from benchmarks.quality.presets import PRESETS
from hpt_core.atomic import atomic_file
from hpt_core.checkpoint import add_sentence_baseline, read_metrics
from hpt_core.data import Dataset, load_20newsgroups, split_dataset
from hpt_core.finetune import Splits, finetune
from hpt_core.inference import decode, score_documents
from hpt_core.metrics import evaluate_sets
from hpt_core.model import HPTConfig, HPTModel
from hpt_core.model_card import render_model_card
from hpt_core.sentence_baseline import fit_sentence_baseline
from hpt_core.training import TrainConfig

BASELINES = RESULTS / "demo-baselines.json"
FP16_TOLERANCE = 1e-3
# the smallest storage whose scores stay within FP16_TOLERANCE wins (smallest first)
WEIGHTS = ("float16", "float16-delta", "mixed", "float32")
SLICE = 200
CHECK_DOCS = 1000

# name -> variant; the same settings for both so the comparison in the app is fair. The training recipe (learning
# rates, schedule, patience) is the library's default one (``TrainConfig()``), the one `train` uses without flags.
MODELS = {"20ng-hpt": "hpt", "20ng-finetune": "finetune"}
SETTINGS: dict[str, Any] = {"backbone": "minilm-l6-mlm", "max_length": 128, "epochs": 1, "seed": 0, "eval_every": 200}
LABEL_NAMES = ROOT / "assets" / "label-names" / "20ng.tsv"  # readable names the label words start from
EQUIVALENT_CLI = (
    "python -m hpt_core train --data $HPT_STUDIO_DATA/20newsgroups/20news-bydate.jsonl.gz "
    "--hierarchy $HPT_STUDIO_DATA/20newsgroups/20ng.taxonomy --strip-newsgroup-headers --variant {variant} "
    "--backbone {backbone} --max-length {max_length} --epochs {epochs} --seed {seed} --eval-every {eval_every} "
    "--label-names assets/label-names/20ng.tsv --weights {weights} --out checkpoints/{name}"
)


ROLE = {"hpt": "default model of the HPT Studio app", "finetune": "vanilla fine-tune baseline the app compares with"}
_ABOUT = (
    "20 Newsgroups messages classified into the 2-level tree of `20ng.taxonomy` (7 top-level prefixes such as `comp` "
    "and `rec`, 20 newsgroups). Trained on the standard training split with e-mail headers, quoted replies and "
    "signatures removed, so it reads the message body only; a demo of the method on a CPU budget (one epoch, 128 "
    "tokens, a 6-layer MiniLM re-warmed with masked-LM training), not a state-of-the-art newsgroup classifier. Texts "
    "about topics outside the 20 groups still get the nearest group. Data: the public 20 Newsgroups bydate release "
    "(no licence stated by its distributors)."
)
DESCRIPTION = {name: f"The {ROLE[variant]}: {_ABOUT}" for name, variant in MODELS.items()}


def load_news() -> Dataset:
    """20 Newsgroups bydate with headers, quoted replies and signatures stripped (as the quality benchmark)."""
    return load_20newsgroups(data_file(NEWS_20NG), strip=True)


def demo_splits(news: Dataset) -> Splits:
    """The demo checkpoints' split of ``news``: the standard train/test, dev = 10 % of train (stratified, seed 0)."""
    train_set, dev_set, test_set = split_dataset(news, 0.1, 0.0, seed=0)
    return Splits(train_set, dev_set, test_set, "standard train/test; dev = 10 % of train, stratified, seed 0")


def evaluation_slice(documents: list) -> list:
    """The ``SLICE`` test messages the tests re-score: every k-th message of the test split (all 20 groups)."""
    step = max(1, len(documents) // SLICE)
    return documents[::step][:SLICE]


def slice_metrics(model: HPTModel, test_documents: list, hierarchy: Any) -> dict[str, Any]:
    """Metrics of ``model`` on ``evaluation_slice(test_documents)`` (no per-label table)."""
    docs = evaluation_slice(test_documents)
    report = evaluate_sets([d.labels for d in docs], decode(score_documents(model, [d.text for d in docs])), hierarchy)
    data = {k: v for k, v in report.to_dict().items() if k not in ("per_label", "per_bucket")}
    return data | {"documents": f"every {max(1, len(test_documents) // SLICE)}th message of the standard test split"}


def refresh(name: str, directory: Path = CHECKPOINTS, log: Any = print) -> dict[str, Any]:
    """Recompute ``test_slice_200`` and the model card of an existing checkpoint (no training; weights untouched)."""
    out = directory / name
    model = HPTModel.from_pretrained(out)
    news = load_news()
    metrics = read_metrics(out)
    metrics["test_slice_200"] = slice_metrics(model, [d for d in news.documents if d.split == "test"], news.hierarchy)
    provenance = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    _save_shipped(name, model, out, metrics, provenance, metrics["weights"]["dtype"])
    log(f"{name}: refreshed test_slice_200 (micro-F1 {100 * metrics['test_slice_200']['micro_f1']:.2f} %)")
    return metrics


def build(
    name: str,
    log: Any = print,
    directory: Path = CHECKPOINTS,
    max_steps: int | None = None,
    test_limit: int | None = None,
) -> dict[str, Any]:
    """Train one demo checkpoint and write it to ``directory/<name>``; returns its metrics. ``max_steps`` and
    ``test_limit`` shorten the run for a quick check (the shipped checkpoints use neither)."""
    variant = MODELS[name]
    news = load_news()
    splits = demo_splits(news)
    train_set, dev_set, test_set = splits.train, splits.dev, splits.test
    log(f"{name}: {len(train_set)} train / {len(dev_set)} dev / {len(test_set)} test messages")
    config = HPTConfig.for_variant(variant, backbone=SETTINGS["backbone"], max_length=SETTINGS["max_length"])
    train_config = TrainConfig(
        epochs=SETTINGS["epochs"], seed=SETTINGS["seed"], eval_every=SETTINGS["eval_every"], max_steps=max_steps
    )
    if test_limit is not None:
        test_set = test_set.subset(test_set.documents[:test_limit])
        dev_set = dev_set.subset(dev_set.documents[:test_limit])

    def progress(p: Any) -> None:
        if p.phase == "eval" or p.step % 50 == 0:
            log(f"  step {p.step}/{p.total_steps} {p.message or f'loss {p.loss:.4f}'} ({p.elapsed_seconds:.0f} s)")

    # finetune seeds, builds and trains the model (nothing saved); the test set is scored by ``_ship``, with the
    # weights that are shipped, so it is left out here
    without_test = Splits(train_set, dev_set, test_set.subset([]), splits.origin)
    job = finetune(without_test, config, train_config, out=None, callback=progress, label_names=LABEL_NAMES)
    result, model = job.run, job.model
    provenance = train_config.to_dict() | {
        "data": "20 Newsgroups bydate (20newsgroups/20news-bydate.jsonl.gz of the benchmark data directory, "
        "$HPT_STUDIO_DATA; docs/data.md says where to get it), standard training split",
        "label_names": "assets/label-names/20ng.tsv",
        "strip_newsgroup_headers": True,
        "split": "standard train/test; dev = 10 % of train, stratified, seed 0",
        "variant": config.variant_name,
        "command": f"python -m benchmarks.demo_checkpoints --only {name}",
    }
    training = {
        "steps": result.steps,
        "best_step": result.best_step,
        "seconds": round(result.seconds, 1),
        "device": result.device,
        "train_documents": len(train_set),
        "dev_documents": len(dev_set),
        "test_documents": len(test_set),
        "label_counts": {news.hierarchy.path_string(i): c for i, c in enumerate(train_set.label_counts())},
        "history": result.history,
    }
    dev = result.best_dev.to_dict() if result.best_dev is not None else None
    return _ship(name, model, test_set.documents, train_set.label_counts(), dev, training, provenance, directory, log)


def _ship(
    name: str,
    model: HPTModel,
    test_documents: list,
    train_counts: list[int],
    dev: dict[str, Any] | None,
    training: dict[str, Any],
    provenance: dict[str, Any],
    directory: Path,
    log: Any,
) -> dict[str, Any]:
    """Choose the storage of the trained fp32 ``model``, save it to ``directory/<name>`` and evaluate the shipped
    weights on ``test_documents``; returns the metrics written beside them."""
    hierarchy = model.hierarchy
    texts = [d.text for d in test_documents]
    check = texts[:CHECK_DOCS]
    fp32_scores = score_documents(model, check)
    out = directory / name
    trials: dict[str, dict[str, float]] = {}
    for weights in WEIGHTS:
        model.save_pretrained(out, train_config=provenance, overwrite=True, weights=weights)
        shipped = HPTModel.from_pretrained(out)
        check_scores = score_documents(shipped, check)
        diff = float(np.abs(check_scores - fp32_scores).max())
        flips = sum(a != b for a, b in zip(decode(check_scores), decode(fp32_scores), strict=True))
        size = (out / "model.safetensors").stat().st_size
        log(f"  {weights} weights: max |score - fp32| {diff:.2e}, {flips} changed predictions, {size / 2**20:.1f} MiB")
        trials[weights] = {"max_abs_score_diff_vs_fp32": diff, "changed_predictions_vs_fp32": flips, "bytes": size}
        if diff <= FP16_TOLERANCE:
            break
    started = time.perf_counter()
    scores = score_documents(shipped, texts)
    test_report = evaluate_sets([d.labels for d in test_documents], decode(scores), hierarchy, train_counts)
    metrics = {
        "dev": dev,
        "test": test_report.to_dict(),
        "test_slice_200": slice_metrics(shipped, test_documents, hierarchy),
        "weights": {
            "dtype": weights,
            "max_abs_score_diff_vs_fp32": diff,
            "changed_predictions_vs_fp32": flips,
            "checked_documents": len(check),
            "tolerance": FP16_TOLERANCE,
            "trials": trials,
        },
        "training": training | {"test_seconds": round(time.perf_counter() - started, 1)},
    }
    # from the fp32 model again, so the file is byte for byte the one just checked (re-saving ``shipped`` would
    # round its float16-delta weights a second time)
    _save_shipped(name, model, out, metrics, provenance, weights)
    log(f"{name}: {weights} weights, test {test_report.summary()}")
    return metrics


def _save_shipped(
    name: str, model: HPTModel, out: Path, metrics: dict[str, Any], provenance: dict[str, Any], weights: str
) -> None:
    """Save ``model`` to ``out`` as shipped: ``weights`` storage, its metrics, the provenance with the equivalent CLI
    command, and the model card's description."""
    # a refreshed checkpoint keeps the command it was trained with; a new build records today's
    provenance.setdefault(
        "equivalent_cli", EQUIVALENT_CLI.format(name=name, variant=MODELS[name], weights=weights, **SETTINGS)
    )
    model.save_pretrained(
        out, metrics=metrics, train_config=provenance, overwrite=True, weights=weights, description=DESCRIPTION[name]
    )


def rescore(name: str, directory: Path = CHECKPOINTS, log: Any = print) -> dict[str, Any]:
    """Recompute the dev, test and ``test_slice_200`` reports of an existing checkpoint with the weights it ships and
    today's metrics code (e.g. hierarchical P / R / F1, added after the checkpoint was trained), then rewrite
    ``metrics.json`` and the model card. No training; ``model.safetensors`` is not touched (re-saving it would round
    float16-delta weights a second time)."""
    out = directory / name
    model = HPTModel.from_pretrained(out)
    metrics = read_metrics(out) or {}
    splits = demo_splits(load_news())
    counts = splits.train.label_counts()
    for split, docs in (("dev", splits.dev.documents), ("test", splits.test.documents)):
        before = metrics.get(split) or {}
        scores = score_documents(model, [d.text for d in docs])
        metrics[split] = evaluate_sets([d.labels for d in docs], decode(scores), model.hierarchy, counts).to_dict()
        log(
            f"{name} {split}: micro / macro {before.get('micro_f1')} / {before.get('macro_f1')} -> "
            f"{metrics[split]['micro_f1']} / {metrics[split]['macro_f1']}, hF1 {metrics[split]['hierarchical_f1']}"
        )
    metrics["test_slice_200"] = slice_metrics(model, splits.test.documents, model.hierarchy)
    provenance = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    card = render_model_card(model, metrics, provenance, DESCRIPTION[name], metrics["weights"]["dtype"])
    with atomic_file(out / "metrics.json", overwrite=True) as f:
        f.write(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    with atomic_file(out / "README.md", overwrite=True) as f:
        f.write(card)
    return metrics


def reselect_weights(name: str, directory: Path = CHECKPOINTS, log: Any = print) -> dict[str, Any]:
    """Repeat the storage choice of ``WEIGHTS`` on an existing checkpoint stored in fp32 (no training): the dev
    metrics and training record are kept, the test metrics are recomputed with the weights it now ships."""
    out = directory / name
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if config.get("weights_dtype") != "float32":
        raise SystemExit(
            f"{out} is stored as {config.get('weights_dtype')}, not float32: the fp32 reference is gone; retrain it "
            f"with python -m benchmarks.demo_checkpoints --only {name}."
        )
    model = HPTModel.from_pretrained(out)
    metrics = read_metrics(out) or {}
    provenance = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    splits = demo_splits(load_news())
    training = {k: v for k, v in metrics.get("training", {}).items() if k != "test_seconds"}
    return _ship(
        name,
        model,
        splits.test.documents,
        splits.train.label_counts(),
        metrics.get("dev"),
        training,
        provenance,
        directory,
        log,
    )


def baselines(log: Any = print, out: Path = BASELINES) -> dict[str, Any]:
    """TF-IDF + LR and frozen sentence embeddings + LR on the demo checkpoints' exact split (C chosen on its dev set),
    so the app's models can be compared with what a practitioner would try first; writes ``out``."""
    splits = demo_splits(load_news())
    results: dict[str, Any] = {}
    for method, backbone in (("tfidf-lr", "-"), ("emb-lr", "minilm-l6")):
        record, _ = run_classical(splits, method, backbone, PRESETS["cpu"], log)
        results[method] = {k: record[k] for k in ("micro_f1", "macro_f1", "per_depth", "train_seconds", "best_c")}
        log(f"{method}: test micro-F1 {100 * record['micro_f1']:.2f} %, macro-F1 {100 * record['macro_f1']:.2f} %")
    write_json(out, results, indent=1)
    return results


def duel(names: list[str], directory: Path = CHECKPOINTS, log: Any = print) -> dict[str, Any]:
    """Fit the app's duel baseline (frozen sentence embeddings + LR, ``C`` chosen on dev) once on the demo split, at
    the checkpoints' ``max_length``, and record it in each checkpoint of ``names`` (``metrics.json`` and the model
    card, as a Fine-tune job does); weights untouched. Returns the baseline's record."""
    splits = demo_splits(load_news())
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 60 or done == total:
            last[0] = time.perf_counter()
            log(f"  duel baseline: {done}/{total}")

    result = fit_sentence_baseline(splits, max_length=SETTINGS["max_length"], callback=progress).to_dict()
    for name in names:
        add_sentence_baseline(directory / name, result)
        log(f"{name}: duel baseline recorded (C {result['c']}, {result['seconds']:.0f} s)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_checkpoints", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(MODELS), help="build only this checkpoint")
    parser.add_argument("--out-dir", type=Path, default=CHECKPOINTS, help="where to write (default: checkpoints/)")
    parser.add_argument("--max-steps", type=int, default=None, help="quick check: stop after N steps")
    parser.add_argument("--test-limit", type=int, default=None, help="quick check: first N dev/test messages")
    parser.add_argument("--refresh", action="store_true", help="only recompute the test slice and model card")
    parser.add_argument("--baselines", action="store_true", help="only the classical baselines on the same split")
    parser.add_argument("--duel", action="store_true", help="only the duel baseline, recorded in the model cards")
    parser.add_argument("--rescore", action="store_true", help="only recompute the metrics with the shipped weights")
    parser.add_argument(
        "--reselect-weights",
        action="store_true",
        help="repeat the storage choice on an fp32 checkpoint, without training (recomputes its test metrics)",
    )
    args = parser.parse_args(argv)
    if args.baselines:
        baselines(lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    if args.duel:
        duel(args.only or list(MODELS), args.out_dir, lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    for name in args.only or list(MODELS):
        log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        if args.refresh:
            metrics = refresh(name, args.out_dir, log)
        elif args.rescore:
            metrics = rescore(name, args.out_dir, log)
        elif args.reselect_weights:
            metrics = reselect_weights(name, args.out_dir, log)
        else:
            metrics = build(name, log, args.out_dir, args.max_steps, args.test_limit)
        print(json.dumps({"name": name, "test": {k: metrics["test"][k] for k in ("micro_f1", "macro_f1")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
