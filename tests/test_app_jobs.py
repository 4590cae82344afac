"""Unit tests of the app's job manager (``app/jobs.py``) without a server: real tiny jobs on real WOS abstracts.

Each job trains the tiny 2-layer BERT of ``conftest.py`` (a local backbone directory) on the first 48 documents of
``assets/wos-1k`` with 64 tokens, so a whole job takes a few seconds. Where a test needs a job to stay running, a
gate holds the training loop after its first step (no timing races). The time estimate is tested on its counts and
on the rates it is given, never on how fast this machine is.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import pytest

import hpt_core.finetune
import hpt_core.sentence_baseline
from app.common import Studio
from app.config import AppConfig
from app.jobs import (
    BusyError,
    JobManager,
    JobRequest,
    job_configs,
)
from app.registry import ModelRegistry
from app.tabs import explorer, predict
from app.tabs.finetune import (
    DUEL_HEADERS,
    UPLOAD,
    duel_view,
    estimate,
    estimate_markdown,
    train_job,
    validate_upload,
)
from app.timing import (
    MIN_EVALUATIONS,
    JobPlan,
    StepCosts,
    cached_costs,
    calibrate,
    data_key,
    estimate_job,
    estimate_parts,
    fallback_costs,
    job_plan,
    planned_evaluations,
    remaining_seconds,
    run_config,
)
from hpt_core.data import read_records
from hpt_core.device import device_summary
from hpt_core.errors import ConfigError, HPTError
from hpt_core.finetune import prepare_splits
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.label_names import LabelName
from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig
from tests.conftest import REPO

N_DOCS = 48  # 38 train / 5 dev / 5 test after the seeded 80/10/10 split
N_TRAIN = 38
TIMEOUT = 120.0


@pytest.fixture
def wos_upload(tmp_path: Path) -> Path:
    """The first 48 WOS-1k abstracts, as an uploaded file would arrive (its own name, outside the job folder)."""
    lines = (REPO / "assets" / "wos-1k" / "wos_total_1k.json").read_text(encoding="utf-8").splitlines()[:N_DOCS]
    path = tmp_path / "uploads" / "my-abstracts.json"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def job_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder where jobs make their temporary work directories (``tempfile.mkdtemp``)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def app_config(tmp_path: Path, save_tiny_backbone) -> AppConfig:
    backbone = str(save_tiny_backbone(max_position_embeddings=64))
    return AppConfig(
        models={},
        user_dir=tmp_path / "models",
        backbones={"tiny": backbone},
        train=TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=0),
        model=HPTConfig(backbone=backbone, max_length=64),
        baseline_backbone=None,  # the duel's baseline has its own tests below
    )


@pytest.fixture
def manager(app_config: AppConfig) -> Iterator[JobManager]:
    jobs = JobManager(ModelRegistry(app_config), app_config)
    yield jobs
    jobs.cancel()
    jobs.wait(TIMEOUT)


def request(config: AppConfig, data: Path, variant: str = "hpt", adapt_steps: int = 0, **settings) -> JobRequest:
    train, model = job_configs(config, variant, **settings)
    return JobRequest(data, data.name, train, model, adapt_steps=adapt_steps)


def job_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("hpt-job-"))


def wait_until(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold every training job after its first optimizer step until the event is set."""
    release = threading.Event()
    real = hpt_core.finetune.finetune

    def gated(*args, callback=None, **kwargs):
        def hold(event):
            callback(event)
            if event.phase == "train":
                release.wait(TIMEOUT)

        return real(*args, callback=hold, **kwargs)

    monkeypatch.setattr(hpt_core.finetune, "finetune", gated)
    return release


# ------------------------------------------------------------------------------------------------ the configs
def test_job_configs_are_the_app_defaults_with_named_overrides(app_config: AppConfig) -> None:
    train, model = job_configs(app_config, "hpt", epochs=3, lr=2e-3, max_length=48)
    assert train == TrainConfig(epochs=3, batch_size=16, lr=2e-3, seed=0)
    assert model == HPTConfig(backbone=app_config.model.backbone, max_length=48)
    train, model = job_configs(app_config, "finetune")
    assert train == app_config.train and model.template == "none" and not model.mlm
    assert model.backbone == app_config.model.backbone and model.max_length == 64
    with pytest.raises(ConfigError, match=r"Unknown setting\(s\) \['learning_rate'\]"):
        job_configs(app_config, learning_rate=1e-3)
    with pytest.raises(ConfigError, match="learning rate must be positive, got 0.0"):  # checked by the dataclass
        job_configs(app_config, lr=0.0)
    with pytest.raises(ConfigError, match="Unknown variant 'gpt'"):
        job_configs(app_config, "gpt")


def test_run_config_evaluates_often_enough_for_early_stopping() -> None:
    short = TrainConfig(epochs=5, batch_size=16, patience=3)  # the demo job: 800 documents, 50 steps per epoch
    run = run_config(short, 800)
    assert run == TrainConfig(epochs=5, batch_size=16, patience=3, eval_every=32)  # ceil(250 / 8)
    assert planned_evaluations(run, 800) == MIN_EVALUATIONS == 8  # steps 32, 64, ..., 224 and 250
    tiny = run_config(TrainConfig(epochs=2, batch_size=16), N_TRAIN)  # 3 steps per epoch: every step
    assert tiny.eval_every == 1 and planned_evaluations(tiny, N_TRAIN) == 6
    long = TrainConfig(epochs=12, batch_size=16, patience=2)  # 8 epochs or more: once per epoch, as the library
    assert run_config(long, 800) == long and planned_evaluations(long, 800) == 12
    given = TrainConfig(epochs=2, eval_every=5)
    assert run_config(given, 800) == given  # an explicit eval_every is kept
    capped = run_config(TrainConfig(epochs=5, max_steps=20), 800)
    assert capped.eval_every == 3 and planned_evaluations(capped, 800) == 7  # steps 3, 6, ..., 18 and 20


def test_app_defaults() -> None:
    config = AppConfig()
    train = config.train
    assert (train.epochs, train.batch_size, train.lr, train.seed, train.patience) == (5, 16, 1e-4, 0, 3)
    assert (config.model.backbone, config.model.max_length) == ("minilm-l6-mlm", 128)
    assert config.model.backbone in config.backbones.values()
    assert config.baseline_backbone == "minilm-l6"


# ------------------------------------------------------------------------------------------------ jobs
def test_a_tiny_job_finishes_and_registers_its_model(manager, app_config, wos_upload, job_tmp) -> None:
    job = request(app_config, wos_upload, epochs=2)
    first = manager.start(job)
    assert first.state in ("starting", "running") and first.epochs == 2
    state = manager.wait(TIMEOUT)
    assert state.state == "finished", state.message
    assert state.model_name.startswith("my-abstracts-hpt-") and state.model_name in manager.registry.names()
    assert "my-abstracts.json" in state.data_summary and "38 train / 5 dev / 5 test" in state.data_summary
    assert state.total_steps == 2 * 3 and state.steps == list(range(1, 7)) and len(state.losses) == 6
    assert [e["step"] for e in state.evals] == [1, 2, 3, 4, 5, 6] and state.step == 6  # 6 steps < 8: every step
    assert [e["epoch"] for e in state.evals] == [1, 1, 1, 2, 2, 2]
    assert not state.stopped_early and state.stop_reason == "" and "Stopped early" not in state.message
    plan = state.estimate["plan"]  # the estimate counted what the job did
    assert (plan["steps"], plan["evaluations"], plan["n_dev"], plan["n_test"]) == (6, 6, 5, 5)
    assert state.estimate["seconds"] > 0 and "estimated" in state.message and state.eta_seconds is None
    assert state.metrics["test"]["n_documents"] == 5 and "Test micro-F1" in state.message
    folder = manager.registry.directory(state.model_name)
    assert {"config.json", "model.safetensors", "hierarchy.json", "metrics.json", "test.jsonl"} <= {
        p.name for p in folder.iterdir()
    }
    saved = json.loads((folder / "train_config.json").read_text(encoding="utf-8"))
    expected = run_config(job.train, N_TRAIN).to_dict()  # every TrainConfig field, the job's eval_every
    assert {f.name: saved[f.name] for f in fields(TrainConfig)} == expected
    assert saved["data"] == "my-abstracts.json" and saved["adapt_steps"] == 0
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))["hpt_config"]
    assert HPTConfig.from_dict(config) == job.model
    assert job_dirs(job_tmp) == []  # the job's temporary copy of the upload is gone
    assert not manager.status().running


def test_busy_while_a_job_runs_then_cancel(manager, app_config, wos_upload, job_tmp, gate) -> None:
    manager.start(request(app_config, wos_upload, epochs=30))
    wait_until(lambda: manager.status().step >= 1)
    running = manager.status()
    assert running.running and running.state == "running" and len(job_dirs(job_tmp)) == 1
    started = time.monotonic()
    with pytest.raises(BusyError, match="already running"):
        manager.start(request(app_config, wos_upload, epochs=1))
    assert time.monotonic() - started < 1.0  # refused at once, never queued
    assert manager.status().id == running.id and len(job_dirs(job_tmp)) == 1  # the running job is untouched
    assert "Cancelling" in manager.cancel().message
    gate.set()
    state = manager.wait(TIMEOUT)
    assert state.state == "cancelled" and "nothing was saved" in state.message
    assert state.step < 30 * 3 and manager.registry.names() == []
    assert job_dirs(job_tmp) == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (HPTError("{data}: row 3 has no text"), "my-abstracts.json: row 3 has no text"),
        (MemoryError(), "Out of memory"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "Out of memory"),
        (KeyError("bug"), "The job failed unexpectedly (KeyError)"),
    ],
    ids=["our-error", "memory", "cuda-memory", "bug"],
)
def test_a_failing_job_is_marked_failed_and_the_next_one_starts(
    manager, app_config, wos_upload, job_tmp, monkeypatch, error, message
) -> None:
    real = hpt_core.finetune.finetune

    def boom(splits, *args, **kwargs):
        if isinstance(error, HPTError):  # our errors quote the job's own copy of the file; the user sees the upload
            raise HPTError(str(error).format(data=splits.train.source))
        raise error

    monkeypatch.setattr(hpt_core.finetune, "finetune", boom)
    manager.start(request(app_config, wos_upload, epochs=1))
    state = manager.wait(TIMEOUT)
    assert state.state == "failed" and message in state.message and state.error
    assert "hpt-job-" not in state.message and "Traceback" not in state.message
    assert job_dirs(job_tmp) == [] and manager.registry.names() == []
    monkeypatch.setattr(hpt_core.finetune, "finetune", real)
    manager.start(request(app_config, wos_upload, epochs=1))
    assert manager.wait(TIMEOUT).state == "finished"
    assert len(manager.registry.names()) == 1 and job_dirs(job_tmp) == []


def test_an_unreadable_upload_fails_at_once(manager, app_config, tmp_path, job_tmp) -> None:
    missing = tmp_path / "gone.json"
    with pytest.raises(HPTError, match="Could not read the uploaded file 'gone.json'"):
        manager.start(request(app_config, missing))
    assert manager.status().state == "failed" and job_dirs(job_tmp) == []


def test_adapting_the_backbone_first(manager, app_config, wos_upload, job_tmp) -> None:
    job = request(app_config, wos_upload, epochs=1, adapt_steps=3)
    manager.start(job)
    state = manager.wait(TIMEOUT)
    assert state.state == "finished", state.message
    assert state.adapt["steps"] == 3 and 0.0 <= state.adapt["masked_top1_after"] <= 1.0
    saved = manager.registry.model_config(state.model_name)
    assert saved["backbone"] == f"{job.model.backbone} + 3 masked-LM steps on the data"  # not the temporary folder
    assert manager.registry.train_config(state.model_name)["adapt_steps"] == 3
    assert job_dirs(job_tmp) == []


# ------------------------------------------------------------------------------------------------ early stopping
def test_a_job_stops_early_and_keeps_its_best_state(manager, app_config, wos_upload, job_tmp) -> None:
    # 30 epochs of 3 steps, one evaluation per epoch, patience 1: the first evaluation without a dev macro-F1 gain
    # (5 dev documents leave few values to climb through) ends the job long before step 90
    train, model = job_configs(app_config, epochs=30, patience=1)
    manager.start(JobRequest(wos_upload, wos_upload.name, train, model))
    state = manager.wait(TIMEOUT)
    assert state.state == "finished", state.message
    assert state.stopped_early and state.step < 30 * 3 and len(state.evals) < 30
    scores = [e["dev_macro_f1"] for e in state.evals]
    best = scores.index(max(scores))
    assert best == len(scores) - 2 and scores[-1] <= scores[best]  # patience 1: it stops one evaluation after the best
    assert all(b > a for a, b in zip(scores[:best], scores[1 : best + 1]))  # each evaluation up to the best gained
    assert state.best_step == state.evals[best]["step"] == state.metrics["training"]["best_step"]
    # the saved model is the best state, not the last one: its dev scores are the best evaluation's
    assert state.metrics["dev"]["macro_f1"] == pytest.approx(scores[best], abs=1e-9)
    assert state.metrics["dev"]["micro_f1"] == pytest.approx(state.evals[best]["dev_micro_f1"], abs=1e-9)
    stop = state.evals[-1]
    expected = (
        f"Stopped early at epoch {stop['epoch']} of 30: no dev macro-F1 gain in 1 evaluation; kept the best, "
        f"step {state.best_step} (dev macro-F1 {100 * scores[best]:.1f} %)."
    )
    assert state.stop_reason == expected and expected in state.message
    saved = manager.registry.train_config(state.model_name)
    assert (saved["patience"], saved["eval_every"], saved["epochs"]) == (1, None, 30)  # 30 epochs ≥ 8: per epoch


# ------------------------------------------------------------------------------------------------ time estimate
UNIT = StepCosts(
    load=3.0, warmup=2.0, step=1.0, eval_doc=0.1, save=4.0, baseline_load=5.0, baseline_doc=0.01, source="given"
)


def test_the_estimate_counts_everything_the_job_does() -> None:
    plan = job_plan(TrainConfig(epochs=5, batch_size=16, patience=3), 800, 100, 100)
    assert (plan.steps, plan.evaluations, plan.eval_interval, plan.earliest_steps) == (250, 8, 32, 128)
    parts = estimate_parts(plan, UNIT)
    assert parts == {
        "loading the backbone": 3.0,
        "training steps": 2.0 + 250 * 1.0,  # the first step's warm-up + every step
        "dev evaluations": 8 * 100 * 0.1,
        "scoring dev and test": 200 * 0.1,
        "saving the checkpoint": 4.0,
    }
    estimate = estimate_job(plan, UNIT)
    assert estimate.seconds == pytest.approx(sum(parts.values()))
    # the earliest early stop: after patience + 1 = 4 evaluations, at step 128
    assert estimate.earliest == pytest.approx(estimate.seconds - (250 - 128) * 1.0 - (8 - 4) * 100 * 0.1)
    full = job_plan(TrainConfig(epochs=5, batch_size=16, patience=3), 800, 100, 100, adapt_steps=300, baseline=True)
    more = estimate_parts(full, UNIT)
    held = 40  # 5 % of the 800 texts held out; scored before, after each epoch (7 of 48 steps) and after
    assert full.adapt_scored == held * (math.ceil(300 / math.ceil((800 - held) / 16)) + 2)
    assert more["adapting the backbone"] == pytest.approx(3.0 + 2.0 + 300 * 1.0 + full.adapt_scored * 0.1 + 4.0)
    assert more["fitting the frozen-embedding baseline"] == pytest.approx(5.0 + 1000 * 0.01)
    assert list(more)[0] == "adapting the backbone" and list(more)[-1] == "fitting the frozen-embedding baseline"


def test_time_left_follows_the_phases_and_the_rates_it_is_given() -> None:
    plan = JobPlan(n_train=800, n_dev=100, n_test=100, steps=250, evaluations=8, eval_interval=32, patience=3)
    parts = estimate_parts(plan, UNIT)
    assert remaining_seconds(plan, UNIT, "preparing the data") == pytest.approx(sum(parts.values()))
    assert remaining_seconds(plan, UNIT, "training", 0, 0) == pytest.approx(sum(parts.values()) - 3.0 - 2.0)
    assert remaining_seconds(plan, UNIT, "training", 100, 3) == pytest.approx(150 * 1.0 + 5 * 10.0 + 20.0 + 4.0)
    slower = StepCosts(**{**UNIT.__dict__, "step": 2.0})  # a measured rate twice the estimate's
    assert remaining_seconds(plan, slower, "training", 100, 3) == pytest.approx(150 * 2.0 + 5 * 10.0 + 20.0 + 4.0)
    assert remaining_seconds(plan, UNIT, "scoring and saving") == pytest.approx(24.0)


def test_fallback_costs_scale_with_the_work_per_step() -> None:
    base = fallback_costs("minilm-l6-mlm", 16, 128)
    assert base.step == pytest.approx(1.52) and "constants measured on 2 CPU cores" in base.source
    assert fallback_costs("minilm-l6-mlm", 32, 256).step == pytest.approx(4 * base.step)
    assert fallback_costs("minilm-l6-mlm", 16, 64).eval_doc == pytest.approx(base.eval_doc / 2)
    assert fallback_costs("bert-base-uncased", 16, 128).step > 5 * base.step


def test_calibration_measures_real_steps_once_and_jobs_use_it(manager, app_config, wos_upload, job_tmp) -> None:
    train, model = job_configs(app_config, epochs=1)
    splits = prepare_splits(wos_upload, split_seed=train.seed)
    key = data_key(wos_upload)
    assert cached_costs(model, train, key) is None
    costs = calibrate(splits, model, train, key)
    assert min(costs.load, costs.step, costs.eval_doc, costs.save) > 0 and costs.warmup >= 0
    assert costs.source.startswith("measured on this machine") and "batch 16 × 64 tokens" in costs.source
    assert calibrate(splits, model, train, key) is costs and cached_costs(model, train, key) is costs  # once
    assert cached_costs(model, replace(train, batch_size=8), key) is None  # per batch size (and length, backbone…)
    manager.start(JobRequest(wos_upload, wos_upload.name, train, model))
    state = manager.wait(TIMEOUT)
    assert state.state == "finished", state.message
    assert state.estimate["costs"]["step"] == pytest.approx(costs.step)  # the job's estimate used the measurement


def test_the_eta_comes_from_the_jobs_own_measured_rate(manager, app_config, wos_upload, job_tmp, monkeypatch) -> None:
    release = threading.Event()
    events: list = []
    held: list[float] = []
    real = hpt_core.finetune.finetune

    def gated(*args, callback=None, **kwargs):
        def hold(event):
            before = time.monotonic()
            events.append(event)
            callback(event)
            if event.phase == "train" and event.step == 2:
                held.append(before)
                release.wait(TIMEOUT)

        return real(*args, callback=hold, **kwargs)

    monkeypatch.setattr(hpt_core.finetune, "finetune", gated)
    manager.start(request(app_config, wos_upload, epochs=2))  # 6 steps, an evaluation after each
    wait_until(lambda: bool(held))
    state = manager.status()
    now = time.monotonic()
    assert state.running and state.phase == "training" and state.eta_seconds is not None
    step1, evaluation, step2 = events  # step 1, the dev evaluation after it, step 2
    assert (step1.phase, evaluation.phase, step2.phase) == ("train", "eval", "train")
    # this job's rates: the evaluation's time per dev document, and the step time without the evaluation
    eval_seconds = evaluation.elapsed_seconds - step1.elapsed_seconds
    measured = replace(
        StepCosts(**state.estimate["costs"]),
        step=(step2.elapsed_seconds - eval_seconds) / 2,
        eval_doc=eval_seconds / 5,
    )
    plan = JobPlan(**state.estimate["plan"])
    left = remaining_seconds(plan, measured, "training", 2, 1)  # 4 steps, 5 evaluations, scoring, saving
    assert left > 0
    assert left - (now - held[0]) - 1e-6 <= state.eta_seconds <= left + 1e-6  # counting down from the last event
    release.set()
    assert manager.wait(TIMEOUT).state == "finished"


# ------------------------------------------------------------------------------------------------ label names
WOS_NAMES = (
    "path\tname\tdescription\n"
    "CS\tcomputer science\talgorithms, software and systems\n"
    "ECE\telectrical engineering\t\n"
    "CS > Machine learning\tlearning from data\n"
)
BAD_NAMES = "CS > Machine learnin\tML\nECE electrical engineering\n"


def names_upload(tmp_path: Path, text: str, name: str = "wos-names.tsv") -> Path:
    path = tmp_path / "names" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def studio(manager: JobManager, app_config: AppConfig) -> Studio:
    return Studio(app_config, manager.registry, manager)


def test_the_tab_validates_a_label_names_upload(studio, wos_upload, tmp_path) -> None:
    good = names_upload(tmp_path, WOS_NAMES)
    text, rows, report = validate_upload(studio, UPLOAD, str(wos_upload), None, str(good))
    assert report["ok"] and rows == [] and "ready to train" in text
    labels = LabelHierarchy.from_paths(p for r in read_records(wos_upload) for p in r.paths).num_labels
    assert f"**Label names** (wos-names.tsv): 3 of {labels} labels get a display name" in text
    bad = names_upload(tmp_path, BAD_NAMES, "bad-names.tsv")
    text, rows, report = validate_upload(studio, UPLOAD, str(wos_upload), None, str(bad))
    assert not report["ok"] and report["problems_found"] == 2 and "2 problems found" in text
    first, second = (row[1] for row in rows)
    assert first.startswith("bad-names.tsv:1: path:") and "Closest known path: 'CS > Machine learning'" in first
    assert second.startswith("bad-names.tsv:2: name: missing") and "separated by a tab" in second
    assert not any(str(tmp_path) in row[1] for row in rows)  # the upload's own name, never a server path
    with pytest.raises(HPTError, match="problem\\(s\\) in the data or the label names"):
        settings = {"variant": "hpt", "backbone": studio.config.model.backbone, "epochs": 1, "batch_size": 16}
        settings |= {"max_length": 64, "lr": 1e-3, "adapt": False, "adapt_steps": 0}
        next(train_job(studio, UPLOAD, str(wos_upload), None, settings, names_file=str(bad)))
    assert not studio.jobs.status().running and studio.registry.names() == []


def test_a_job_with_label_names_saves_and_shows_them(manager, studio, app_config, wos_upload, job_tmp, tmp_path):
    names = names_upload(tmp_path, WOS_NAMES)
    train, model = job_configs(app_config, epochs=1)
    job = JobRequest(
        wos_upload, wos_upload.name, train, model, label_names_file=names, label_names_name="wos-names.tsv"
    )
    manager.start(job)
    state = manager.wait(TIMEOUT)
    assert state.state == "finished", state.message
    name = state.model_name
    h = manager.registry.hierarchy(name)
    assert (manager.registry.directory(name) / "label_names.json").is_file()
    assert manager.registry.label_names(name) == {
        h.index("CS"): LabelName("computer science", "algorithms, software and systems"),
        h.index("ECE"): LabelName("electrical engineering"),
        h.index("CS > Machine learning"): LabelName("learning from data"),
    }
    assert manager.registry.train_config(name)["label_names"] == "wos-names.tsv"
    # Predict: the display names on the tree, in the icicle and in a fifth column (the path column stays the path)
    text = "A neural network learns to classify images from labelled training data."
    tree, table, _, result, icicle = predict.predict(studio, text, name, threshold=0.05, view="full")
    assert table["headers"] == [*predict.PATH_HEADERS, "display names"] and table["data"]
    for row in table["data"]:
        path = row[1].split(" > ")
        shown = [{"CS": "computer science", "ECE": "electrical engineering"}.get(path[0], path[0]), *path[1:]]
        if row[1] == "CS > Machine learning":
            shown[1] = "learning from data"
        assert row[4] == " > ".join(shown)
    assert result["display_names"] == [row[4] for row in table["data"]]
    (nodes,) = [t for t in tree.data if t.name == "labels"]
    cs = list(nodes.customdata).index(h.index("CS"))
    assert nodes.text[cs] == "computer science"
    assert "<b>CS</b><br>shown as <i>computer science</i>" in nodes.hovertext[cs]
    assert "algorithms, software and systems" in nodes.hovertext[cs]
    assert "computer science" in list(icicle.data[0].labels)
    # Label words: the picker shows the display names beside each path (the value stays the path)
    choices = explorer.label_choices(studio, name)
    assert ("CS · computer science", "CS") in choices and ("Medical", "Medical") not in choices
    assert ("Medical · Medical", "Medical") in choices  # a label without a display name keeps its own


def test_a_job_names_a_bad_label_names_upload(manager, app_config, wos_upload, job_tmp, tmp_path) -> None:
    bad = names_upload(tmp_path, BAD_NAMES, "bad-names.tsv")
    train, model = job_configs(app_config, epochs=1)
    job = JobRequest(wos_upload, wos_upload.name, train, model, label_names_file=bad, label_names_name="bad-names.tsv")
    manager.start(job)
    state = manager.wait(TIMEOUT)
    assert state.state == "failed" and "bad-names.tsv:1: path:" in state.message and "bad-names.tsv:2" in state.message
    assert "hpt-job-" not in state.message and str(tmp_path) not in state.message
    assert manager.registry.names() == [] and job_dirs(job_tmp) == []


# ------------------------------------------------------------------------------------------------ the duel
def test_a_job_fits_the_baseline_on_the_same_splits_and_the_tab_shows_the_duel(
    app_config, wos_upload, job_tmp, monkeypatch
) -> None:
    # the baseline's encoder is the tiny backbone here (fast); the app's default is minilm-l6
    config = replace(app_config, baseline_backbone=app_config.model.backbone)
    jobs = JobManager(ModelRegistry(config), config)
    seen: list[tuple[str, str]] = []
    real = hpt_core.sentence_baseline.fit_sentence_baseline

    def watched(splits, *args, callback=None, **kwargs):  # the real baseline; its progress as the UI sees it
        def report(done: int, total: int) -> None:
            callback(done, total)
            status = jobs.status()
            seen.append((status.phase, status.message))

        seen.append(("splits", splits.summary()))
        return real(splits, *args, callback=report, **kwargs)

    monkeypatch.setattr(hpt_core.sentence_baseline, "fit_sentence_baseline", watched)
    jobs.start(request(config, wos_upload, epochs=1))
    state = jobs.wait(TIMEOUT)
    assert state.state == "finished", state.message
    assert seen[0] == ("splits", state.data_summary)  # the job's own train/dev/test split
    assert seen[1][0] == "fitting the frozen-embedding baseline"
    assert seen[1][1].startswith("Fitting the frozen-embedding baseline on the same splits: ")
    assert state.baseline_error is None and "beside it in the duel table" in state.message
    base = state.baseline
    assert base["backbone"] == config.baseline_backbone and base["c"] in (1.0, 10.0, 100.0, 1000.0)
    # both models scored on the same documents: the same dev and test sizes, per depth
    for split in ("dev", "test"):
        assert base[split]["n_documents"] == state.metrics[split]["n_documents"] == 5
        assert set(base[split]["per_depth"]) == set(state.metrics[split]["per_depth"]) == {"0", "1"}
    assert base["n_train"] == N_TRAIN and state.estimate["plan"]["baseline"] is True
    table, verdict = duel_view(state)
    assert table["headers"] == DUEL_HEADERS
    assert [row[:3] for row in table["data"]] == [
        [split, level, 5] for split in ("dev", "test") for level in ("overall", "depth 0", "depth 1")
    ]
    test_overall = table["data"][3]
    assert test_overall[3] == round(100 * state.metrics["test"]["micro_f1"], 1)
    assert test_overall[6] == round(100 * base["test"]["macro_f1"], 1)
    assert test_overall[7] == round(100 * (state.metrics["test"]["macro_f1"] - base["test"]["macro_f1"]), 1)
    assert verdict.startswith("**Verdict:** ") and "test macro-F1" in verdict
    assert any(s in verdict for s in ("Use the HPT model", "Use the frozen-embedding baseline", "on par"))
    assert "on the same train/dev/test split" in verdict
    # the saved checkpoint and its model card record the duel as well
    directory = jobs.registry.directory(state.model_name)
    saved = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    assert saved["sentence_baseline"]["c"] == base["c"]
    assert "## Compared with a frozen-embedding baseline" in (directory / "README.md").read_text(encoding="utf-8")


def test_a_failing_baseline_never_fails_the_job(app_config, wos_upload, job_tmp) -> None:
    config = replace(app_config, baseline_backbone="no-such-backbone")
    jobs = JobManager(ModelRegistry(config), config)
    jobs.start(request(config, wos_upload, epochs=1))
    state = jobs.wait(TIMEOUT)
    assert state.state == "finished" and state.model_name in jobs.registry.names()  # the HPT model is saved
    assert state.baseline == {} and state.baseline_error.startswith("The frozen-embedding baseline could not be fitted")
    assert state.baseline_error in state.message and "Traceback" not in state.message
    table, text = duel_view(state)
    assert table is None and text.startswith("**Baseline:** The frozen-embedding baseline could not be fitted")
    assert duel_view(replace(state, baseline_error=None)) == (
        None,
        "**Baseline:** No frozen-embedding baseline was fitted for this job.",
    )
    assert job_dirs(job_tmp) == []


def test_the_tab_shows_the_estimate_with_what_it_counts(studio, wos_upload) -> None:
    plan = job_plan(TrainConfig(epochs=5, batch_size=16, patience=3), 800, 100, 100, baseline=True)
    text = estimate_markdown(estimate_job(plan, UNIT), "CPU (2 threads)")
    assert text.startswith("Training runs on **CPU (2 threads)**: **about 6 min** if it runs every epoch")  # 374 s
    assert "early stopping (after 3 evaluations without a dev macro-F1 gain) can end it from about 4 min" in text
    assert (
        "It counts: loading the backbone (3 s), 250 training steps × 1.00 s (4 min), 8 dev evaluations of 100 "
        "documents (80 s), scoring 200 dev and test documents (20 s), saving the checkpoint (4 s), fitting the "
        "frozen-embedding baseline (15 s). Costs: given."
    ) in text
    assert "its time left comes from its own measured rates" in text
    # on validated data: the first estimate measures this machine (a few real steps), later ones reuse it
    _, _, report = validate_upload(studio, UPLOAD, str(wos_upload), None)
    settings = {"variant": "hpt", "backbone": studio.config.model.backbone, "epochs": 2, "batch_size": 8}
    settings |= {"max_length": 64, "lr": 1e-3, "adapt": False, "adapt_steps": 300}
    first = list(estimate(studio, report, settings, UPLOAD, str(wos_upload)))
    assert len(first) == 2 and "Measuring this machine's step time" in first[0]
    assert "measured on this machine" in first[1] and "10 training steps" in first[1]  # 38 documents / 8 × 2
    again = list(estimate(studio, report, settings | {"epochs": 4}, UPLOAD, str(wos_upload)))
    assert len(again) == 1 and "20 training steps" in again[0] and "measured on this machine" in again[0]
    (refused,) = estimate(studio, report, settings | {"backbone": "gpt2"}, UPLOAD, str(wos_upload))
    assert "No estimate: Backbone 'gpt2' is not offered here" in refused  # never loaded, never measured
    assert list(estimate(studio, None, settings)) == [
        f"Training runs on **{device_summary()}**. Validate a dataset to see a time estimate."
    ]
