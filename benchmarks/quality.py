"""Quality evidence: HPT against the paper's baselines and classical baselines, on the same seeded splits.

    python -m benchmarks.quality --preset cpu            # run what is missing, then rewrite the report
    python -m benchmarks.quality --preset cpu --report   # only rewrite docs/benchmarks.md and its figures
    python -m benchmarks.quality --preset full           # a GPU: bert-base-uncased, full 20 Newsgroups

Every finished run is appended to ``benchmarks/results/quality-<preset>.json`` at once (an atomic rewrite), so an
interrupted benchmark resumes where it stopped: runs already in the file are skipped. Runs are ordered by how much
they matter (classical baselines, then HPT and fine-tune on both backbones seed by seed, then the other prompt
methods, then the ablations), so a partial file still answers the main question. Predicted label sets of every
run's test documents go to ``quality-<preset>-predictions.json.gz`` for the paired bootstrap in the report.

Splits are fixed (data seed 0) and identical for every method; the run seed changes initialisation and batch order.
The WOS split is the one whose training abstracts (and no test abstract) the shipped ``minilm-l6-mlm`` backbone
was re-warmed on; the 20 Newsgroups test split was never seen by it either.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hpt_core.data import Dataset, load_20newsgroups, load_dataset, low_resource, split_dataset
from hpt_core.metrics import EvalReport, evaluate_sets

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NEWS = SHARED / "20newsgroups" / "20news-bydate.jsonl.gz"
WOS = SHARED / "wos" / "subset_1k" / "wos_total_1k.json"
WOS_TAXONOMY = SHARED / "wos" / "wos.taxnomy"
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs"  # scratch space (git-ignored): task-adapted backbones

# method -> (variant, ablations, code_faithful); the ablation methods are named as in ``hpt_core.model.ABLATIONS``.
NEURAL: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "hpt": ("hpt", (), False),
    "hpt-code": ("hpt", (), True),
    "finetune": ("finetune", (), False),
    "hard": ("hard", (), False),
    "soft": ("soft", (), False),
    "no-constraint": ("hpt", ("no-constraint",), False),
    "no-injection": ("hpt", ("no-injection",), False),
    "bce": ("hpt", ("bce",), False),
    "no-mlm": ("hpt", ("no-mlm",), False),
    "random-connection": ("hpt", ("random-connection",), False),
    "depth-increasing": ("hpt", ("depth-increasing",), False),
}
ABLATION_METHODS = ("no-constraint", "no-injection", "bce", "no-mlm", "random-connection", "depth-increasing")
CLASSICAL = ("tfidf-lr", "hiclass", "emb-lr")
DATASETS = ("20ng-10pct", "wos-1k")
TASK_MLM = "task-mlm"  # backbone label: ``task_adapt_from`` re-warmed on the dataset's own training texts
# Preset fields that only choose which runs exist; changing them keeps earlier runs valid.
JOB_FIELDS = {
    "sentence_baselines",
    "seeds",
    "core_methods",
    "other_methods",
    "ablations",
    "ablation_datasets",
    "classical",
    "datasets",
    "backbones",
    "task_adapt",
}


@dataclass(frozen=True)
class Preset:
    """Every setting of one benchmark; saved in the results file so numbers always come with their settings."""

    name: str
    backbones: tuple[str, ...]  # the first one is the primary backbone (all methods); the others run core methods
    embedding_backbone: str  # the sentence-embedding model behind ``emb-lr`` (the raw backbone)
    seeds: tuple[int, ...] = (0, 1, 2)
    core_methods: tuple[str, ...] = ("hpt", "finetune")
    other_methods: tuple[str, ...] = ("hard", "soft", "hpt-code")
    ablations: tuple[str, ...] = ABLATION_METHODS
    ablation_datasets: tuple[str, ...] = ("wos-1k",)
    classical: tuple[str, ...] = CLASSICAL
    datasets: tuple[str, ...] = DATASETS
    max_length: int = 128
    batch_size: int = 16
    lr: float = 1e-4
    epochs: dict[str, int] = field(default_factory=lambda: {"20ng-10pct": 3, "wos-1k": 6})
    patience: int = 6
    news_fraction: float = 0.1  # of the standard 20NG training split, stratified
    news_dev: int = 500  # dev documents carved from the rest of the 20NG training split
    news_test: int | None = 2000  # a stratified sample of the 20NG test split; None = the whole split
    wos_dev: float = 0.1
    wos_test: float = 0.2
    limit: int | None = None  # cap every split at this many documents (the tiny CI preset)
    data_seed: int = 0
    lr_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)  # C of the logistic regressions, chosen on dev macro-F1
    task_adapt: tuple[str, ...] = ("wos-1k",)  # datasets where the raw backbone is also re-warmed on the train texts
    task_adapt_steps: int = 300  # masked-LM steps of that "adapt to my texts" re-warming (batch_size, max_length)
    task_adapt_from: str = "minilm-l6"  # the backbone that re-warming starts from
    sentence_baselines: tuple[str, ...] = ("setfit",)  # seeded baselines on the sentence-embedding backbone
    setfit_iterations: int = 1  # SetFit contrastive pairs per training text and class side (CPU budget)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "cpu": Preset("cpu", backbones=("minilm-l6-mlm", "minilm-l6"), embedding_backbone="minilm-l6"),
    "full": Preset(
        "full",
        backbones=("bert-base-uncased",),
        embedding_backbone="minilm-l6",
        max_length=512,
        lr=3e-5,
        epochs={"20ng-10pct": 20, "wos-1k": 20},
        news_fraction=1.0,
        news_dev=1000,
        news_test=None,
    ),
}


@dataclass
class Splits:
    name: str
    train: Dataset
    dev: Dataset
    test: Dataset
    note: str


def _sample(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    return low_resource(dataset, size / len(dataset), seed)


def load_splits(preset: Preset) -> dict[str, Splits]:
    """The fixed train/dev/test splits of every dataset of ``preset`` (same for every method and seed)."""
    out: dict[str, Splits] = {}
    seed = preset.data_seed
    if "20ng-10pct" in preset.datasets:
        news = load_20newsgroups(NEWS, strip=True)
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
        out["20ng-10pct"] = Splits("20ng-10pct", train, dev, test, note)
    if "wos-1k" in preset.datasets:
        wos = load_dataset(WOS, hierarchy_file=WOS_TAXONOMY)
        train, dev, test = split_dataset(wos, preset.wos_dev, preset.wos_test, seed=seed)
        note = (
            f"WOS-1k (1,000 real Web of Science abstracts, the paper's 141-label tree): seeded stratified split "
            f"(seed {seed}), {100 * (1 - preset.wos_dev - preset.wos_test):g}/{100 * preset.wos_dev:g}/"
            f"{100 * preset.wos_test:g} %"
        )
        out["wos-1k"] = Splits("wos-1k", train, dev, test, note)
    if preset.limit is not None:
        for s in out.values():
            s.train, s.dev, s.test = (_sample(d, preset.limit, seed) for d in (s.train, s.dev, s.test))
    return out


def jobs(preset: Preset) -> Iterator[tuple[str, str, str, int]]:
    """(dataset, method, backbone, seed) in priority order: each seed of the main comparison before the next."""
    primary = preset.backbones[0]
    for dataset in preset.datasets:
        for method in preset.classical:
            backbone = preset.embedding_backbone if method == "emb-lr" else "-"
            yield dataset, method, backbone, preset.data_seed
    stages = [  # (datasets, (method, backbone) pairs), each stage seed by seed
        (preset.datasets, [(m, b) for b in preset.backbones for m in preset.core_methods]),
        (preset.task_adapt, [(m, TASK_MLM) for m in preset.core_methods]),
        (preset.datasets, [(m, preset.embedding_backbone) for m in preset.sentence_baselines]),
        (preset.datasets, [(m, primary) for m in preset.other_methods]),
        (preset.ablation_datasets, [(m, primary) for m in preset.ablations]),
    ]
    for datasets, pairs in stages:
        for seed in preset.seeds:
            for dataset in datasets:
                for method, backbone in pairs:
                    yield dataset, method, backbone, seed


def run_key(dataset: str, method: str, backbone: str, seed: int) -> str:
    return f"{dataset}|{method}|{backbone}|{seed}"


# ------------------------------------------------------------------------------------------------------- methods
def _record(report: EvalReport, **extra: Any) -> dict[str, Any]:
    data = report.to_dict()
    return {
        **extra,
        "micro_f1": data["micro_f1"],
        "macro_f1": data["macro_f1"],
        "per_depth": data["per_depth"],
        "per_bucket": data["per_bucket"],
        "path_consistency": data["path_consistency"],
        "n_test": data["n_documents"],
    }


def run_neural(splits: Splits, method: str, backbone: str, seed: int, preset: Preset, log: Callable[[str], None]):
    """Train one prompt-tuning (or fine-tune) model with the shared loop; returns (record, predicted sets)."""
    from hpt_core.inference import decode, score_documents
    from hpt_core.model import HPTConfig, HPTModel
    from hpt_core.training import TrainConfig, set_seed, train

    variant, ablations, code = NEURAL[method]
    config = HPTConfig.for_variant(
        variant, list(ablations), code_faithful=code, backbone=backbone, max_length=preset.max_length
    )
    set_seed(seed)  # the graph and the new embeddings are initialised from the run seed
    model = HPTModel.from_backbone(config, splits.train.hierarchy)
    train_config = TrainConfig(
        epochs=preset.epochs[splits.name],
        batch_size=preset.batch_size,
        lr=preset.lr,
        patience=preset.patience,
        seed=seed,
    )

    def progress(p: Any) -> None:
        if p.phase == "eval" or p.step % 20 == 0:
            what = p.message or f"loss {p.loss:.4f}"
            log(f"  step {p.step}/{p.total_steps} epoch {p.epoch} {what} ({p.elapsed_seconds:.0f} s)")

    result = train(model, splits.train, splits.dev, train_config, callback=progress)
    counts = splits.train.label_counts()
    started = time.perf_counter()
    scores = score_documents(model, [d.text for d in splits.test.documents], train_config.eval_batch_size)
    test_seconds = time.perf_counter() - started
    predicted = decode(scores)
    report = evaluate_sets([d.labels for d in splits.test.documents], predicted, model.hierarchy, counts)
    record = _record(
        report,
        train_seconds=round(result.seconds, 1),
        test_seconds=round(test_seconds, 1),
        steps=result.steps,
        best_step=result.best_step,
        epochs_run=round(result.epochs_run, 2),
        dev_macro_f1=result.best_dev.macro_f1 if result.best_dev is not None else None,
        dev_micro_f1=result.best_dev.micro_f1 if result.best_dev is not None else None,
        variant=config.variant_name,
        device=result.device,
    )
    return record, predicted


def _leaf_targets(dataset: Dataset) -> list[int]:
    """The deepest label of each document (both datasets are single-path)."""
    depth_of = dataset.hierarchy.depth_of
    return [max(d.labels, key=lambda i: (depth_of[i], -i)) for d in dataset.documents]


def _with_ancestors(labels: list[int], dataset: Dataset) -> list[list[int]]:
    return [dataset.hierarchy.closure([label]) for label in labels]


def _embed(texts: list[str], tokenizer: Any, encoder: Any, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised last-layer states of ``encoder`` ``(N, H)`` (sentence-embedding style)."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            states = encoder(**enc).last_hidden_state  # (B, T, H)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def run_classical(splits: Splits, method: str, backbone: str, preset: Preset, log: Callable[[str], None]):
    """TF-IDF + logistic regression (flat over leaves, or hiclass's local classifier per parent node) or frozen
    sentence embeddings + logistic regression. ``C`` is chosen on dev macro-F1 from ``preset.lr_grid``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    texts = {part: [d.text for d in getattr(splits, part).documents] for part in ("train", "dev", "test")}
    if method == "emb-lr":
        from hpt_core.backbones import load_backbone

        tokenizer, model = load_backbone(backbone)
        encoder = model.base_model.eval()
        features = {part: _embed(t, tokenizer, encoder, preset.max_length) for part, t in texts.items()}
    else:
        vectorizer = TfidfVectorizer(
            sublinear_tf=True, min_df=2 if len(texts["train"]) > 50 else 1, ngram_range=(1, 2), max_features=100_000
        )
        features = {"train": vectorizer.fit_transform(texts["train"])}
        features |= {part: vectorizer.transform(texts[part]) for part in ("dev", "test")}
    hierarchy = splits.train.hierarchy
    leaves = _leaf_targets(splits.train)
    flat = _flat_lr(features, splits)

    def fit_predict(c: float, part: str) -> list[list[int]]:
        if method == "hiclass":
            from hiclass import LocalClassifierPerParentNode

            paths = [hierarchy.path(i) for i in leaves]
            depth = max(len(p) for p in paths)
            padded = np.array([p + [""] * (depth - len(p)) for p in paths])
            model = LocalClassifierPerParentNode(local_classifier=LogisticRegression(C=c, max_iter=2000), n_jobs=1)
            model.fit(features["train"], padded)
            out = []
            for row in model.predict(features[part]):
                names = [str(x) for x in row if str(x)]
                out.append(hierarchy.closure([hierarchy.index(names)]) if names else [])
            return out
        return flat(c, part)

    return _select_c(fit_predict, splits, preset, log, started)


def _flat_lr(features: dict[str, Any], splits: Splits) -> Callable[[float, str], list[list[int]]]:
    """``fit_predict(C, part)``: logistic regression over leaf labels on ``features`` (train/dev/test rows), the
    predicted leaf with its ancestors."""
    from sklearn.linear_model import LogisticRegression

    leaves = _leaf_targets(splits.train)

    def fit_predict(c: float, part: str) -> list[list[int]]:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(features["train"], leaves)
        return _with_ancestors([int(x) for x in model.predict(features[part])], splits.train)

    return fit_predict


def _select_c(
    fit_predict: Callable[[float, str], list[list[int]]],
    splits: Splits,
    preset: Preset,
    log: Callable[[str], None],
    started: float,
    **extra: Any,
) -> tuple[dict[str, Any], list[list[int]]]:
    """Choose ``C`` from ``preset.lr_grid`` on dev macro-F1, then predict test with it; the run's record."""
    hierarchy, counts = splits.train.hierarchy, splits.train.label_counts()
    best_c, best_dev = preset.lr_grid[0], None
    for c in preset.lr_grid:
        dev_report = evaluate_sets([d.labels for d in splits.dev.documents], fit_predict(c, "dev"), hierarchy, counts)
        log(f"  C={c:g}: dev macro-F1 {100 * dev_report.macro_f1:.2f} %")
        if best_dev is None or dev_report.macro_f1 > best_dev.macro_f1:
            best_c, best_dev = c, dev_report
    predicted = fit_predict(best_c, "test")
    report = evaluate_sets([d.labels for d in splits.test.documents], predicted, hierarchy, counts)
    record = _record(
        report,
        train_seconds=round(time.perf_counter() - started, 1),
        steps=0,
        best_c=best_c,
        dev_macro_f1=best_dev.macro_f1,
        dev_micro_f1=best_dev.micro_f1,
        **extra,
    )
    return record, predicted


def run_setfit(splits: Splits, backbone: str, seed: int, preset: Preset, log: Callable[[str], None]):
    """SetFit (contrastive fine-tuning of the sentence-embedding model, then logistic regression) over leaf labels;
    needs ``pip install -r requirements-bench.txt``."""
    try:
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError as e:
        raise SystemExit(f"SetFit is not installed ({e}); run: pip install -r requirements-bench.txt") from e
    from hpt_core.backbones import resolve_backbone

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_backbone(backbone))
    # SetFit's ``max_length`` only reaches its classifier head; the contrastive phase and ``predict`` truncate at the
    # body's own limit (256 for all-MiniLM-L6-v2). Every other method reads the first ``max_length`` tokens.
    model.model_body.max_seq_length = preset.max_length
    scratch = tempfile.mkdtemp(prefix="setfit-")  # SetFit's trainer writes checkpoints; never into the repository
    args = TrainingArguments(
        output_dir=scratch,
        save_strategy="no",
        batch_size=preset.batch_size,
        num_iterations=preset.setfit_iterations,
        num_epochs=1,
        seed=seed,
        max_length=preset.max_length,
        show_progress_bar=False,
    )
    try:
        # only SetFit's contrastive phase: its own head (logistic regression, scikit-learn's default C = 1) is replaced
        # by one with C chosen on dev macro-F1 from the same grid as ``emb-lr``, so the two differ only by this phase
        texts = [d.text for d in splits.train.documents]
        Trainer(model=model, args=args).train_embeddings(texts, _leaf_targets(splits.train))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    body = model.model_body
    features = {
        part: body.encode([d.text for d in getattr(splits, part).documents], batch_size=64, normalize_embeddings=True)
        for part in ("train", "dev", "test")
    }
    return _select_c(
        _flat_lr(features, splits), splits, preset, log, started, setfit_iterations=preset.setfit_iterations
    )


def task_adapted(
    splits: Splits, preset: Preset, log: Callable[[str], None], work: Path = WORK
) -> tuple[str, dict[str, Any]]:
    """The "adapt to my texts" backbone: ``task_adapt_from`` after ``task_adapt_steps`` masked-LM steps on the
    training texts of ``splits`` (cached under ``runs/``); returns its directory and the re-warming summary."""
    from hpt_core.finetune import adapt_backbone

    directory = work / f"quality-{preset.name}" / f"{TASK_MLM}-{splits.name}"
    summary_file = directory / "pretrain-summary.json"
    if summary_file.is_file():
        return str(directory), json.loads(summary_file.read_text(encoding="utf-8"))
    log(f"  re-warming {preset.task_adapt_from} on the {len(splits.train)} training texts of {splits.name}")
    result = adapt_backbone(
        preset.task_adapt_from,
        [d.text for d in splits.train.documents],
        directory,
        steps=preset.task_adapt_steps,
        batch_size=preset.batch_size,
        max_length=preset.max_length,
        seed=preset.data_seed,
        provenance={"texts": f"{splits.name} training split"},
        patience=6,  # as the preset's first runs were made
    )
    summary = {k: v for k, v in result.to_dict().items() if k != "history"} | {"from": preset.task_adapt_from}
    summary_file.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return str(directory), summary


# ------------------------------------------------------------------------------------------------------ results
def results_path(preset: str, directory: Path = RESULTS) -> Path:
    return directory / f"quality-{preset}.json"


def predictions_path(preset: str, directory: Path = RESULTS) -> Path:
    return directory / f"quality-{preset}-predictions.json.gz"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_results(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"runs": []}


def load_predictions(path: Path) -> dict[str, Any]:
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    return {"gold": {}, "runs": {}}


def _environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_benchmark(
    preset: Preset,
    directory: Path = RESULTS,
    max_runs: int | None = None,
    only: Callable[[str, str, str, int], bool] | None = None,
    log: Callable[[str], None] = print,
    work: Path = WORK,
) -> dict[str, Any]:
    """Run every job of ``preset`` missing from its results file; returns the results. Resumable."""
    path, pred_path = results_path(preset.name, directory), predictions_path(preset.name, directory)
    results = load_results(path)
    stored = results.get("preset")
    current = json.loads(json.dumps(preset.to_dict()))
    changed = [k for k, v in current.items() if k not in JOB_FIELDS and stored and k in stored and stored[k] != v]
    if changed:
        raise SystemExit(
            f"{path} was produced with other settings of preset {preset.name!r} ({', '.join(changed)}); move it away "
            "to start afresh."
        )
    results["preset"] = preset.to_dict()
    predictions = load_predictions(pred_path)
    done = {run_key(r["dataset"], r["method"], r["backbone"], r["seed"]) for r in results["runs"]}
    todo = [j for j in jobs(preset) if run_key(*j) not in done and (only is None or only(*j))]
    if max_runs is not None:
        todo = todo[:max_runs]
    if not todo:
        return results
    splits = load_splits(preset)
    results["splits"] = {
        name: {
            "note": s.note,
            "train": len(s.train),
            "dev": len(s.dev),
            "test": len(s.test),
            "labels": s.train.hierarchy.num_labels,
            "levels": s.train.hierarchy.num_levels,
        }
        for name, s in splits.items()
    }
    results["environment"] = _environment()
    for name, s in splits.items():
        predictions["gold"][name] = [d.labels for d in s.test.documents]
    for n, (dataset, method, backbone, seed) in enumerate(todo, 1):
        log(f"[{time.strftime('%H:%M:%S')}] run {n}/{len(todo)}: {dataset} {method} backbone={backbone} seed={seed}")
        if method == "setfit":
            record, predicted = run_setfit(splits[dataset], backbone, seed, preset, log)
        elif method in NEURAL:
            source = backbone
            if backbone == TASK_MLM:
                source, results.setdefault("task_adapt", {})[dataset] = task_adapted(splits[dataset], preset, log, work)
            record, predicted = run_neural(splits[dataset], method, source, seed, preset, log)
        else:
            record, predicted = run_classical(splits[dataset], method, backbone, preset, log)
        record = {"dataset": dataset, "method": method, "backbone": backbone, "seed": seed, **record}
        log(
            f"  -> test micro-F1 {100 * record['micro_f1']:.2f} %, macro-F1 {100 * record['macro_f1']:.2f} %, "
            f"{record['train_seconds']:.0f} s"
        )
        results["runs"].append(record)
        predictions["runs"][run_key(dataset, method, backbone, seed)] = predicted
        _write_atomic(pred_path, gzip.compress(json.dumps(predictions, separators=(",", ":")).encode(), mtime=0))
        _write_atomic(path, (json.dumps(results, indent=1) + "\n").encode())
    return results


def _literal(raw: str) -> Any:
    """A number, ``None`` (``null``/``None``) or else the string itself."""
    if raw in ("None", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def preset_variant(preset: Preset, changes: list[str]) -> Preset:
    """``preset`` with ``FIELD=VALUE`` changes (``epochs.DATASET=N`` for one dataset), under a name listing them."""
    values: dict[str, Any] = {}
    for change in changes:
        key, sep, raw = change.partition("=")
        field_name, _, sub = key.partition(".")
        if not sep or field_name not in preset.to_dict() or field_name == "name":
            valid = ", ".join(k for k in preset.to_dict() if k != "name")
            raise SystemExit(f"--set {change!r}: expected FIELD=VALUE with FIELD one of {valid}.")
        current = getattr(preset, field_name)
        if sub:
            values[field_name] = {**values.get(field_name, current), sub: _literal(raw)}
        elif isinstance(current, tuple):
            values[field_name] = tuple(_literal(x) for x in raw.split(",") if x)
        else:
            values[field_name] = _literal(raw)
    return replace(preset, name=preset.name + "+" + "+".join(sorted(changes)), **values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--report", action="store_true", help="only regenerate docs/benchmarks.md and its figures")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--dataset", action="append", choices=DATASETS, help="only these datasets")
    parser.add_argument("--method", action="append", help="only these methods")
    parser.add_argument("--backbone", help="replace the preset's backbones with this one (name or directory)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a variant of the preset for an investigation, e.g. --set lr=3e-4 --set epochs.wos-1k=12; its runs go "
        "to their own results file (quality-<preset>+<changes>.json)",
    )
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.backbone:
        preset = replace(preset, name=f"{preset.name}-custom", backbones=(args.backbone,))
    if args.set:
        preset = preset_variant(preset, args.set)

    def only(dataset: str, method: str, backbone: str, seed: int) -> bool:
        return (not args.dataset or dataset in args.dataset) and (not args.method or method in args.method)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if not args.report:
        run_benchmark(preset, max_runs=args.max_runs, only=only, log=log)
    from benchmarks.quality_report import write_report

    written = write_report(results_path(preset.name), predictions_path(preset.name))
    log("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
