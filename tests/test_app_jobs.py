"""Unit tests of the app's job manager (``app/jobs.py``) without a server: real tiny jobs on real WOS abstracts.

Each job trains the tiny 2-layer BERT of ``conftest.py`` (a local backbone directory) on the first 48 documents of
``assets/wos-1k`` with 64 tokens, so a whole job takes a few seconds. Where a test needs a job to stay running, a
gate holds the training loop after its first step (no timing races).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

import hpt_core.finetune
from app.config import AppConfig
from app.jobs import BusyError, JobManager, JobRequest, job_configs, run_config
from app.registry import ModelRegistry
from hpt_core.errors import ConfigError, HPTError
from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig
from tests.conftest import REPO

N_DOCS = 48  # 38 train / 5 dev / 5 test after the seeded 80/10/10 split
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


def test_run_config_switches_early_stopping_off() -> None:
    assert run_config(TrainConfig(epochs=7, patience=2)) == TrainConfig(epochs=7, patience=7)


def test_app_defaults() -> None:
    config = AppConfig()
    assert (config.train.epochs, config.train.batch_size, config.train.lr, config.train.seed) == (5, 16, 1e-4, 0)
    assert (config.model.backbone, config.model.max_length) == ("minilm-l6-mlm", 128)
    assert config.model.backbone in config.backbones.values()


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
    assert [e["epoch"] for e in state.evals] == [1, 2] and state.step == 6
    assert state.metrics["test"]["n_documents"] == 5 and "Test micro-F1" in state.message
    folder = manager.registry.directory(state.model_name)
    assert {"config.json", "model.safetensors", "hierarchy.json", "metrics.json", "test.jsonl"} <= {
        p.name for p in folder.iterdir()
    }
    saved = json.loads((folder / "train_config.json").read_text(encoding="utf-8"))
    expected = run_config(job.train).to_dict()  # every TrainConfig field, patience = epochs
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
