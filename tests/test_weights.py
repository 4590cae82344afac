"""Tests of hpt_core.weights on a hand-made module: which storage converts what, float16-delta's differences from the
backbone file and their undoing, and every refusal. Whole checkpoints are tested in test_checkpoint.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from hpt_core.errors import CheckpointError, ConfigError
from hpt_core.weights import add_delta_base, check_weights, storage_base, stored_copy


class Tiny(nn.Module):
    """A backbone with tied embedding and decoder weights (as in a masked LM) plus a new head, named as in HPTModel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Module()
        self.backbone.emb = nn.Embedding(10, 4)
        self.backbone.dec = nn.Linear(4, 10)
        self.backbone.dec.weight = self.backbone.emb.weight
        self.head = nn.Linear(4, 2)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.backbone.emb


@pytest.fixture
def backbone_dir(tmp_path: Path) -> Path:
    """A backbone directory whose weights file holds ``Tiny``'s backbone before "training"."""
    folder = tmp_path / "backbone"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    base = Tiny().backbone
    save_file(
        {"emb.weight": base.emb.weight.detach().clone(), "dec.bias": base.dec.bias.detach().clone()},
        str(folder / "model.safetensors"),
    )
    return folder


def _trained() -> Tiny:
    model = Tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_precisions_are_checked(backbone_dir: Path):
    with pytest.raises(ConfigError, match="weights must be one of float16, float16-delta, mixed, float32, got 'int8'"):
        check_weights("int8", str(backbone_dir))
    with pytest.raises(ConfigError, match="has none here"):
        check_weights("float16-delta", "some-org/a-hub-model")
    for weights in ("float16", "mixed", "float32"):
        check_weights(weights, "some-org/a-hub-model")  # only float16-delta needs the backbone file
        assert storage_base(weights, "some-org/a-hub-model") is None
    base = storage_base("float16-delta", str(backbone_dir))
    assert base is not None
    assert base.sha256 == hashlib.sha256((backbone_dir / "model.safetensors").read_bytes()).hexdigest()
    assert set(base.tensors) == {"emb.weight", "dec.bias"}


@pytest.mark.parametrize("weights", ["float32", "float16", "mixed"])
def test_stored_copy_converts_a_copy_and_leaves_the_model_alone(weights: str):
    model = _trained()
    before = _state(model)
    stored, keys = stored_copy(model, weights)
    assert keys == []
    assert (stored is model) == (weights == "float32")
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())
    dtypes = {k: v.dtype for k, v in stored.state_dict().items()}
    half = {"float32": set(), "float16": set(dtypes), "mixed": {"backbone.emb.weight", "backbone.dec.weight"}}
    assert {k for k, d in dtypes.items() if d == torch.float16} == half[weights]


def test_float16_delta_stores_differences_and_adding_the_base_back_recovers_the_weights(
    backbone_dir: Path, tmp_path: Path
):
    model = _trained()
    before = _state(model)
    base = storage_base("float16-delta", str(backbone_dir))
    stored, keys = stored_copy(model, "float16-delta", base)
    assert keys == ["backbone.dec.bias", "backbone.emb.weight"]  # the tied decoder weight once, under the file's name
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is not converted
    params = dict(stored.named_parameters())
    assert params["backbone.emb.weight"].dtype == torch.float16 and params["head.weight"].dtype == torch.float32
    assert torch.equal(params["head.weight"], model.head.weight)
    initial = base.tensors["emb.weight"]
    assert torch.equal(params["backbone.emb.weight"], (model.backbone.emb.weight - initial).half())

    loaded = Tiny()  # as a checkpoint load leaves it: the stored values, in fp32
    loaded.load_state_dict({k: v.float() for k, v in stored.state_dict().items()})
    info = {"backbone": str(backbone_dir), "sha256": base.sha256, "keys": keys}
    add_delta_base(loaded, tmp_path, info)
    for name, param in loaded.named_parameters():
        w = dict(model.named_parameters())[name].detach()
        key = name.removeprefix("backbone.")
        b = base.tensors[key] if key in base.tensors else torch.zeros_like(w)
        assert param.dtype == torch.float32
        # fp16 rounds the difference to 11 significant bits; adding the base back rounds once more in fp32
        assert bool(((param.detach() - w).abs() <= (w - b).abs() * 2**-11 + w.abs() * 2**-23 + 2**-24).all()), name
    assert loaded.backbone.dec.weight is loaded.backbone.emb.weight


@pytest.mark.parametrize(
    ("info", "match"),
    [
        (None, "no valid 'delta_base' entry"),
        ({"backbone": "x"}, "no valid 'delta_base' entry"),
        ({"keys": [], "sha256": "0"}, "no valid 'delta_base' entry"),
        ({"backbone": "some-org/a-hub-model", "keys": []}, "cannot be read here"),
        ({"backbone": "BACKBONE", "sha256": "0" * 64, "keys": []}, "the backbone changed since this model was saved"),
        ({"backbone": "BACKBONE", "sha256": "SHA", "keys": ["backbone.head.weight"]}, "does not match the model"),
        ({"backbone": "BACKBONE", "sha256": "SHA", "keys": ["head.weight"]}, "does not match the model"),
    ],
)
def test_undoing_deltas_refuses_what_does_not_fit(backbone_dir: Path, tmp_path: Path, info, match: str):
    sha = hashlib.sha256((backbone_dir / "model.safetensors").read_bytes()).hexdigest()
    info = json.loads(json.dumps(info).replace("BACKBONE", str(backbone_dir)).replace('"SHA"', json.dumps(sha)))
    with pytest.raises(CheckpointError, match=match):
        add_delta_base(Tiny(), tmp_path, info)
