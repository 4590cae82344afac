"""The app's two promises, measured: cold start (``python app.py`` to the first successful ``/predict``) and the
fine-tune panel's demo job with default settings (WOS-1k, to a finished checkpoint), through the app's own code.

    python -m benchmarks.app_demo [--skip-finetune] [--out benchmarks/results/app-demo.json]

Run it on an otherwise idle machine: absolute times on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "app-demo.json"
GOALS = {"app_cold_start_seconds": 30.0, "demo_finetune_seconds_cpu": 600.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(timeout: float = 180.0) -> dict[str, Any]:
    """Seconds from launching ``python app.py`` to the first successful ``/predict`` of an example text."""
    from gradio_client import Client

    port = _free_port()
    env = os.environ | {
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HPT_STUDIO_HOME": tempfile.mkdtemp(prefix="hpt-cold-"),
    }
    text = json.loads((ROOT / "assets" / "examples" / "20ng.json").read_text(encoding="utf-8"))[0]["text"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}: {process.stderr.read().decode()[-2000:]}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                result = client.predict(text, "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
                seconds = time.perf_counter() - started
                return {"app_cold_start_seconds": round(seconds, 2), "first_prediction": result[3]["paths"]}
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.25)
        raise TimeoutError(f"no successful /predict within {timeout} s")
    finally:
        process.terminate()
        process.wait(30)


def demo_finetune() -> dict[str, Any]:
    """The fine-tune panel's demo dataset with its default settings, through ``JobManager`` (the app's code path)."""
    from app.common import Studio
    from app.config import AppConfig
    from app.jobs import JobRequest

    config = AppConfig(user_dir=Path(tempfile.mkdtemp(prefix="hpt-demo-")))
    studio = Studio.create(config)
    request = JobRequest(
        data_file=config.demo_dataset,
        source_name=config.demo_dataset.name,
        hierarchy_file=config.demo_hierarchy,
        backbone=next(iter(config.backbones.values())),
        epochs=config.default_epochs,
        batch_size=config.default_batch_size,
        max_length=config.default_max_length,
        lr=config.default_lr,
    )
    started = time.perf_counter()
    studio.jobs.start(request)
    state = studio.jobs.wait()
    seconds = time.perf_counter() - started
    if state.state != "finished":
        raise RuntimeError(f"the demo job ended {state.state}: {state.message}")
    test = state.metrics["test"]
    return {
        "demo_finetune_seconds_cpu": round(seconds, 1),
        "demo_finetune_settings": {k: v for k, v in vars(request).items() if k not in ("data_file", "hierarchy_file")},
        "demo_finetune_steps": state.step,
        "demo_finetune_device": state.device,
        "demo_finetune_test": {
            "documents": test["n_documents"],
            "micro_f1": round(test["micro_f1"], 4),
            "macro_f1": round(test["macro_f1"], 4),
            "per_depth": test["per_depth"],
        },
        "demo_finetune_data": state.data_summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-finetune", action="store_true", help="measure the cold start only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result |= cold_start()
    print(f"cold start: {result['app_cold_start_seconds']} s", flush=True)
    if not args.skip_finetune:
        result |= demo_finetune()
        print(
            f"demo fine-tune: {result['demo_finetune_seconds_cpu']} s, test {result['demo_finetune_test']}", flush=True
        )
    result["goals"] = GOALS
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
