"""Tests of hpt_core.checkpoint: exact save/load round trips, refusal to clobber, corrupt directories, no pickle
(spec §8.12, pitfall 21)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from hpt_core.checkpoint import CHECKPOINT_FORMAT, read_checkpoint, read_metrics
from hpt_core.errors import CheckpointError, ConfigError
from hpt_core.model import HPTConfig, HPTModel

ROOT = Path(__file__).resolve().parents[1]

# Everything a checkpoint may contain: JSON, safetensors, the tokenizer's text files and the model card.
ALLOWED_FILES = {
    "config.json",
    "model.safetensors",
    "hierarchy.json",
    "README.md",
    "metrics.json",
    "train_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
}


@pytest.fixture
def saved(make_model, tmp_path: Path) -> tuple[HPTModel, Path]:
    model = make_model()
    return model, model.save_pretrained(tmp_path / "ckpt")


def scores_of(model: HPTModel, texts: list[str]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(model.encode(texts)).scores


@pytest.mark.parametrize(
    "config",
    [
        HPTConfig(max_length=128),
        HPTConfig.for_variant(code_faithful=True, max_length=128),
        HPTConfig(max_length=128, connection="random", graph_seed=4),
        HPTConfig.for_variant("hard", max_length=128),
    ],
    ids=["default", "code-faithful", "random-connection", "hard"],
)
def test_round_trip_gives_identical_scores(make_model, wos_hierarchy, wos_docs, tmp_path: Path, config: HPTConfig):
    model = make_model(config, wos_hierarchy, seed=3)
    # Train-like perturbation so that nothing equals its init value any more (a re-init would be caught).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    texts = [text for text, _ in wos_docs[:3]] + ["Mixed CASE text about Machine Learning [MASK]"]
    before = scores_of(model, texts)
    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = HPTModel.from_pretrained(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded.hierarchy.to_dict() == model.hierarchy.to_dict()
    assert torch.equal(loaded.encode(texts).input_ids, model.encode(texts).input_ids)
    assert torch.equal(scores_of(loaded, texts), before)
    state, state_loaded = model.state_dict(), loaded.state_dict()
    assert state.keys() == state_loaded.keys()
    assert all(torch.equal(state[k], state_loaded[k]) for k in state)
    if model.graph is not None:
        assert torch.equal(loaded.graph.edge_index, model.graph.edge_index)
    # The MLM decoder stays tied to the word embeddings, as in the saved model.
    assert loaded.backbone.get_output_embeddings().weight is loaded.word_embeddings.weight


@pytest.mark.parametrize("weights", ["float16", "mixed"])
def test_half_precision_weights_load_in_fp32_and_leave_the_model_alone(
    make_model, wos_hierarchy, wos_docs, tmp_path: Path, weights: str
):
    model = make_model(HPTConfig(max_length=128), wos_hierarchy, seed=3)
    texts = [text for text, _ in wos_docs[:4]]
    before = scores_of(model, texts)
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / weights, weights=weights)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the saved model is not converted
    assert torch.equal(scores_of(model, texts), before)
    assert json.loads((half / "config.json").read_text())["weights_dtype"] == weights
    assert (half / "model.safetensors").stat().st_size < 0.9 * (full / "model.safetensors").stat().st_size
    with safe_open(str(half / "model.safetensors"), "pt") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    assert dtypes["backbone.bert.embeddings.word_embeddings.weight"] == "F16"
    assert dtypes["backbone.bert.encoder.layer.0.attention.self.query.weight"] == (
        "F16" if weights == "float16" else "F32"
    )
    loaded = HPTModel.from_pretrained(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.backbone.get_output_embeddings().weight is loaded.word_embeddings.weight
    after = scores_of(loaded, texts)
    assert not torch.equal(after, before)  # rounded ...
    assert torch.allclose(after, before, atol=1e-2)  # ... but close (the shipped checkpoints are checked to 1e-3)


def _trained_on(backbone_dir: Path, hierarchy, scale: float = 0.002) -> HPTModel:
    """A model on the backbone saved at ``backbone_dir``, every weight moved a few per cent as training would."""
    torch.manual_seed(5)
    model = HPTModel.from_backbone(HPTConfig(backbone=str(backbone_dir), max_length=128), hierarchy)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def test_float16_delta_stores_backbone_weights_as_differences_from_the_backbone_file(
    save_tiny_backbone, wos_hierarchy, wos_docs, tmp_path: Path
):
    import hashlib

    from safetensors.torch import load_file

    backbone_dir = save_tiny_backbone(hidden_size=64, intermediate_size=128)
    base = load_file(str(backbone_dir / "model.safetensors"))
    model = _trained_on(backbone_dir, wos_hierarchy)
    texts = [text for text, _ in wos_docs[:6]]
    before = scores_of(model, texts)
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", weights="float16")
    delta = model.save_pretrained(tmp_path / "delta", weights="float16-delta")
    assert torch.equal(scores_of(model, texts), before)  # the saved model itself is not converted

    config = json.loads((delta / "config.json").read_text())
    assert config["weights_dtype"] == "float16-delta" and "_name_or_path" not in config["backbone_config"]
    info = config["delta_base"]
    assert info["backbone"] == str(backbone_dir)
    assert info["sha256"] == hashlib.sha256((backbone_dir / "model.safetensors").read_bytes()).hexdigest()
    word, query = (
        "backbone.bert.embeddings.word_embeddings.weight",
        "backbone.bert.encoder.layer.0.attention.self.query.weight",
    )
    assert {word, query} <= set(info["keys"]) and all(k.startswith("backbone.") for k in info["keys"])
    with safe_open(str(delta / "model.safetensors"), "pt") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118
    assert dtypes[word] == dtypes[query] == "F16"
    assert dtypes["verbalizer.label_words"] == dtypes["graph.convs.0.lin.weight"] == "F32"  # new weights stay fp32
    assert (delta / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size

    loaded, rounded = HPTModel.from_pretrained(delta), HPTModel.from_pretrained(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.backbone.get_output_embeddings().weight is loaded.word_embeddings.weight  # still tied
    trained = dict(model.named_parameters())
    got, fp16 = dict(loaded.named_parameters()), dict(rounded.named_parameters())
    worst_delta = worst_fp16 = 0.0
    for name in info["keys"]:
        w, b = trained[name].detach(), base[name.removeprefix("backbone.")].float()
        error = (got[name].detach() - w).abs()
        # fp16 rounds the difference to 11 significant bits; adding the base back rounds once more in fp32
        assert bool((error <= (w - b).abs() * 2**-11 + w.abs() * 2**-23 + 2**-24).all()), name
        worst_delta = max(worst_delta, float(error.max()))
        worst_fp16 = max(worst_fp16, float((fp16[name].detach() - w).abs().max()))
    assert worst_delta < worst_fp16 / 4
    new_weights = [n for n in trained if not n.startswith("backbone.")]
    assert new_weights and all(torch.equal(got[n], trained[n]) for n in new_weights)
    after_delta, after_fp16 = scores_of(loaded, texts), scores_of(rounded, texts)
    assert float((after_delta - before).abs().max()) < float((after_fp16 - before).abs().max())


def test_float16_delta_refuses_a_changed_or_missing_backbone(
    save_tiny_backbone, tiny_bert, wos_hierarchy, tmp_path: Path
):
    import shutil

    backbone_dir = tmp_path / "backbone"
    shutil.copytree(save_tiny_backbone(), backbone_dir)
    path = _trained_on(backbone_dir, wos_hierarchy).save_pretrained(tmp_path / "delta", weights="float16-delta")
    assert HPTModel.from_pretrained(path).num_labels == wos_hierarchy.num_labels
    tiny_bert(seed=9).save_pretrained(backbone_dir)  # the backbone is retrained in place
    with pytest.raises(CheckpointError, match="sha256") as changed:
        HPTModel.from_pretrained(path)
    assert "Restore the original backbone file" in str(changed.value)
    shutil.rmtree(backbone_dir)
    with pytest.raises(CheckpointError, match="cannot be read here") as missing:
        HPTModel.from_pretrained(path)
    assert str(backbone_dir) in str(missing.value) and "float32" in str(missing.value)


def test_float16_delta_needs_a_local_backbone_file(make_model, tmp_path: Path):
    model = make_model(HPTConfig(backbone="some-org/a-hub-model", max_length=128))
    with pytest.raises(ConfigError, match="has none here"):
        model.save_pretrained(tmp_path / "delta", weights="float16-delta")
    assert not (tmp_path / "delta").exists()


def test_saved_files_get_the_usual_permissions(make_model, tmp_path: Path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = make_model().save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in path.iterdir()} == {0o644}


def test_unknown_weight_precision_is_refused(make_model, tmp_path: Path):
    with pytest.raises(ConfigError, match="weights must be one of"):
        make_model().save_pretrained(tmp_path / "x", weights="int8")
    assert not (tmp_path / "x").exists()


def test_random_edges_come_from_the_file(make_model, tiny_tree, tmp_path: Path):
    """The sampled edges are saved with the weights, so reloading never re-samples them (pitfall 21)."""
    model = make_model(HPTConfig(max_length=128, connection="random", graph_seed=1), tiny_tree)
    path = model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["hpt_config"]["graph_seed"] = 2  # a different seed would sample different edges
    (path / "config.json").write_text(json.dumps(config))
    loaded = HPTModel.from_pretrained(path)
    assert torch.equal(loaded.graph.edge_index, model.graph.edge_index)


def test_checkpoint_files_hold_no_pickle(saved, tiny_tokenizer):
    model, path = saved
    metrics = {"dev": {"micro_f1": 0.5, "macro_f1": 0.25, "n_documents": 7}}
    model.save_pretrained(path, metrics=metrics, train_config={"lr": 3e-5}, overwrite=True)
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "hierarchy.json", "README.md", "metrics.json"} <= files
    assert files <= ALLOWED_FILES, files - ALLOWED_FILES
    for file in path.iterdir():
        head = file.read_bytes()[:2]
        assert head[:1] != b"\x80", f"{file.name} looks like a pickle"
        assert head != b"PK", f"{file.name} looks like a torch.save zip archive"
        if file.suffix in {".json", ".md", ".txt"}:
            file.read_text(encoding="utf-8")  # plain text
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == CHECKPOINT_FORMAT  # (plus the names of shared tensors)
        keys = set(f.keys())
    assert {"verbalizer.label_words", "template_words", "pred_embedding", "graph.edge_index"} <= keys
    assert json.loads((path / "config.json").read_text())["format"] == CHECKPOINT_FORMAT
    assert read_metrics(path) == metrics
    assert json.loads((path / "train_config.json").read_text()) == {"lr": 3e-5}
    card = (path / "README.md").read_text()
    assert "# HPT Studio checkpoint: hpt" in card and "50.00 %" in card


def test_read_metrics_without_metrics(saved):
    assert read_metrics(saved[1]) is None


def test_reading_rebuilds_every_part_and_the_weights_go_into_the_model_built_from_them(saved):
    model, path = saved
    parts = read_checkpoint(path, HPTConfig.from_dict)
    assert parts.root == path and parts.files["format"] == CHECKPOINT_FORMAT
    assert parts.config == model.config and parts.hierarchy.to_dict() == model.hierarchy.to_dict()
    assert parts.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    rebuilt = HPTModel(parts.config, parts.hierarchy, parts.backbone, parts.tokenizer)
    expected = model.state_dict()
    assert not all(torch.equal(expected[k], v) for k, v in rebuilt.state_dict().items())  # fresh weights so far
    parts.load_weights(rebuilt)
    assert all(torch.equal(expected[k], v) for k, v in rebuilt.state_dict().items())


def test_the_checkpoint_module_does_not_import_the_model():
    """Saving and reading need no model class (``HPTModel`` imports ``hpt_core.checkpoint``, not the reverse)."""
    code = "import sys, hpt_core.checkpoint; print('hpt_core.model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------- overwriting
def test_refuses_a_non_empty_directory(make_model, tmp_path: Path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match=r"out already exists and is not empty.*overwrite=True"):
        make_model().save_pretrained(target)
    assert (target / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging directory left behind


def test_an_empty_directory_is_fine(make_model, tmp_path: Path):
    target = tmp_path / "empty"
    target.mkdir()
    assert (make_model().save_pretrained(target) / "model.safetensors").is_file()


def test_overwrite_replaces_the_checkpoint(make_model, tmp_path: Path, tiny_docs):
    target = tmp_path / "ckpt"
    make_model(seed=0).save_pretrained(target)
    (target / "stale.txt").write_text("old")
    second = make_model(HPTConfig(max_length=128, mlm=False), seed=1)
    second.save_pretrained(target, overwrite=True)
    assert not (target / "stale.txt").exists()
    loaded = HPTModel.from_pretrained(target)
    assert loaded.config.mlm is False
    texts = [text for text, _ in tiny_docs]
    assert torch.equal(scores_of(loaded, texts), scores_of(second, texts))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no backup or staging directory left


def test_a_failed_save_leaves_the_old_checkpoint(make_model, tmp_path: Path, monkeypatch):
    target = tmp_path / "ckpt"
    make_model().save_pretrained(target)
    before = sorted(p.name for p in target.iterdir())
    model = make_model(seed=1)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model.tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    HPTModel.from_pretrained(target)


# ---------------------------------------------------------------------------------------------- broken checkpoints
def test_missing_directory(tmp_path: Path):
    with pytest.raises(CheckpointError, match=r"Model directory .*nowhere does not exist"):
        HPTModel.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["hierarchy.json", "model.safetensors", "config.json"])
def test_missing_file(saved, name: str):
    (saved[1] / name).unlink()
    with pytest.raises(CheckpointError, match=f"not a complete HPT checkpoint: missing {name}"):
        HPTModel.from_pretrained(saved[1])


@pytest.mark.parametrize("keep", [0, 4, 100, 0.5, -10])
def test_truncated_weights(saved, keep: float):
    file = saved[1] / "model.safetensors"
    data = file.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    file.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        HPTModel.from_pretrained(saved[1])


def test_wrong_format(saved):
    path = saved[1]
    config = json.loads((path / "config.json").read_text())
    config["format"] = "transformers"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"format 'transformers', expected 'hpt-studio/1'"):
        HPTModel.from_pretrained(path)
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"format 'list'"):
        HPTModel.from_pretrained(path)


def test_config_that_is_not_json(saved):
    (saved[1] / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json in .* is unreadable or not valid JSON"):
        HPTModel.from_pretrained(saved[1])


def test_config_with_an_unknown_field(saved):
    path = saved[1]
    config = json.loads((path / "config.json").read_text())
    config["hpt_config"]["temperature"] = 2.0
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"incompatible.*'temperature'"):
        HPTModel.from_pretrained(path)


def test_bad_hierarchy_json(saved):
    (saved[1] / "hierarchy.json").write_text(json.dumps({"labels": [{"name": "a", "parent": 3}]}))
    with pytest.raises(CheckpointError, match="incompatible.*invalid parent id 3"):
        HPTModel.from_pretrained(saved[1])


def test_weights_that_do_not_match_the_config(saved):
    path = saved[1]
    config = json.loads((path / "config.json").read_text())
    config["hpt_config"]["injection"] = False  # the file still holds graph.* weights
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not match config\.json.*unexpected \['graph\."):
        HPTModel.from_pretrained(path)


def test_weights_of_another_hierarchy(saved, tmp_path: Path):
    path = saved[1]
    data = json.loads((path / "hierarchy.json").read_text())
    data["labels"].append({"name": "Extra", "parent": -1})  # 14 labels, weights for 13
    (path / "hierarchy.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        HPTModel.from_pretrained(path)
