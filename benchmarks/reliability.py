"""Reliability: malformed inputs through the CLI validator and the app's ``/validate``, concurrent ``/predict`` calls
while a fine-tune job runs, and injected faults (a process killed mid-save, an exception inside a job, a cancel
mid-epoch, a restart).

    python -m benchmarks.reliability [--quick] [--out benchmarks/results/reliability.json]

``--quick`` (what CI runs) uses fewer mutations and clients. Writes the figures the reliability issue names:
``fuzzed_inputs``, ``crashes``, ``unclear_errors``, ``concurrent_clients``, ``concurrent_calls``,
``concurrent_errors``, ``predict_p95_ms_under_load``, ``faults_injected``, ``faults_survived``, ``models_lost``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CHECKPOINTS, RESULTS, ROOT, example_texts, write_json
from benchmarks.fuzz_inputs import Case, malformed_cases

OUT = RESULTS / "reliability.json"
GENERIC = "Something went wrong"  # the app's message for an unexpected exception: counted as a crash
# gradio_client, the app and hpt_core are imported inside the functions that use them (light start-up: the CLI
# fuzzing of tests/test_reliability.py loads no app).


def _write(case: Case, folder: Path) -> tuple[Path, Path | None]:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / Path(case.name).name  # "../escape.jsonl" is written inside the folder, never above it
    data.write_bytes(case.data)
    tree = None
    if case.hierarchy is not None:
        tree = folder / "tree.taxonomy"
        tree.write_bytes(case.hierarchy)
    return data, tree


def _judge(case: Case, name: str, problems: list[str], ok: bool) -> tuple[bool, str | None]:
    """(unclear?, why). Every problem names the file (or the hierarchy file); a known bad line is named."""
    if case.valid and not ok and not all("over this app's limit" in p for p in problems):
        return True, f"a valid file was rejected: {problems[:2]}"  # (the app's size limits are a clear refusal)
    if not case.valid and ok and case.line is not None:
        return True, "a known problem was not reported"
    for problem in problems:
        if name not in problem and "tree.taxonomy" not in problem:
            return True, f"problem without the file name: {problem[:200]}"
    if case.line is not None and not any(f"{name}:{case.line}" in p for p in problems):
        return True, f"no problem names line {case.line}: {problems[:2]}"
    return False, None


def fuzz_cli(cases: list[Case], folder: Path) -> list[dict[str, Any]]:
    """Each case through ``python -m hpt_core validate`` (in-process ``main``; stderr and the exit status kept)."""
    from hpt_core.cli import main

    out = []
    for k, case in enumerate(cases):
        data, tree = _write(case, folder / f"cli-{k:03d}")
        argv = ["validate", str(data)] + (["--hierarchy", str(tree)] if tree else [])
        stdout, stderr = io.StringIO(), io.StringIO()
        crash = None
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(argv)
        except BaseException as e:  # noqa: BLE001 - anything escaping main is a crash
            code, crash = -1, f"{type(e).__name__}: {e}"
        err = stderr.getvalue()
        if crash is None and (code not in (0, 2) or "Traceback" in err):
            crash = f"exit {code}: {err[-300:]}"
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("... and ")]
        unclear, why = _judge(case, data.name, lines, code == 0) if crash is None else (False, None)
        out.append({"case": case.name, "family": case.family, "exit": code, "crash": crash, "unclear": why})
    return out


def fuzz_app(cases: list[Case], folder: Path, url: str) -> list[dict[str, Any]]:
    """Each case uploaded to the app's ``/validate`` with ``gradio_client``."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from app.tabs.finetune import UPLOAD

    client = Client(url, verbose=False)
    out = []
    for k, case in enumerate(cases):
        data, tree = _write(case, folder / f"app-{k:03d}")
        crash = why = None
        try:
            _, table, report = client.predict(
                UPLOAD, handle_file(str(data)), handle_file(str(tree)) if tree else None, api_name="/validate"
            )
            problems = [row[1] for row in table["data"]] if isinstance(table, dict) else []
            unclear, why = _judge(case, report["source"], problems, bool(report["ok"]))
            why = why if unclear else None
        except AppError as e:  # our own error sentence is fine; the generic one means an unexpected exception
            message = str(e)
            if GENERIC in message:
                crash = message
            elif case.valid:
                why = f"a valid file was refused: {message[:200]}"
            elif data.name not in message and not re.search(r"file|upload|extension|size|MB", message, re.I):
                why = f"error without the file name: {message[:200]}"
        except Exception as e:  # noqa: BLE001 - a failed request (server down, protocol error) is a crash
            crash = f"{type(e).__name__}: {e}"
        out.append({"case": case.name, "family": case.family, "crash": crash, "unclear": why})
    return out


# ------------------------------------------------------------------------------------------------------ the app
def launch_app(user_dir: Path) -> tuple[Any, Any, str]:
    """The real app (demo checkpoints) on 127.0.0.1, queued as ``hpt-studio app`` serves it; returns (demo, studio,
    url)."""
    from app import build_demo, launch_options
    from app.common import Studio
    from app.config import AppConfig
    from app.serve import CONCURRENCY

    config = AppConfig(user_dir=user_dir)
    studio = Studio.create(config)
    demo = build_demo(studio=studio)
    demo.queue(default_concurrency_limit=CONCURRENCY).launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(config)
    )
    return demo, studio, demo.local_url


def _demo_request(studio: Any, epochs: int, max_length: int = 64) -> Any:
    from app.jobs import JobRequest, job_configs

    cfg = studio.config
    settings = {"backbone": "minilm-l6-mlm", "epochs": epochs, "batch_size": 16, "max_length": max_length}
    train, model = job_configs(cfg, "hpt", **settings)
    return JobRequest(cfg.demo_dataset, cfg.demo_dataset.name, train, model, hierarchy_file=cfg.demo_hierarchy)


_CLIENTS_SCRIPT = """
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from gradio_client import Client
url, clients, calls, texts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
latencies, errors, lock = [], [], threading.Lock()
def one_client(k):
    client = Client(url, verbose=False)
    for j in range(calls):
        started = time.perf_counter()
        try:
            result = client.predict(texts[(k + j) % len(texts)], "20ng-hpt", 0.5, "paper", "auto", api_name="/predict")
            assert isinstance(result[3]["paths"], list)
            with lock:
                latencies.append(1000 * (time.perf_counter() - started))
        except Exception as e:  # every failure counts
            with lock:
                errors.append(f"{type(e).__name__}: {str(e)[:200]}")
with ThreadPoolExecutor(clients) as pool:
    list(pool.map(one_client, range(clients)))
print(json.dumps({"latencies_ms": latencies, "errors": errors}))
"""


def load_test(studio: Any, url: str, clients: int, calls: int) -> dict[str, Any]:
    """``clients`` concurrent ``gradio_client`` clients (threads of one separate process) × ``calls`` ``/predict``
    each, while a fine-tune job runs."""
    from gradio_client import Client

    texts = example_texts()
    studio.jobs.start(_demo_request(studio, epochs=30))
    deadline = time.time() + 300
    while studio.jobs.status().state != "running" and time.time() < deadline:
        time.sleep(0.5)
    busy_started = time.perf_counter()
    busy = None
    try:
        Client(url, verbose=False).predict(
            "Demo dataset (real Web of Science abstracts)",
            None,
            None,
            "hpt",
            "minilm-l6-mlm",
            1,
            16,
            64,
            1e-4,
            False,
            300,
            api_name="/train",
        )
    except Exception as e:  # noqa: BLE001 - the busy refusal arrives as an AppError
        busy = str(e)
    busy_seconds = time.perf_counter() - busy_started
    # the clients run in their own process, as real users' browsers do: in the app's process their threads and JSON
    # decoding would compete with the server for the interpreter lock and inflate every latency
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CLIENTS_SCRIPT, url, str(clients), str(calls), f.name],
            capture_output=True,
            text=True,
            timeout=3600,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        raise RuntimeError(f"the load clients failed (exit {done.returncode}): {done.stderr[-1000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    latencies, errors = measured["latencies_ms"], measured["errors"]
    training_during = studio.jobs.status().running
    studio.jobs.cancel()
    studio.jobs.wait(120)
    return {
        "concurrent_clients": clients,
        "concurrent_calls": clients * calls,
        "concurrent_errors": len(errors),
        "concurrent_error_examples": errors[:5],
        "predict_p50_ms_under_load": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "predict_p95_ms_under_load": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        "clients_process": "separate",
        "training_ran_throughout": training_during,
        "second_train_refused": bool(busy and "Busy" in busy),
        "second_train_refused_seconds": round(busy_seconds, 2),
    }


# ------------------------------------------------------------------------------------------------------ faults
_SAVE_SCRIPT = """
import sys, time
import hpt_core.atomic as ck
from hpt_core.model import HPTModel
model = HPTModel.from_pretrained(sys.argv[1])
real = ck._default_permissions
def slow(directory):  # every file of the new checkpoint is staged: wait here to be killed before the rename
    print("STAGED", flush=True)
    time.sleep(60)
    real(directory)
ck._default_permissions = slow
model.save_pretrained(sys.argv[2], overwrite=True)
"""


def fault_killed_save(workdir: Path) -> dict[str, Any]:
    """Kill a process while it replaces a model directory: the old model must stay intact and load; the staging
    directory it left behind is removed at the app's next start-up."""
    from app.common import Studio
    from app.config import AppConfig
    from hpt_core.predict import Predictor

    user_dir = workdir / "models"
    target = user_dir / "kept-model"
    user_dir.mkdir(parents=True)
    shutil.copytree(CHECKPOINTS / "20ng-hpt", target)
    before = (target / "model.safetensors").read_bytes()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _SAVE_SCRIPT, str(CHECKPOINTS / "20ng-finetune"), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    staged_left = [d.name for d in user_dir.iterdir() if d.name.startswith(".")]
    intact = (target / "model.safetensors").read_bytes() == before
    loads = bool(Predictor.from_pretrained(target).predict("a graphics card driver")[0].labels is not None)
    studio = Studio.create(AppConfig(models={}, user_dir=user_dir))  # start-up cleans leftovers
    cleaned = not any(d.name.startswith(".") for d in user_dir.iterdir())
    found = "kept-model" in studio.registry.names()
    return {
        "fault": "SIGKILL while saving over an existing model",
        "killed_while_staged": "STAGED" in line,
        "staging_left_by_the_kill": staged_left,
        "survived": intact and loads and cleaned and found and "STAGED" in line,
        "models_lost": 0 if intact and loads else 1,
    }


def fault_job_exception(studio: Any) -> dict[str, Any]:
    """A job that diverges (a learning rate that makes the loss non-finite) is marked failed with a message; the
    next job then runs normally."""
    request = _demo_request(studio, epochs=1, max_length=32)
    request.train = replace(request.train, lr=1e6)
    studio.jobs.start(request)
    failed = studio.jobs.wait(600)
    request = _demo_request(studio, epochs=1, max_length=32)
    request.source_name = "after-failure.json"
    studio.jobs.start(request)
    after = studio.jobs.wait(900)
    return {
        "fault": "exception inside a training job (non-finite loss)",
        "state": failed.state,
        "message": failed.message,
        "next_job": after.state,
        "survived": failed.state == "failed" and "diverged" in failed.message and after.state == "finished",
    }


def fault_cancel(studio: Any) -> dict[str, Any]:
    """Cancel mid-epoch: the job ends within a few seconds and saves nothing."""
    before = set(studio.registry.names())
    studio.jobs.start(_demo_request(studio, epochs=30))
    deadline = time.time() + 300
    while studio.jobs.status().step < 3 and time.time() < deadline:
        time.sleep(0.2)
    started = time.perf_counter()
    studio.jobs.cancel()
    state = studio.jobs.wait(120)
    seconds = time.perf_counter() - started
    return {
        "fault": "cancel mid-epoch",
        "seconds_to_stop": round(seconds, 2),
        "state": state.state,
        "survived": state.state == "cancelled" and seconds < 30 and set(studio.registry.names()) == before,
    }


def fault_restart(user_dir: Path, names_before: list[str]) -> dict[str, Any]:
    """A new app process on the same folder finds every fine-tuned model saved earlier."""
    from app.common import Studio
    from app.config import AppConfig

    again = Studio.create(AppConfig(user_dir=user_dir)).registry.user_names()
    lost = sorted(set(names_before) - set(again))
    return {
        "fault": "restart",
        "saved_before": names_before,
        "found": again,
        "survived": bool(names_before) and not lost,
        "models_lost": len(lost),
    }


# ------------------------------------------------------------------------------------------------------ main
def run(quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    work = Path(tempfile.mkdtemp(prefix="hpt-reliability-"))
    cases = malformed_cases(seed=0, mutations=60 if quick else 150)
    log(f"fuzz: {len(cases)} inputs through the CLI validator")
    cli = fuzz_cli(cases, work / "cli")
    demo, studio, url = launch_app(work / "models")
    try:
        log(f"fuzz: {len(cases)} inputs through the app's /validate")
        app = fuzz_app(cases, work / "app", url)
        clients, calls = (4, 5) if quick else (20, 50)
        log(f"load: {clients} clients x {calls} /predict while a fine-tune job runs")
        load = load_test(studio, url, clients, calls)
        log("faults")
        faults = [fault_cancel(studio), fault_job_exception(studio), fault_killed_save(work / "kill")]
        faults.append(fault_restart(studio.config.user_dir, studio.registry.user_names()))
    finally:
        demo.close()
    results = cli + app
    crashes = [r for r in results if r["crash"]]
    unclear = [r for r in results if r["unclear"]]
    return {
        "quick": quick,
        "fuzzed_inputs": len(results),
        "fuzzed_inputs_cli": len(cli),
        "fuzzed_inputs_app": len(app),
        "crashes": len(crashes),
        "unclear_errors": len(unclear),
        "crash_examples": crashes[:5],
        "unclear_examples": unclear[:5],
        **{k: v for k, v in load.items()},
        "faults_injected": len(faults),
        "faults_survived": sum(bool(f["survived"]) for f in faults),
        "models_lost": sum(int(f.get("models_lost", 0)) for f in faults),
        "faults": faults,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs and clients (CI)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = run(args.quick)
    write_json(args.out, result, ensure_ascii=False)
    summary = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
