"""Tests of hpt_core.explain: nearest vocabulary words of the label words, how far they moved from their
initialisation, and the 2-D label-word map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpt_core.cli import main
from hpt_core.errors import ConfigError
from hpt_core.explain import (
    INIT_BACKBONE,
    INIT_CURRENT,
    LabelWords,
    label_movement,
    label_word_init,
    label_word_map,
    label_word_matrix,
    nearest_words,
    word_map,
)
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.model import HPTConfig


@pytest.fixture
def model(make_model, tiny_tree):
    return make_model(HPTConfig(max_length=48), tiny_tree).eval()


def set_label_word(model, label: int, token: str, scale: float = 3.0) -> int:
    """Make label ``label``'s virtual label word a scaled copy of ``token``'s embedding row; returns the token id."""
    token_id = model.tokenizer.convert_tokens_to_ids(token)
    assert token_id != model.tokenizer.unk_token_id or token == "[UNK]", token
    with torch.no_grad():
        model.verbalizer.label_words[label] = scale * model.word_embeddings.weight[token_id]
    return token_id


def test_nearest_words_shape_order_and_filter(model, tiny_tree):
    out = nearest_words(model, top_k=6)
    assert [w.label for w in out] == tiny_tree.names
    special = set(model.tokenizer.all_special_tokens)
    for label, item in enumerate(out):
        assert isinstance(item, LabelWords)
        assert item.path == tiny_tree.path(label) and item.depth == tiny_tree.depth_of[label]
        assert len(item.words) == 6
        sims = [s for _, s in item.words]
        assert sims == sorted(sims, reverse=True)
        assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in sims)
        words = [w for w, _ in item.words]
        assert len(set(words)) == 6
        assert not special & set(words)
        assert not any(w.startswith("##") or w.startswith("[") for w in words)
        assert all(any(c.isalnum() for c in w) for w in words)  # no pure punctuation


def test_label_word_equal_to_a_vocabulary_row_finds_that_word(model, tiny_tree):
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    set_label_word(model, jazz, "rhythm")
    (item,) = nearest_words(model, top_k=3, labels=[jazz])
    word, similarity = item.words[0]
    assert word == "rhythm"
    assert similarity == pytest.approx(1.0, abs=1e-5)
    assert item.words[1][1] < 1.0 - 1e-3
    assert item.label == "Jazz" and item.path == ["Arts", "Music", "Jazz"]


def test_whole_words_filters_pieces_and_punctuation(model, tiny_tree):
    a, b, c = (tiny_tree.index(p) for p in (["Science"], ["Arts"], ["Arts", "Music"]))
    set_label_word(model, a, "##ing")
    set_label_word(model, b, ",")
    mask_id = set_label_word(model, c, "[MASK]")
    loose = nearest_words(model, top_k=4, whole_words=False, labels=[a, b, c])
    assert loose[0].words[0][0] == "##ing" and loose[0].words[0][1] == pytest.approx(1.0, abs=1e-5)
    assert loose[1].words[0][0] == ","
    # Special tokens are never returned, not even a label word that is exactly the [MASK] row.
    assert model.tokenizer.convert_ids_to_tokens(mask_id) not in [w for w, _ in loose[2].words]
    strict = nearest_words(model, top_k=4, whole_words=True, labels=[a, b, c])
    assert "##ing" not in [w for w, _ in strict[0].words]
    assert "," not in [w for w, _ in strict[1].words]
    assert all(not w.startswith("##") for item in strict for w, _ in item.words)


def test_top_k_is_capped_and_validated(model):
    special = set(model.tokenizer.all_special_tokens)
    vocab_words = [t for t in model.tokenizer.get_vocab() if t not in special]  # "[" alone is plain punctuation
    (item,) = nearest_words(model, top_k=10**6, whole_words=False, labels=[0])
    assert len(item.words) == len(vocab_words)
    with pytest.raises(ConfigError, match="top_k must be at least 1, got 0"):
        nearest_words(model, top_k=0)


def test_to_dict(model):
    (item,) = nearest_words(model, top_k=2, labels=[0])
    data = item.to_dict()
    assert set(data) == {"label", "path", "depth", "words"}
    assert [set(w) for w in data["words"]] == [{"word", "similarity"}] * 2
    assert data["words"][0]["similarity"] == round(item.words[0][1], 4)


def test_hard_prompt_label_words_are_headword_embeddings(make_model, tiny_tree):
    model = make_model(HPTConfig(template="hard", max_length=48), tiny_tree)
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    vectors = label_word_matrix(model)
    assert vectors.shape == (tiny_tree.num_labels, model.hidden_size)
    jazz_id = model.tokenizer.convert_tokens_to_ids("jazz")
    torch.testing.assert_close(vectors[jazz], model.word_embeddings.weight[jazz_id].detach())
    (item,) = nearest_words(model, top_k=1, labels=[jazz])
    assert item.words[0][0] == "jazz"


def test_finetune_model_has_no_label_words(make_model, tiny_tree):
    model = make_model(HPTConfig(template="none", max_length=48), tiny_tree)
    with pytest.raises(ConfigError, match="fine-tune"):
        nearest_words(model)
    with pytest.raises(ConfigError, match="fine-tune"):
        label_word_map(model)


@pytest.mark.slow  # UMAP compiles its numba kernels (~20 s)
@pytest.mark.filterwarnings("ignore:n_jobs value:UserWarning")  # umap: a seeded run is single-threaded
def test_label_word_map_umap(model, tiny_tree):
    coords = label_word_map(model, seed=0)
    assert coords.shape == (tiny_tree.num_labels, 2)
    assert np.isfinite(coords).all()
    assert np.ptp(coords, axis=0).min() > 0  # a real 2-D layout, not a collapsed line or point


@pytest.mark.parametrize("paths", [[["Science", "Physics"], ["Arts", "Music"]], [["Science"]]])
def test_label_word_map_pca_for_few_labels(make_model, paths):
    hierarchy = LabelHierarchy.from_paths(paths)  # 4 labels (and 1): below UMAP's minimum, PCA instead
    model = make_model(HPTConfig(max_length=48), hierarchy)
    coords = label_word_map(model)
    assert coords.shape == (hierarchy.num_labels, 2)
    assert np.isfinite(coords).all()
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-5)  # PCA coordinates are centred
    if hierarchy.num_labels > 2:
        # The first two principal components keep the pairwise distances' dominant structure: the spread along the
        # first axis is at least that along the second.
        assert coords[:, 0].std() >= coords[:, 1].std() - 1e-6
    np.testing.assert_array_equal(label_word_map(model), coords)  # deterministic


def test_initial_label_words_explain_the_label_names(model, tiny_tree):
    from hpt_core.explain import initial_label_words

    set_label_word(model, tiny_tree.index(["Science", "Biology"]), "jazz")  # training moved the label word away
    label = tiny_tree.index(["Science", "Biology"])
    [after] = nearest_words(model, top_k=3, labels=[label])
    [before] = nearest_words(model, top_k=3, labels=[label], initial=True)
    assert after.words[0][0] == "jazz"
    assert before.words[0][0] == "biology" and before.words[0][1] == pytest.approx(1.0, abs=1e-5)
    assert initial_label_words(model).shape == label_word_matrix(model).shape


@pytest.mark.slow  # UMAP compiles its numba kernels (~20 s)
def test_word_map_places_each_labels_nearest_words(model, tiny_tree):
    result = word_map(model, top_k=4)
    assert result.label_coords.shape == (tiny_tree.num_labels, 2)
    assert len(result.words) == len(result.word_coords) == tiny_tree.num_labels
    for words, coords in zip(result.words, result.word_coords):
        assert coords.shape == (len(words.words), 2) and np.isfinite(coords).all()


# ------------------------------------------------------------------------------------- movement from the init
@pytest.fixture
def backbone_dir(save_tiny_backbone):
    """The tiny backbone ``make_model`` builds on (seed 0), saved: the model's ``config.backbone``."""
    return save_tiny_backbone()


@pytest.fixture
def trained_from(make_model, backbone_dir):
    """A fresh tiny HPT model whose ``config.backbone`` is the saved copy of its own (untrained) backbone."""
    return make_model(HPTConfig(max_length=48, backbone=str(backbone_dir))).eval()


def test_fresh_model_has_not_moved(trained_from, tiny_tree):
    movement = label_movement(trained_from, top_k=5)
    assert movement.init_source == INIT_BACKBONE and movement.init_note == ""
    assert len(movement.labels) == tiny_tree.num_labels and movement.top_k == 5
    for item in movement.labels:
        assert item.cosine_to_init == pytest.approx(1.0, abs=1e-5)
        assert item.gained == [] and item.lost == [] and not item.changed
        assert item.after.words == pytest.approx(item.before.words)
    assert movement.mean_cosine == pytest.approx(1.0, abs=1e-5)
    assert movement.median_cosine == pytest.approx(1.0, abs=1e-5)
    assert movement.num_changed == 0 and movement.num_same_nearest == tiny_tree.num_labels
    assert movement.mean_kept == 5
    torch.testing.assert_close(label_word_init(trained_from).vectors, label_word_matrix(trained_from))


def test_a_label_word_changed_by_hand(trained_from, tiny_tree):
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    embeddings = trained_from.word_embeddings.weight.detach()
    rhythm_id = set_label_word(trained_from, jazz, "rhythm")
    jazz_id = trained_from.tokenizer.convert_tokens_to_ids("jazz")
    movement = label_movement(trained_from, top_k=1)
    item = movement.labels[jazz]
    # as initialised, the label word is the embedding of the word "jazz"; now it points at "rhythm"
    expected = F.cosine_similarity(embeddings[rhythm_id], embeddings[jazz_id], dim=0).item()
    assert item.cosine_to_init == pytest.approx(expected, abs=1e-5) and item.cosine_to_init < 1.0
    assert item.before.words[0][0] == "jazz" and item.after.words[0][0] == "rhythm"
    assert item.gained == ["rhythm"] and item.lost == ["jazz"] and item.changed
    others = [m for label, m in enumerate(movement.labels) if label != jazz]
    assert all(m.gained == m.lost == [] and m.cosine_to_init == pytest.approx(1.0, abs=1e-5) for m in others)
    assert movement.num_changed == 1 and movement.num_same_nearest == tiny_tree.num_labels - 1
    c = tiny_tree.num_labels
    assert movement.mean_cosine == pytest.approx((c - 1 + expected) / c, abs=1e-5)
    assert movement.median_cosine == pytest.approx(1.0, abs=1e-5)
    summary = movement.summary()
    assert summary["labels_changed_top_k"] == 1 and summary["top_k"] == 1 and summary["init_source"] == "backbone"
    assert summary["mean_cosine_to_init"] == round(movement.mean_cosine, 4)
    assert f"1 of {c} labels changed their top-1 words" in movement.sentence()
    assert item.to_dict() == {"cosine_to_init": round(item.cosine_to_init, 4), "gained": ["rhythm"], "lost": ["jazz"]}


def test_gained_and_lost_keep_their_order(trained_from, tiny_tree):
    """Hand-made: the label word moves halfway from "physics" towards "rhythm", so the top-k mixes both worlds."""
    physics = tiny_tree.index(["Science", "Physics"])
    rows = trained_from.word_embeddings.weight.detach()
    ids = trained_from.tokenizer.convert_tokens_to_ids(["physics", "rhythm"])
    with torch.no_grad():
        trained_from.verbalizer.label_words[physics] = F.normalize(rows[ids[0]], dim=0) + 2 * F.normalize(
            rows[ids[1]], dim=0
        )
    item = label_movement(trained_from, top_k=6).labels[physics]
    after, before = [w for w, _ in item.after.words], [w for w, _ in item.before.words]
    assert before[0] == "physics" and after[0] == "rhythm"
    assert item.gained == [w for w in after if w not in before] and "rhythm" in item.gained
    assert item.lost == [w for w in before if w not in after]
    assert len(item.gained) == len(item.lost) >= 1


def test_initialisation_comes_from_the_original_backbone(trained_from, tiny_tree, make_model):
    """Training moves the word embeddings too: the initialisation is rebuilt from the backbone, not from them."""
    biology = tiny_tree.index(["Science", "Biology"])
    with torch.no_grad():
        trained_from.word_embeddings.weight.add_(0.5 * torch.randn_like(trained_from.word_embeddings.weight))
    movement = label_movement(trained_from, top_k=3)
    assert movement.init_source == INIT_BACKBONE
    # the label words did not change, so each one still equals its initialisation ...
    assert all(m.cosine_to_init == pytest.approx(1.0, abs=1e-5) for m in movement.labels)
    # ... and its initial nearest words are found among the original embeddings, where "biology" is the name itself
    [before] = nearest_words(trained_from, top_k=3, labels=[biology], initial=True)
    assert before.words[0] == ("biology", pytest.approx(1.0, abs=1e-5))
    assert movement.labels[biology].before.words[0][0] == "biology"


@pytest.mark.parametrize("backbone", ["./no-such-backbone", "minilm-l6-mlm"])
def test_fallback_to_current_embeddings(make_model, tiny_tree, backbone):
    """A backbone that cannot be loaded (a missing directory) or does not fit (the shipped MiniLM under a tiny model,
    or its absence from the checkout): the current embeddings stand in, and the result says so."""
    model = make_model(HPTConfig(max_length=48, backbone=backbone)).eval()
    with torch.no_grad():
        model.word_embeddings.weight.add_(0.5 * torch.randn_like(model.word_embeddings.weight))
    init = label_word_init(model)
    assert init.source == INIT_CURRENT and backbone in init.note
    assert "cannot be loaded" in init.note or "embedding matrix" in init.note
    torch.testing.assert_close(init.embeddings, model.word_embeddings.weight.detach())
    movement = label_movement(model, top_k=3)
    assert movement.init_source == INIT_CURRENT and movement.summary()["init_note"] == init.note
    assert movement.mean_cosine < 1.0  # the label words are the old embeddings' means, the init the new ones'
    assert "current embeddings" in movement.sentence()


def test_hard_prompt_and_finetune_movement(make_model, backbone_dir, tiny_tree):
    hard = make_model(HPTConfig(template="hard", max_length=48, backbone=str(backbone_dir))).eval()
    movement = label_movement(hard, top_k=2)
    assert movement.init_source == INIT_BACKBONE
    assert all(m.cosine_to_init == pytest.approx(1.0, abs=1e-5) and not m.changed for m in movement.labels)
    finetune = make_model(HPTConfig(template="none", max_length=48, backbone=str(backbone_dir)))
    with pytest.raises(ConfigError, match="fine-tune"):
        label_movement(finetune)
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        label_movement(hard, top_k=0)


def test_cli_explain_reports_the_movement(capsys, trained_from, tiny_tree, tmp_path):
    jazz = tiny_tree.index(["Arts", "Music", "Jazz"])
    set_label_word(trained_from, jazz, "rhythm")
    trained_from.save_pretrained(tmp_path / "model")
    capsys.readouterr()
    assert main(["explain", "--model", str(tmp_path / "model"), "--top-k", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    labels = result["labels"]
    assert [item["label"] for item in labels] == tiny_tree.names
    for item in labels:
        assert set(item) == {"label", "path", "depth", "words", "cosine_to_init", "gained", "lost"}
    assert labels[jazz]["gained"] == ["rhythm"] and labels[jazz]["lost"] == ["jazz"]
    assert labels[jazz]["words"][0]["word"] == "rhythm" and labels[jazz]["cosine_to_init"] < 1.0
    others = [item for label, item in enumerate(labels) if label != jazz]
    assert all(item["cosine_to_init"] == pytest.approx(1.0, abs=1e-4) and not item["gained"] for item in others)
    summary = result["summary"]
    assert summary["init_source"] == "backbone" and summary["top_k"] == 1 and summary["num_labels"] == len(labels)
    assert summary["labels_changed_top_k"] == 1 and summary["labels_same_nearest_word"] == len(labels) - 1
    assert set(summary) >= {"mean_cosine_to_init", "median_cosine_to_init", "init_note", "mean_words_kept"}
