"""Speed, memory and scaling of HPT against its own backbone, measured side by side in one run.

    python -m benchmarks.speed            # full run (~20 min on 2 idle cores) → benchmarks/results/speed.json
    python -m benchmarks.speed --quick    # every code path with few repeats and small sweeps (CI, ~1 min)
    python -m benchmarks.speed --report   # redraw the figures and the generated tables from speed.json

Absolute times on a shared machine are noisy; the ratios are measured on the same batches, interleaved (A, B, A, B,
...) after warm-up, and reported as ratios of medians. Figures go to ``docs/figures/speed-*.png``; the generated
tables go between ``<!-- speed:... -->`` markers in ``docs/benchmarks.md`` and ``README.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
NEWS = SHARED / "20newsgroups" / "20news-bydate.jsonl.gz"
WOS_TAXONOMY = SHARED / "wos" / "wos.taxnomy"
NYT_TAXONOMY = SHARED / "taxonomies" / "nyt.taxonomy"
CHECKPOINT = ROOT / "checkpoints" / "20ng-hpt"
OUT = ROOT / "benchmarks" / "results" / "speed.json"
FIGURES = ROOT / "docs" / "figures"
GOALS = {
    "train_step_ratio_vs_backbone_mlm": ("<=", 1.15),
    "head_gather_speedup": (">=", 1.5),
    "inference_ratio_vs_encoder": ("<=", 1.10),
    "app_cold_start_seconds": ("<=", 30.0),
    "demo_finetune_seconds_cpu": ("<=", 600.0),
}
BATCH, LENGTH, PREDICT_BATCH, LR = 16, 128, 32, 1e-4


# ---------------------------------------------------------------------------------------------------- timing helpers
def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calling them round-robin so drift hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": -1}

    def next_item() -> Any:
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]

    return next_item


# ---------------------------------------------------------------------------------------------------- real data
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

    return load_20newsgroups(NEWS, strip=True)


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


# ---------------------------------------------------------------------------------------------------- model steps
def hpt_model(hierarchy: Any, max_length: int = LENGTH, **config: Any) -> Any:
    from hpt_core.model import HPTConfig, HPTModel

    return HPTModel.from_backbone(HPTConfig(max_length=max_length, **config), hierarchy).train()


def hpt_step_fn(model: Any, batches: list[Any]) -> Callable[[], None]:
    """One HPT training step (forward, backward, Adam) per call, cycling over pre-collated ``batches``."""
    import torch

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    next_batch = _cycle(batches)

    def step() -> None:
        out = model(next_batch())
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    return step


def hpt_batches(model: Any, hierarchy: Any, texts: list[str], batch_size: int = BATCH) -> list[Any]:
    """Collated ``TemplateBatch``es with (arbitrary but fixed) first-label targets."""
    import torch

    batches = []
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        chunk = texts[start : start + batch_size]
        labels = torch.zeros(len(chunk), hierarchy.num_labels)
        for row in range(len(chunk)):
            leaf = (start + row) % hierarchy.num_labels
            labels[row, hierarchy.closure([leaf])] = 1.0
        batches.append(model.encode(chunk, labels))
    return batches


def backbone_mlm_step_fn(texts: list[str], max_length: int, batch_size: int = BATCH) -> Callable[[], None]:
    """The floor: one plain masked-LM step of the default backbone on the same texts (encoder forward + backward +
    Adam, MLM head at the masked positions only, 15 % of the text tokens), no template, graph or verbalizer."""
    import torch
    import torch.nn.functional as F

    from hpt_core.backbones import load_backbone, mlm_head_decoder, mlm_head_transform
    from hpt_core.losses import mask_tokens

    tokenizer, backbone = load_backbone(None)
    backbone.train()
    special = set(tokenizer.all_special_ids)
    replacement = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    batches = []
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        enc = tokenizer(
            texts[start : start + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        candidates = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"], torch.tensor(sorted(special)))
        batches.append((enc["input_ids"], enc["attention_mask"], candidates))
    optimizer = torch.optim.Adam(backbone.parameters(), lr=LR)
    next_batch = _cycle(batches)

    def step() -> None:
        input_ids, attention, candidates = next_batch()
        masked = mask_tokens(input_ids, candidates, tokenizer.mask_token_id, replacement)
        hidden = backbone.base_model(input_ids=masked.input_ids, attention_mask=attention).last_hidden_state
        states = hidden[masked.positions[:, 0], masked.positions[:, 1]]  # (M, d)
        weight, bias = mlm_head_decoder(backbone)
        loss = F.cross_entropy(mlm_head_transform(backbone, states) @ weight.t() + bias, masked.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def encoder_forward_fn(model: Any, texts: list[str]) -> Callable[[], None]:
    """A plain encoder forward of ``texts`` (tokenisation included, as in prediction), no template or scoring."""
    import torch

    tokenizer, encoder, length = model.tokenizer, model.encoder, model.config.max_length

    @torch.inference_mode()
    def forward() -> None:
        enc = tokenizer(texts, truncation=True, max_length=length, padding=True, return_tensors="pt")
        encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])

    return forward


def pad_to(batch: Any, width: int) -> Any:
    """``batch`` right-padded to ``width`` positions (what a fixed-length pipeline feeds the encoder)."""
    import torch
    import torch.nn.functional as F

    from hpt_core.template import TemplateBatch

    extra = width - batch.input_ids.shape[1]

    def pad(t: torch.Tensor, value: int | bool = 0) -> torch.Tensor:
        return F.pad(t, (0, extra), value=value)

    return TemplateBatch(
        pad(batch.input_ids),
        pad(batch.attention_mask),
        batch.pred_pos,
        batch.tmpl_pos,
        pad(batch.text_mask, False),
        pad(batch.special_mask, False),
        batch.labels,
        batch.text_lengths,
    )


# ---------------------------------------------------------------------------------------------------- sections
def model_costs(quick: bool) -> dict[str, Any]:
    """The three ratios, prediction throughput and dynamic padding, on real 20 Newsgroups messages."""
    import torch

    from hpt_core.inference import score_documents
    from hpt_core.predict import Predictor

    repeats = 2 if quick else 15
    hierarchy = news_hierarchy()
    texts = news_texts("train", min_tokens=LENGTH, count=BATCH * (2 if quick else 4))
    out: dict[str, Any] = {"threads": torch.get_num_threads()}

    torch.manual_seed(0)
    ours, official = hpt_model(hierarchy), hpt_model(hierarchy, mlm_head_positions="all")
    batches = hpt_batches(ours, hierarchy, texts)
    widths = sorted({int(b.input_ids.shape[1]) for b in batches})
    steps = {
        "hpt": hpt_step_fn(ours, batches),
        "backbone_mlm": backbone_mlm_step_fn(texts, LENGTH),
        "hpt_head_everywhere": hpt_step_fn(official, batches),
    }
    seconds = interleaved(steps, repeats)
    print(f"train steps (s): {seconds}", flush=True)
    out["train_step_seconds"] = {k: round(v, 4) for k, v in seconds.items()}
    out["train_step_setup"] = f"batch {BATCH}, length {LENGTH} (widths {widths}), Adam, real 20NG training messages"
    out["train_step_ratio_vs_backbone_mlm"] = round(seconds["hpt"] / seconds["backbone_mlm"], 3)
    out["head_gather_speedup"] = round(seconds["hpt_head_everywhere"] / seconds["hpt"], 3)
    del official, steps

    predictor = Predictor.from_pretrained(CHECKPOINT, device="cpu", batch_size=PREDICT_BATCH)
    test = news_texts("test", count=64 if quick else 256)
    batch32 = test[:PREDICT_BATCH]
    seconds = interleaved(
        {"hpt_predict": lambda: predictor.predict(batch32), "encoder": encoder_forward_fn(predictor.model, batch32)},
        repeats,
    )
    out["inference_seconds_batch32"] = {k: round(v, 4) for k, v in seconds.items()}
    out["inference_ratio_vs_encoder"] = round(seconds["hpt_predict"] / seconds["encoder"], 3)

    started = time.perf_counter()
    predictor.predict(test)
    out["docs_per_second_batched"] = round(len(test) / (time.perf_counter() - started), 1)
    one = test[: 16 if quick else 64]
    started = time.perf_counter()
    for text in one:
        predictor.predict(text)
    out["docs_per_second_one_by_one"] = round(len(one) / (time.perf_counter() - started), 1)

    sample = test[: PREDICT_BATCH * 2]
    options = {p: Predictor.from_pretrained(CHECKPOINT, device="cpu", precision=p) for p in ("int8", "bf16")}
    times = interleaved(
        {"fp32": lambda: predictor.scores(sample)}
        | {p: (lambda other=other: other.scores(sample)) for p, other in options.items()},
        max(2, repeats // 3),
    )
    out["precision_speedup_vs_fp32"] = {p: round(times["fp32"] / times[p], 3) for p in options}
    del options

    out["dynamic_padding"] = {}
    for length in (LENGTH, 512):
        model = predictor.model if length == LENGTH else hpt_model(hierarchy, max_length=length).eval()
        fixed = [pad_to(model.encode(test[i : i + PREDICT_BATCH]), length) for i in range(0, len(test), PREDICT_BATCH)]

        def padded(model: Any = model, fixed: list[Any] = fixed) -> None:
            with torch.inference_mode():
                for batch in fixed:
                    model(batch)

        times = interleaved(
            {"fixed": padded, "dynamic": lambda model=model: score_documents(model, test, PREDICT_BATCH)},
            max(1, repeats // 5),
        )
        out["dynamic_padding"][str(length)] = {
            "fixed_seconds": round(times["fixed"], 3),
            "dynamic_seconds": round(times["dynamic"], 3),
            "speedup": round(times["fixed"] / times["dynamic"], 3),
        }
    out["dynamic_padding_speedup"] = out["dynamic_padding"]["512"]["speedup"]
    out["dynamic_padding_setup"] = (
        f"{len(test)} real 20NG test messages, batches of {PREDICT_BATCH}: padded to max_length in input order "
        "against length-sorted batches padded to their longest row (score_documents); the headline is max_length "
        "512 (HPTConfig's default, the paper's); at 128 most messages fill the window anyway"
    )
    return out


def profile_step(path: Path) -> str:
    """``torch.profiler`` table of HPT training steps (batch 16, length 128), saved to ``path``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    hierarchy = news_hierarchy()
    texts = news_texts("train", min_tokens=LENGTH, count=BATCH * 2)
    model = hpt_model(hierarchy)
    step = hpt_step_fn(model, hpt_batches(model, hierarchy, texts))
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=48)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"3 HPT training steps, batch {BATCH}, length {LENGTH}, {torch.get_num_threads()} threads\n\n{table}"
    )
    return table


def _probe(kind: str) -> None:
    """Child process: do one job and print its peak resident memory (the process's high-water mark)."""
    from hpt_core.predict import Predictor

    if kind == "train":
        hierarchy = news_hierarchy()
        texts = news_texts("train", min_tokens=LENGTH, count=BATCH * 3)
        model = hpt_model(hierarchy)
        step = hpt_step_fn(model, hpt_batches(model, hierarchy, texts))
        for _ in range(3):
            step()
    elif kind == "predict":
        Predictor.from_pretrained(CHECKPOINT, device="cpu").predict(news_texts("test", count=256))
    else:
        import torch  # noqa: F401 - the floor: Python with torch and transformers imported
        import transformers  # noqa: F401
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss`` it does not inherit the parent's peak
    across fork + exec)."""
    status = Path("/proc/self/status")
    if status.is_file():
        match = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.M)
        if match:
            return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory() -> dict[str, Any]:
    out = {}
    for kind, key in (
        ("import", "peak_rss_mb_import"),
        ("train", "peak_rss_mb_train"),
        ("predict", "peak_rss_mb_predict"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.speed", "--probe", kind],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
            check=True,
        )
        out[key] = round(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"], 1)
    out["peak_rss_setup"] = (
        f"separate processes: import = python + torch + transformers; train = 3 HPT steps (batch {BATCH}, length "
        f"{LENGTH}, default backbone, 20NG tree); predict = the 20ng-hpt checkpoint on 256 real test messages"
    )
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def app_latency(quick: bool) -> dict[str, Any]:
    """``python app.py`` cold start, ``/predict`` latency idle and during the demo fine-tune, and that fine-tune's
    duration with the panel's default settings, all through ``gradio_client`` against the launched app."""
    from gradio_client import Client

    from app.config import AppConfig

    config = AppConfig()
    port = _free_port()
    env = os.environ | {
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HPT_STUDIO_HOME": tempfile.mkdtemp(prefix="hpt-speed-"),
    }
    examples = [e["text"] for e in json.loads((ROOT / "assets" / "examples" / "20ng.json").read_text("utf-8"))]
    log = Path(tempfile.mkdtemp(prefix="hpt-speed-log-")) / "app.log"
    out: dict[str, Any] = {}
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        client = None
        while client is None:
            if time.perf_counter() - started > 300 or process.poll() is not None:
                raise RuntimeError(f"app.py did not serve /predict: {log.read_text(errors='replace')[-2000:]}")
            try:
                candidate = Client(f"http://127.0.0.1:{port}/", verbose=False)
                candidate.predict(examples[0], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
                client = candidate
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.25)
        out["app_cold_start_seconds"] = round(time.perf_counter() - started, 2)
        print(f"cold start {out['app_cold_start_seconds']} s", flush=True)

        def timed_predict(k: int) -> float:
            t0 = time.perf_counter()
            client.predict(examples[k % len(examples)], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
            return 1000 * (time.perf_counter() - t0)

        idle = [timed_predict(k) for k in range(10 if quick else 60)]
        out["predict_p50_ms_idle"] = round(_percentile(idle, 0.5), 1)
        out["predict_p95_ms_idle"] = round(_percentile(idle, 0.95), 1)

        backbone = next(iter(config.backbones.values()))
        epochs = config.default_epochs
        args = ("Demo dataset (real Web of Science abstracts)", None, None, "hpt", backbone, epochs)
        args += (config.default_batch_size, config.default_max_length, config.default_lr, False, 300)
        started = time.perf_counter()
        job = client.submit(*args, api_name="/train")
        status: dict[str, Any] = {}
        while status.get("state") != "running" or not status.get("step"):  # training steps under way
            time.sleep(0.5)
            status = client.predict(api_name="/job_status")
            if status.get("state") in ("failed", "cancelled"):
                raise RuntimeError(f"the demo job ended {status['state']}: {status.get('message')}")
        busy = [timed_predict(k) for k in range(10 if quick else 60)]
        out["predict_p50_ms_during_training"] = round(_percentile(busy, 0.5), 1)
        out["predict_p95_ms_during_training"] = round(_percentile(busy, 0.95), 1)
        if quick:  # CI: the job only provides the load; cancel it rather than wait for the checkpoint
            client.predict(api_name="/cancel")
            while status.get("state") not in ("finished", "failed", "cancelled"):
                time.sleep(0.5)
                status = client.predict(api_name="/job_status")
            return out
        while status.get("state") not in ("finished", "failed", "cancelled"):
            time.sleep(2)
            status = client.predict(api_name="/job_status")
        seconds = time.perf_counter() - started
        if status["state"] != "finished":
            raise RuntimeError(f"the demo job ended {status['state']}: {status.get('message')}")
        job.result(timeout=60)
        out["demo_finetune_seconds_cpu"] = round(seconds, 1)
        test = status["metrics"]["test"]
        out["demo_finetune"] = {
            "settings": {"epochs": epochs, "batch_size": args[6], "max_length": args[7], "lr": args[8]},
            "steps": status.get("total_steps"),
            "device": status.get("device"),
            "test_micro_f1": round(test["micro_f1"], 4),
            "test_macro_f1": round(test["macro_f1"], 4),
            "note": f"while the app also served {len(busy)} /predict calls during training",
        }
        print(f"demo fine-tune {seconds:.1f} s", flush=True)
    finally:
        process.terminate()
        process.wait(30)
    return out


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

    trees = [("20 Newsgroups", news), ("WOS", LabelHierarchy.from_taxonomy(WOS_TAXONOMY))]
    trees.append(("NYT", LabelHierarchy.from_taxonomy(NYT_TAXONOMY)))
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


# ---------------------------------------------------------------------------------------------------- report
def goals_met(result: dict[str, Any]) -> dict[str, Any]:
    met = {}
    for key, (op, goal) in GOALS.items():
        value = result.get(key)
        if value is not None:
            met[key] = {"value": value, "goal": f"{op} {goal}", "met": value <= goal if op == "<=" else value >= goal}
    return met


def _save(fig: Any, ax: Any, title: str, path: Path, legend: bool = True) -> Path:
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clf()
    return path


def figures(result: dict[str, Any], directory: Path = FIGURES) -> list[Path]:
    """Scaling plots from ``result["scaling"]``: step vs length, cost vs labels, throughput vs batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scale = result.get("scaling") or {}
    paths = []
    directory.mkdir(parents=True, exist_ok=True)
    if scale.get("length"):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        rows = scale["length"]
        x = [r["max_length"] for r in rows]
        ax.plot(x, [1000 * r["hpt"] for r in rows], "o-", label="HPT step")
        ax.plot(x, [1000 * r["backbone_mlm"] for r in rows], "s--", label="backbone masked-LM step (floor)")
        for r in rows:
            ax.annotate(f"×{r['ratio']:.2f}", (r["max_length"], 1000 * r["hpt"]), textcoords="offset points",
                        xytext=(-8, 8), fontsize=8)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="ms per training step")
        ax.set_xticks(x, [str(v) for v in x], minor=False)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.margins(y=0.15)
        paths.append(_save(fig, ax, f"Training step vs length (batch {BATCH})", directory / "speed-length.png"))
    if scale.get("labels"):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        rows = sorted(scale["labels"], key=lambda r: r["labels"])
        x = [r["labels"] for r in rows]
        ax.plot(x, [1000 * r["step_seconds"] for r in rows], "o-", label="training step")
        ax.plot(x, [1000 * r["scores_batch32_seconds"] for r in rows], "^-", label=f"scoring {PREDICT_BATCH} docs")
        ax.plot(x, [1000 * r["graph_seconds"] for r in rows], "s--", label="graph pass (fwd + bwd)")
        ax.set(xscale="log", yscale="log", xlabel="labels in the tree (27 20NG, 141 WOS, 166 NYT, then synthetic)")
        ax.set(ylabel="ms", ylim=(1, 10_000))
        title = f"Cost vs number of labels (batch {BATCH}, length {LENGTH})"
        paths.append(_save(fig, ax, title, directory / "speed-labels.png"))
    if scale.get("batch"):
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        rows = scale["batch"]
        ax.plot([r["batch_size"] for r in rows], [r["docs_per_second"] for r in rows], "o-")
        ax.set(xscale="log", xlabel="prediction batch size", ylabel="documents per second")
        ax.set_xticks([r["batch_size"] for r in rows], [str(r["batch_size"]) for r in rows])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        title = "Prediction throughput (20ng-hpt, real test messages)"
        paths.append(_save(fig, ax, title, directory / "speed-batch.png", legend=False))
    plt.close("all")
    return paths


def _fmt(value: Any, unit: str = "") -> str:
    return "–" if value is None else f"{value}{unit}"


def _lookup(result: dict[str, Any], dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def summary_table(result: dict[str, Any]) -> str:
    """The markdown table of every top-level measurement and its goal."""
    met = result.get("goals_met", {})
    rows = [
        ("HPT training step ÷ backbone masked-LM step", "train_step_ratio_vs_backbone_mlm", "×"),
        ("MLM head at every position ÷ ours (speed-up)", "head_gather_speedup", "×"),
        ("HPT prediction of 32 ÷ plain encoder forward", "inference_ratio_vs_encoder", "×"),
        ("Prediction, batched (32)", "docs_per_second_batched", " docs/s"),
        ("Prediction, one by one", "docs_per_second_one_by_one", " docs/s"),
        ("Dynamic padding speed-up (length 512)", "dynamic_padding_speedup", "×"),
        (
            "Prediction speed-up vs fp32: bf16 / int8",
            ("precision_speedup_vs_fp32.bf16", "precision_speedup_vs_fp32.int8"),
            "×",
        ),
        ("Peak memory, training (batch 16, length 128)", "peak_rss_mb_train", " MB"),
        ("Peak memory, prediction", "peak_rss_mb_predict", " MB"),
        ("`/predict` p50 / p95, idle", ("predict_p50_ms_idle", "predict_p95_ms_idle"), " ms"),
        ("`/predict` p95 during a fine-tune job", "predict_p95_ms_during_training", " ms"),
        ("`python app.py` to first `/predict`", "app_cold_start_seconds", " s"),
        ("Demo fine-tune (WOS-1k, default settings, CPU)", "demo_finetune_seconds_cpu", " s"),
    ]
    lines = ["| Measurement | Value | Goal |", "|---|---|---|"]
    for title, key, unit in rows:
        if isinstance(key, tuple):
            value = " / ".join(_fmt(_lookup(result, k)) for k in key) + unit
            goal = ""
        else:
            value = _fmt(result.get(key), unit)
            goal = met.get(key, {}).get("goal", "")
            if goal:
                goal += " ✓" if met[key]["met"] else " ✗"
        lines.append(f"| {title} | {value} | {goal} |")
    return "\n".join(lines)


def scaling_tables(result: dict[str, Any]) -> str:
    scale = result.get("scaling") or {}
    parts = []
    if scale.get("length"):
        parts.append("| Length | HPT step (ms) | Backbone MLM step (ms) | Ratio |\n|---|---|---|---|")
        parts[-1] += "".join(
            f"\n| {r['max_length']} | {1000 * r['hpt']:.0f} | {1000 * r['backbone_mlm']:.0f} | {r['ratio']:.2f} |"
            for r in scale["length"]
        )
    if scale.get("labels"):
        parts.append(
            "| Tree | Labels | Depth | Template tokens | Step (ms) | Graph fwd+bwd (ms) | Graph share | "
            "Scores of 32 (ms) | Predict 32 (ms) | Labels predicted per doc |\n" + "|---" * 10 + "|"
        )
        parts[-1] += "".join(
            f"\n| {r['tree']} | {r['labels']} | {r['depth']} | {r['template_tokens']} | {1000 * r['step_seconds']:.0f}"
            f" | {1000 * r['graph_seconds']:.1f} | {100 * r['graph_share']:.1f} % | "
            f"{1000 * r['scores_batch32_seconds']:.0f} | {1000 * r['predict_batch32_seconds']:.0f} | "
            f"{r['predicted_labels_per_doc']} |"
            for r in scale["labels"]
        )
    if scale.get("batch"):
        parts.append("| Batch size | " + " | ".join(str(r["batch_size"]) for r in scale["batch"]) + " |")
        parts[-1] += "\n|---|" + "---|" * len(scale["batch"])
        parts[-1] += "\n| docs/s | " + " | ".join(str(r["docs_per_second"]) for r in scale["batch"]) + " |"
    return "\n\n".join(parts)


def write_block(path: Path, name: str, body: str) -> bool:
    """Replace the text between ``<!-- speed:NAME -->`` and ``<!-- /speed:NAME -->`` in ``path``."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- speed:{name} -->\n).*?(<!-- /speed:{name} -->)", re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text), encoding="utf-8")
    return True


def report(result: dict[str, Any], docs: bool = True) -> None:
    figures(result)
    if docs:
        note = f"_Generated by `python -m benchmarks.speed` ({result.get('mode', 'full')} run, {result['date']})._"
        write_block(ROOT / "docs" / "benchmarks.md", "summary", note + "\n\n" + summary_table(result))
        write_block(ROOT / "docs" / "benchmarks.md", "scaling", scaling_tables(result))
        write_block(ROOT / "README.md", "summary", summary_table(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and small sweeps (CI)")
    parser.add_argument("--report", action="store_true", help="only redraw figures and tables from --out")
    parser.add_argument("--skip-app", action="store_true", help="leave out the app latency section")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--probe", choices=("import", "train", "predict"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.probe:
        _probe(args.probe)
        return 0
    if args.report:
        report(json.loads(args.out.read_text(encoding="utf-8")))
        return 0
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": "quick" if args.quick else "full", "date": time.strftime("%Y-%m-%d")}
    result |= model_costs(args.quick)
    result |= peak_memory()
    if not args.skip_app:
        result |= app_latency(args.quick)
    result["scaling"] = scaling(args.quick)
    if not args.quick:
        profile_step(args.out.parent / "speed-profile.txt")
    result["goals_met"] = goals_met(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not args.quick:  # a quick run never overwrites the committed figures and tables
        report(result)
    print(json.dumps(result["goals_met"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
