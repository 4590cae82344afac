"""Files in, predictions out, as a user runs it: ``python -m hpt_core predict --file F --out F`` on a CSV of 2,000
real 20 Newsgroups test messages with the default model, timed end to end (start-up and model loading included) in a
fresh process, plus its peak memory."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CHECKPOINTS, NEWS_20NG, ROOT, data_file

FILE_LINES = 2_000
MODEL = "20ng-hpt"


def _messages(n: int) -> list[str]:
    """The first ``n`` messages of the standard 20NG test split, headers, quotes and signatures stripped (as the
    model was trained)."""
    from hpt_core.data import load_20newsgroups

    news = load_20newsgroups(data_file(NEWS_20NG), strip=True)
    texts = [d.text for d in news.documents if d.split == "test" and d.text.strip()]
    return texts[:n]


def file_classification(quick: bool) -> dict[str, Any]:
    """Seconds and peak RSS of the CLI classifying a ``FILE_LINES``-row CSV (200 rows with ``quick``) into a CSV."""
    n = 200 if quick else FILE_LINES
    folder = Path(tempfile.mkdtemp(prefix="hpt-speed-file-"))
    data, out = folder / "messages.csv", folder / "predictions.csv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([f"m{k}", text] for k, text in enumerate(_messages(n)))
    argv = [sys.executable, "-m", "hpt_core", "predict", "--model", str(CHECKPOINTS / MODEL)]
    argv += ["--file", str(data), "--out", str(out)]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = folder / "stderr.txt"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    # this child's own resource usage (RUSAGE_CHILDREN would be the largest of every child so far, the app's too)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"predict --file failed (exit {process.returncode}): {log.read_text()[-2000:]}")
    rows = sum(1 for _ in csv.DictReader(out.open(encoding="utf-8", newline="")))
    if rows != n:
        raise RuntimeError(f"predict --file wrote {rows} rows for {n} texts")
    peak_mb = usage.ru_maxrss / 1024  # kB on Linux
    print(f"predict --file: {n} texts in {seconds:.1f} s ({n / seconds:.1f} texts/s)", flush=True)
    return {
        "file_lines": n,
        "file_predict_seconds": round(seconds, 1),
        "file_texts_per_second": round(n / seconds, 1),
        "file_predict_peak_rss_mb": round(peak_mb, 1),
    }
