"""Resumable training state: the folder format, the settings comparison, the generators and the stop signals."""

from __future__ import annotations

import os
import random
import signal
import threading

import numpy as np
import pytest
import torch

from hpt_core.errors import CheckpointError
from hpt_core.resume import (
    differences,
    has_state,
    read_info,
    read_state,
    remove_state,
    restore_rng_states,
    resume_directory,
    rng_states,
    stop_on_signals,
    write_state,
)


def test_the_state_lives_beside_the_output_and_round_trips(tmp_path):
    folder = resume_directory(tmp_path / "out")
    assert folder == tmp_path / "out.resume"
    state = {"weights": torch.arange(4.0), "loop": {"step": 3, "history": [{"step": 2, "lr": {"backbone": 1e-4}}]}}
    write_state(folder, state, {"step": 3})
    assert has_state(folder) and read_info(folder) == {"step": 3}
    again = read_state(folder)
    assert torch.equal(again["weights"], state["weights"]) and again["loop"] == state["loop"]
    write_state(folder, {"loop": {"step": 4}}, {"step": 4})  # the last one only
    assert read_info(folder) == {"step": 4} and sorted(p.name for p in tmp_path.iterdir()) == ["out.resume"]
    remove_state(folder)
    assert not folder.exists()


def test_an_unrelated_folder_is_never_replaced_nor_removed(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a resume state"):
        write_state(folder, {}, {})
    remove_state(folder)
    assert (folder / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_a_damaged_state_is_a_checkpoint_error(tmp_path):
    write_state(tmp_path / "s", {"x": torch.ones(1)}, {"step": 1})
    (tmp_path / "s" / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="delete"):
        read_state(tmp_path / "s")


def test_differences_name_each_setting_with_both_values():
    saved = {"lr": 1e-4, "batch_size": 16, "seed": 0, "gone": 1}
    requested = {"lr": 1e-3, "batch_size": 16, "seed": 0, "new": True}
    assert differences(saved, requested) == [
        "gone: saved 1, requested (none)",
        "lr: saved 0.0001, requested 0.001",
        "new: saved (none), requested True",
    ]
    assert differences(saved, dict(saved)) == []


def test_generator_states_come_back_exactly():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    states = rng_states()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_states(states)
    again = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_sigterm_sets_the_cancel_event_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    cancel = threading.Event()
    with stop_on_signals(cancel):
        os.kill(os.getpid(), signal.SIGTERM)
        assert cancel.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before
