"""The app as a user meets it: ``python app.py`` cold start, ``/predict`` latency idle and during a fine-tune job,
and that job's duration, all through ``gradio_client``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, example_texts

# torch, hpt_core and the app are imported inside the functions that use them (light start-up: `--report` and
# `--probe import` load neither more nor less than they need).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether the app's page answers with 200."""
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(url, timeout=2) as response:
            return response.status == 200
    except (URLError, OSError):
        return False


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
    examples = example_texts()
    log = Path(tempfile.mkdtemp(prefix="hpt-speed-log-")) / "app.log"
    out: dict[str, Any] = {}
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        url = f"http://127.0.0.1:{port}/"
        while not _answers(url):  # the page is served: what a user waits for before they can click
            if time.perf_counter() - started > 300 or process.poll() is not None:
                raise RuntimeError(f"app.py did not serve its page: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        out["app_page_seconds"] = round(time.perf_counter() - started, 2)
        client = Client(url, verbose=False)
        t0 = time.perf_counter()  # the first Classify once the page answers (the default model is warm by then)
        client.predict(examples[0], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
        out["first_predict_after_page_seconds"] = round(time.perf_counter() - t0, 3)
        out["app_cold_start_seconds"] = round(time.perf_counter() - started, 2)
        print(
            f"page {out['app_page_seconds']} s, first /predict {out['first_predict_after_page_seconds']} s after it, "
            f"cold start {out['app_cold_start_seconds']} s",
            flush=True,
        )

        def timed_predict(k: int) -> float:
            t0 = time.perf_counter()
            client.predict(examples[k % len(examples)], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
            return 1000 * (time.perf_counter() - t0)

        idle = [timed_predict(k) for k in range(10 if quick else 60)]
        out["predict_p50_ms_idle"] = round(_percentile(idle, 0.5), 1)
        out["predict_p95_ms_idle"] = round(_percentile(idle, 0.95), 1)

        backbone = next(iter(config.backbones.values()))
        epochs = config.train.epochs
        args = ("Demo dataset (real Web of Science abstracts)", None, None, "hpt", backbone, epochs)
        args += (config.train.batch_size, config.model.max_length, config.train.lr, False, 300)
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
