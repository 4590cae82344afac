"""Multi-process training (``hpt_core.distributed``): the real CLI under ``accelerate launch`` with 2 CPU processes.

The module fixture trains the tiny backbone (dropout off) on 32 WOS abstracts four times, all four jobs started at
once: the ``no-mlm`` ablation and default HPT, each in one process (the CLI, with accelerate blocked) and in two
(``accelerate launch --multi_gpu --num_processes 2 -m hpt_core train``; with no GPU each process takes the CPU
and the gloo backend; accelerate's own ``--cpu`` flag would need mpirun for more than one process). The global
batch of 5 splits 2 + 3 and the last batch of the epoch has one row, so both the share weighting and the empty-slice
path run.

Tolerances: without MLM nothing is random after the seeded initialisation, so both runs compute the same global-batch
gradients and differ only by float32 summation order (measured: losses 6e-8 relative, final weights 6e-7 absolute);
the test allows 1e-4. With MLM each process draws its own masks, so the curves differ by the sampling noise of a few
dozen masked tokens per step (measured over 7 steps: at most 0.6 % with seed 3, 0.3 to 1.1 % with seeds 0 to 2); the
test allows 3 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hpt_core.distributed import Distributed, MultiProcess, current
from hpt_core.errors import ConfigError
from hpt_core.template import TemplateBatch
from hpt_core.training import TrainConfig, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TRAIN_ARGS = ["--max-steps", "7", "--batch-size", "5", "--max-length", "64", "--lr", "1e-3"]
# fp32 on every CPU: the exact-match checks below hold in fp32 (auto is bf16 on CPUs with bf16 instructions, where a
# batch split over processes rounds differently)
TRAIN_ARGS += ["--seed", "3", "--device", "cpu", "--precision", "fp32"]
CHECKPOINT_FILES = {"config.json", "model.safetensors", "hierarchy.json", "metrics.json", "README.md"}
CHECKPOINT_FILES |= {"train_config.json", "tokenizer_config.json"}
# The CLI in one process with accelerate blocked, as if it were not installed: the single-process path must not need
# it (transformers imports accelerate by itself whenever it is installed, so "not imported" cannot be checked).
ONE_PROCESS = (
    "import sys; sys.modules['accelerate'] = None; from hpt_core.cli import main; sys.exit(main(sys.argv[1:]))"
)
EXACT_RTOL = 1e-4
MLM_RTOL = 0.03


@dataclass
class Run:
    folder: Path  # holds ckpt/ (the checkpoint) and log.jsonl (--log-file); nothing else may appear
    code: int
    stdout: str
    stderr: str

    @property
    def losses(self) -> list[float]:
        events = [json.loads(line) for line in (self.folder / "log.jsonl").read_text().splitlines()]
        train = [e for e in events if e["phase"] == "train"]
        assert [e["step"] for e in train] == list(range(1, len(train) + 1)), "steps logged twice or missing"
        return [e["loss"] for e in train]

    @property
    def metrics(self) -> dict:
        return json.loads((self.folder / "ckpt" / "metrics.json").read_text())


def _command(processes: int, args: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, "-c", ONE_PROCESS, *args]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", "0"]  # 0: accelerate picks a free port
    return [*launch, "-m", "hpt_core", *args]


@pytest.fixture(scope="module")
def runs(wos_docs, save_tiny_backbone, tmp_path_factory) -> dict[str, Run]:
    """``{"no-mlm-1", "no-mlm-2", "hpt-1", "hpt-2"}`` → the finished run (variant, then number of processes)."""
    root = tmp_path_factory.mktemp("distributed")
    data = root / "wos32.jsonl"
    data.write_text("".join(json.dumps({"text": t, "labels": [p]}) + "\n" for t, p in wos_docs), encoding="utf-8")
    backbone = save_tiny_backbone(**NO_DROPOUT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env |= {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env |= {"HF_HOME": str(root / "hf_home"), "PYTHONPATH": str(REPO_ROOT)}  # no user accelerate config file
    jobs = {}
    try:
        for name, variant in (("no-mlm", ["--ablation", "no-mlm"]), ("hpt", [])):
            for processes in (1, 2):
                key = f"{name}-{processes}"
                folder = root / key
                folder.mkdir()
                args = ["train", "--data", str(data), "--out", str(folder / "ckpt"), "--backbone", str(backbone)]
                args += [*TRAIN_ARGS, *variant, "--log-file", str(folder / "log.jsonl")]
                with open(root / f"{key}.out", "w") as out, open(root / f"{key}.err", "w") as err:
                    command = _command(processes, args)
                    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
                jobs[key] = (folder, proc)
        for _, proc in jobs.values():
            proc.wait(timeout=300)
    finally:  # a hung launch must not leave its workers behind: torchrun passes SIGTERM on to them
        for _, proc in jobs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    results = {}
    for key, (folder, proc) in jobs.items():
        out, err = ((root / f"{key}.{ext}").read_text(encoding="utf-8") for ext in ("out", "err"))
        results[key] = Run(folder, proc.returncode, out, err)
    return results


# ---------------------------------------------------------------------------------------------------- 2 processes
@pytest.mark.slow
@pytest.mark.parametrize("key", ["no-mlm-1", "no-mlm-2", "hpt-1", "hpt-2"])
def test_run_exits_zero(runs, key):
    run = runs[key]
    assert run.code == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_loss_curve_without_mlm_matches_one_process(runs):
    one, two = runs["no-mlm-1"].losses, runs["no-mlm-2"].losses
    assert len(one) == len(two) == 7
    assert two == pytest.approx(one, rel=EXACT_RTOL)


@pytest.mark.slow
def test_weights_without_mlm_match_one_process(runs):
    one = load_file(runs["no-mlm-1"].folder / "ckpt" / "model.safetensors")
    two = load_file(runs["no-mlm-2"].folder / "ckpt" / "model.safetensors")
    assert one.keys() == two.keys()
    worst = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    assert worst < 1e-4, worst
    assert runs["no-mlm-2"].metrics["training"]["best_step"] == runs["no-mlm-1"].metrics["training"]["best_step"]


@pytest.mark.slow
def test_loss_curve_with_mlm_is_close_to_one_process(runs):
    one, two = runs["hpt-1"].losses, runs["hpt-2"].losses
    assert len(one) == len(two) == 7
    assert two == pytest.approx(one, rel=MLM_RTOL)
    assert two != one  # each process masks its own rows: not the same draws as one process


@pytest.mark.slow
@pytest.mark.parametrize("name", ["no-mlm", "hpt"])
def test_main_process_alone_writes_one_checkpoint_and_prints_once(runs, name):
    one, two = runs[f"{name}-1"], runs[f"{name}-2"]
    assert sorted(p.name for p in two.folder.iterdir()) == ["ckpt", "log.jsonl"]  # no staging dir, no second copy
    files = {p.name for p in (two.folder / "ckpt").iterdir()}
    assert files == {p.name for p in (one.folder / "ckpt").iterdir()}
    assert files >= CHECKPOINT_FILES
    assert two.metrics["training"]["processes"] == 2 and one.metrics["training"]["processes"] == 1
    assert two.stderr.count("Saved the best checkpoint") == 1
    assert two.stderr.count("Processes: 2 (DDP)") == 1
    assert two.stderr.count("Data: ") == 1
    assert len(two.stdout.splitlines()) == 1  # one JSON summary, from the main process
    assert json.loads(two.stdout)["training"]["steps"] == 7


# ---------------------------------------------------------------------------------------------------- in process
def test_one_process_is_the_default(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    current.cache_clear()
    try:
        dist = current()
        assert type(dist) is Distributed and dist.is_main and dist.world_size == 1
        batch = torch.arange(6).view(3, 2)
        part, share = dist.shard(batch)
        assert part is batch and share == 1.0
        assert dist.batch_mean([2.5, 1.0], 1.0) == [2.5, 1.0]
        assert dist.on_main(lambda: 7) == 7
    finally:
        current.cache_clear()


def test_shard_gives_contiguous_slices_and_shares():
    batch = TemplateBatch(*(torch.arange(5 * k).view(5, k) for k in (2, 2, 1, 1, 2, 2)), labels=torch.eye(5))
    parts = [MultiProcess(2, rank).shard(batch) for rank in range(2)]
    assert [p.input_ids[:, 0].tolist() for p, _ in parts] == [[0, 2], [4, 6, 8]]
    assert [p.labels.argmax(1).tolist() for p, _ in parts] == [[0, 1], [2, 3, 4]]
    assert [share for _, share in parts] == [0.4, 0.6]
    single = batch.input_ids[:1]  # fewer rows than processes: the process without rows joins with weight 0
    assert MultiProcess(2, 0).shard(single)[1] == 0.0 and MultiProcess(2, 1).shard(single)[1] == 1.0


def test_batch_smaller_than_processes_is_a_config_error(monkeypatch, make_model):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    current.cache_clear()
    try:
        with pytest.raises(ConfigError, match="batch_size 2 is smaller than the 4 processes"):
            fit(make_model(), lambda g: iter([]), 1, None, TrainConfig(batch_size=2), cancel=threading.Event())
    finally:
        current.cache_clear()


def test_bad_launcher_environment_is_a_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    current.cache_clear()
    try:
        with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
            current()
    finally:
        current.cache_clear()
