"""Peak resident memory of importing, training and predicting, each measured in a fresh process."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.speed.data import news_texts
from benchmarks.speed.settings import BATCH, CHECKPOINT, LENGTH
from benchmarks.speed.steps import news_train_step

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


def probe(kind: str) -> None:
    """Child process: do one job and print its peak resident memory (the process's high-water mark)."""
    from hpt_core.predict import Predictor

    if kind == "train":
        step = news_train_step(batches=3)
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
