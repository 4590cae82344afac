"""The model's costs against its own backbone: training-step and inference ratios, prediction throughput, precision
options and dynamic padding, on real 20 Newsgroups messages; and a profiler table of training steps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.speed.data import news_hierarchy, news_texts
from benchmarks.speed.settings import BATCH, CHECKPOINT, LENGTH, PREDICT_BATCH
from benchmarks.speed.steps import (
    backbone_mlm_step_fn,
    encoder_forward_fn,
    hpt_batches,
    hpt_model,
    hpt_step_fn,
    interleaved,
    news_train_step,
    pad_to,
)

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


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
    out |= recipe_step_options(hierarchy, batches, repeats, quick)

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


def recipe_step_options(hierarchy: Any, batches: list[Any], repeats: int, quick: bool) -> dict[str, Any]:
    """What two CPU options of the training recipe do to an HPT training step, interleaved on the same batches:
    bf16 autocast (``TrainConfig.precision``) and attention dropout off (``HPTConfig.attention_dropout=0``).

    Without bf16 instructions bf16 is emulated (about 17x slower than fp32 on the 2-core AMD EPYC here): it is then
    timed with one call after one warm-up, and left out of a quick run."""
    import torch

    from hpt_core.device import native_bf16

    torch.manual_seed(0)
    plain, no_dropout = hpt_model(hierarchy), hpt_model(hierarchy, attention_dropout=0.0)
    fp32_step, no_dropout_step = hpt_step_fn(plain, batches), hpt_step_fn(no_dropout, batches)

    def bf16_step() -> None:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            fp32_step()

    def bf16_no_dropout_step() -> None:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            no_dropout_step()

    native = native_bf16(torch.device("cpu"))
    fns = {"fp32": fp32_step, "attention_dropout_0": no_dropout_step}
    if native:  # both options together: what the app's Fine-tune defaults run on such a CPU
        fns |= {"bf16_autocast": bf16_step, "bf16_autocast_attention_dropout_0": bf16_no_dropout_step}
    seconds = interleaved(fns, repeats)
    if not native and not quick:
        seconds |= interleaved({"bf16_autocast": bf16_step}, repeats=1)
    print(f"recipe step options (s): {seconds}", flush=True)
    return {
        "train_step_options_seconds": {k: round(v, 4) for k, v in seconds.items()},
        "train_step_options_speedup": {k: round(seconds["fp32"] / v, 3) for k, v in seconds.items() if k != "fp32"},
        "cpu_native_bf16": native,
    }


def step_options(quick: bool) -> dict[str, Any]:
    """``recipe_step_options`` alone, on the same real 20 Newsgroups batches as ``model_costs`` (``--only-steps``)."""
    import torch

    hierarchy = news_hierarchy()
    texts = news_texts("train", min_tokens=LENGTH, count=BATCH * (2 if quick else 4))
    torch.manual_seed(0)
    batches = hpt_batches(hpt_model(hierarchy), hierarchy, texts)
    return {"threads": torch.get_num_threads()} | recipe_step_options(hierarchy, batches, 2 if quick else 15, quick)


def profile_step(path: Path) -> str:
    """``torch.profiler`` table of HPT training steps (batch 16, length 128), saved to ``path``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    step = news_train_step(batches=2)
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
