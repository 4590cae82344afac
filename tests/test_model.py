"""Tests of hpt_core.model: shapes, initialisation, gradient flow, MLM corruption, ablation isolation, the
code-faithful switch and the real MiniLM backbone (spec §1, §4, §8.3–8.5, §8.7, §8.9, §8.14)."""

from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import hpt_core.model as model_module
from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.label_names import label_texts
from hpt_core.losses import bce_loss, zmlce_loss
from hpt_core.model import ABLATIONS, CODE_FAITHFUL, HPTConfig, HPTModel

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- helpers
@contextmanager
def record_encoder(model: HPTModel):
    """Record the encoder's ``inputs_embeds`` (B, S, d) and ``last_hidden_state`` (B, S, d) of each call."""
    calls: list[dict[str, torch.Tensor]] = []

    def hook(module, args, kwargs, output):
        calls.append({"inputs_embeds": kwargs["inputs_embeds"], "hidden": output.last_hidden_state})

    handle = model.encoder.register_forward_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@contextmanager
def record_input_ids(model: HPTModel):
    """Record the ids that reach the word-embedding layer (after any MLM corruption)."""
    seen: list[torch.Tensor] = []
    handle = model.word_embeddings.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    try:
        yield seen
    finally:
        handle.remove()


def docs_batch(model: HPTModel, docs, make_targets, with_labels: bool = True):
    texts = [text for text, _ in docs]
    labels = make_targets(model.hierarchy, [path for _, path in docs]) if with_labels else None
    return model.encode(texts, labels)


def eval_scores(model: HPTModel, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(batch).scores


def hand_scores(model: HPTModel, hidden: torch.Tensor, pred_pos: torch.Tensor) -> torch.Tensor:
    """Eq. 10 written out: s_{b,i} = v_i · Transform(H[b, pred_pos[b, slot(i)]]) + b_i (+ decoder bias)."""
    verbalizer = model.verbalizer
    slots = verbalizer.slot_of_label
    out = torch.empty(hidden.shape[0], model.num_labels)
    for b in range(hidden.shape[0]):
        for i in range(model.num_labels):
            h = hidden[b, pred_pos[b, slots[i]]]
            z = model.backbone.cls.predictions.transform(h) if model.config.verbalizer_transform else h
            out[b, i] = z @ verbalizer.label_words[i] + verbalizer.bias[i]
            if verbalizer.decoder_bias is not None:
                out[b, i] += verbalizer.decoder_bias[i]
    return out


def flat_tree() -> LabelHierarchy:
    return LabelHierarchy.from_paths([["Jazz"], ["Genetics"], ["Ecology"]])


def two_level_tree() -> LabelHierarchy:
    return LabelHierarchy.from_paths([["Science", "Physics"], ["Science", "Biology"], ["Arts", "Music"], ["Arts"]])


# ---------------------------------------------------------------------------------------------- shapes (§8.3)
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_shapes(make_model, make_targets, tiny_tree, tiny_docs, levels: int, batch_size: int):
    hierarchy = {1: flat_tree(), 2: two_level_tree(), 3: tiny_tree}[levels]
    model = make_model(hierarchy=hierarchy)
    c, d = hierarchy.num_labels, model.hidden_size
    texts = [text for text, _ in tiny_docs][-batch_size:]  # texts of different lengths
    labels = torch.zeros(batch_size, c)
    labels[:, 0] = 1.0
    batch = model.encode(texts, labels)
    assert batch.pred_pos.shape == batch.tmpl_pos.shape == (batch_size, levels)
    with record_encoder(model) as calls:
        out = model(batch)
    seq = batch.input_ids.shape[1]
    assert calls[0]["inputs_embeds"].shape == (batch_size, seq, d)
    assert calls[0]["hidden"].shape == (batch_size, seq, d)
    assert out.scores.shape == (batch_size, c)
    assert model.injected_template().shape == (levels, d)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.loss_parts) == {"classification", "mlm"}


def test_forward_without_labels_returns_only_scores(make_model, tiny_docs):
    model = make_model()
    out = model(model.encode([text for text, _ in tiny_docs]))
    assert out.loss is None and out.loss_parts == {}
    assert out.scores.shape == (len(tiny_docs), 13)


def test_inputs_embeds_follow_eq2(make_model, make_targets, tiny_docs):
    """Word rows E[ids] everywhere except T' at [Vm] and e_P at [PRED] (spec §1.4, step 4 of §1.8)."""
    model = make_model().eval()
    batch = docs_batch(model, tiny_docs, make_targets)
    with torch.no_grad(), record_encoder(model) as calls:
        model(batch)
    embeds = calls[0]["inputs_embeds"]
    template = model.injected_template()
    words = model.word_embeddings.weight
    expected = words[batch.input_ids].clone()
    for b in range(len(batch)):
        expected[b, batch.tmpl_pos[b]] = template
        expected[b, batch.pred_pos[b]] = model.pred_embedding
    torch.testing.assert_close(embeds, expected, rtol=0, atol=0)
    assert not torch.allclose(template, model.template_words)  # the injection changed the template


@pytest.mark.parametrize(
    "config",
    [
        HPTConfig(max_length=128),
        HPTConfig(max_length=128, constraint=False),
        HPTConfig(max_length=128, **CODE_FAITHFUL),
        HPTConfig(max_length=128, verbalizer_transform=False),
        HPTConfig(max_length=128, template="soft"),
    ],
    ids=["default", "no-constraint", "code-faithful", "no-transform", "soft"],
)
def test_scores_are_gathered_at_each_labels_slot(make_model, make_targets, tiny_docs, config: HPTConfig):
    model = make_model(config).eval()
    batch = docs_batch(model, tiny_docs, make_targets)
    with torch.no_grad(), record_encoder(model) as calls:
        scores = model(batch).scores
        expected = hand_scores(model, calls[0]["hidden"], batch.pred_pos)
    torch.testing.assert_close(scores, expected)


# ---------------------------------------------------------------------------------------------- init (§8.4)
@pytest.mark.parametrize("code_faithful", [False, True])
def test_label_words_init_from_name_wordpieces(make_model, tiny_tokenizer, wos_hierarchy, code_faithful: bool):
    tok = tiny_tokenizer
    model = make_model(HPTConfig.for_variant("hpt", code_faithful=code_faithful, max_length=128), wos_hierarchy)
    words = model.word_embeddings.weight.detach()
    label_words = model.verbalizer.label_words.detach()
    assert label_words.shape == (141, 32)
    for i, text in enumerate(label_texts(wos_hierarchy)):  # the split names ("HIV/AIDS" -> "hiv aids")
        ids = tok.convert_tokens_to_ids(tok.tokenize(text))
        if code_faithful:
            ids = [tok.cls_token_id, *ids, tok.sep_token_id]
        torch.testing.assert_close(label_words[i], words[ids].mean(0), msg=wos_hierarchy.name(i))
    parenting = wos_hierarchy.index(["Medical", "Parenting"])
    assert len(tok.tokenize(wos_hierarchy.name(parenting))) == 2


def test_label_words_use_the_short_name(make_model, tiny_tokenizer):
    nyt = LabelHierarchy.from_paths([["Top/News", "Top/News/Science"]])
    model = make_model(hierarchy=nyt)
    science = model.word_embeddings.weight[tiny_tokenizer.convert_tokens_to_ids("science")]
    torch.testing.assert_close(model.verbalizer.label_words[1].detach(), science.detach())


def test_pred_embedding_is_a_copy_of_the_mask_row(make_model, tiny_tokenizer):
    model = make_model()
    mask_row = model.word_embeddings.weight[tiny_tokenizer.mask_token_id]
    assert torch.equal(model.pred_embedding.detach(), mask_row.detach())
    before_mask, before_pred = mask_row.detach().clone(), model.pred_embedding.detach().clone()
    with torch.no_grad():
        model.pred_embedding.add_(1.0)
    assert torch.equal(model.word_embeddings.weight[tiny_tokenizer.mask_token_id].detach(), before_mask)
    words_before = model.word_embeddings.weight.detach().clone()
    with torch.no_grad():
        model.verbalizer.label_words.zero_()
    assert torch.equal(model.word_embeddings.weight.detach(), words_before)  # label words do not alias rows of E
    with torch.no_grad():
        model.word_embeddings.weight[tiny_tokenizer.mask_token_id] -= 5.0
    assert torch.equal(model.pred_embedding.detach(), before_pred + 1.0)


@pytest.mark.parametrize("initializer_range", [0.02, 0.05])
def test_template_init_std(make_model, initializer_range: float):
    model = make_model(HPTConfig(max_length=128, template="soft"), hidden_size=256, initializer_range=initializer_range)
    values = model.template_words.detach()
    assert values.shape == (8, 256)
    assert float(values.std()) == pytest.approx(initializer_range, rel=0.2)
    assert abs(float(values.mean())) < 0.2 * initializer_range
    hpt = make_model(hidden_size=256, initializer_range=initializer_range).template_words.detach()
    assert hpt.shape == (3, 256)
    assert float(hpt.std()) == pytest.approx(initializer_range, rel=0.2)


def test_bias_bound_uses_the_backbone_hidden_size(make_model, wos_hierarchy):
    for config in (HPTConfig(max_length=128), HPTConfig(max_length=128, **CODE_FAITHFUL)):
        bias = make_model(config, wos_hierarchy).verbalizer.bias.detach()
        bound = 1 / math.sqrt(32)
        assert bias.abs().max() <= bound
        assert bias.abs().max() > 0.9 * bound  # 141 draws: the whole ±1/√32 interval is used, not ±1/√768
        assert bias.min() < 0 < bias.max()
    assert model_module.bias_bound(32) == pytest.approx(bound)


# ---------------------------------------------------------------------------------------------- gradients (§8.5)
def test_one_backward_reaches_every_parameter(make_model, make_targets, tiny_docs):
    model = make_model()
    model.train()
    torch.manual_seed(0)
    out = model(docs_batch(model, tiny_docs, make_targets))
    assert out.loss_parts["mlm"] > 0
    out.loss.backward()
    named = dict(model.named_parameters())
    for name in (
        "verbalizer.label_words",
        "verbalizer.bias",
        "template_words",
        "pred_embedding",
        "graph.convs.0.lin.weight",
        "graph.convs.0.att_src",
        "graph.convs.0.att_dst",
        "graph.convs.0.bias",
        "backbone.bert.encoder.layer.0.attention.self.query.weight",
        "backbone.bert.embeddings.word_embeddings.weight",
        "backbone.cls.predictions.transform.dense.weight",  # the MLM head gets trained
        "backbone.cls.predictions.bias",
    ):
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # Nothing is frozen (§1.8: one Adam over all parameters).
    silent = [n for n, p in named.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_mlm_head_transform_is_trained_by_classification_alone(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig(max_length=128, mlm=False))
    model(docs_batch(model, tiny_docs, make_targets)).loss.backward()
    assert model.backbone.cls.predictions.transform.dense.weight.grad.abs().sum() > 0
    assert model.backbone.cls.predictions.bias.grad is None  # the decoder is only used by the MLM loss


def test_without_injection_there_is_no_graph(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig(max_length=128, injection=False))
    assert model.graph is None
    assert not [n for n, _ in model.named_parameters() if n.startswith("graph")]
    assert model.injected_template() is model.template_words  # T' == T
    out = model(docs_batch(model, tiny_docs, make_targets))
    out.loss.backward()
    assert model.template_words.grad.abs().sum() > 0


def test_label_words_feed_the_graph(make_model):
    """The scored v_i is the very parameter the graph reads (pitfall 3): ∂t'_m/∂v_i ≠ 0 iff depth(i) = m."""
    model = make_model().eval()
    depth = model.depth_of_label
    for m in range(3):
        probe = torch.randn(model.hidden_size)
        (grad,) = torch.autograd.grad(model.injected_template()[m] @ probe, model.verbalizer.label_words)
        norms = grad.norm(dim=1)
        assert (norms[depth == m] > 0).all() and (norms[depth != m] == 0).all()


def test_code_faithful_template_gets_no_hierarchy(make_model):
    model = make_model(HPTConfig(max_length=128, **CODE_FAITHFUL)).eval()
    template = model.injected_template()
    (grad,) = torch.autograd.grad(template.sum(), model.verbalizer.label_words, allow_unused=True)
    assert grad is None or torch.equal(grad, torch.zeros_like(grad))


def test_graph_runs_once_per_forward_with_gradients(make_model, make_targets, tiny_docs):
    model = make_model()
    calls = []
    model.graph.register_forward_hook(lambda module, args, output: calls.append(output.requires_grad))
    model(docs_batch(model, tiny_docs, make_targets))
    model(docs_batch(model, tiny_docs[:2], make_targets))
    assert calls == [True, True]


# ------------------------------------------------------------------------------------------- MLM and eval mode (§8.7)
def test_mlm_corrupts_only_text_tokens(make_model, make_targets, wos_docs, wos_hierarchy, monkeypatch):
    model = make_model(hierarchy=wos_hierarchy)
    spied = []
    real = model_module.mask_tokens

    def spy(*args, **kwargs):
        spied.append((args, real(*args, **kwargs)))
        return spied[-1][1]

    monkeypatch.setattr(model_module, "mask_tokens", spy)
    batch = docs_batch(model, wos_docs, make_targets)
    torch.manual_seed(0)
    with record_input_ids(model) as seen:
        out = model(batch)
    (args, masked) = spied[0]
    assert torch.equal(args[1], batch.text_mask)  # candidates: text wordpieces only
    chosen = torch.zeros_like(batch.text_mask)
    chosen[masked.positions[:, 0], masked.positions[:, 1]] = True
    assert not (chosen & ~batch.text_mask).any()
    assert abs(int(chosen.sum()) / int(batch.text_mask.sum()) - 0.15) < 0.02
    changed = seen[0] != batch.input_ids
    assert changed.any() and not (changed & ~chosen).any()  # template, [PRED], specials and pad are untouched
    new_ids = seen[0][changed]
    special = torch.isin(new_ids, torch.tensor(model.tokenizer.all_special_ids))
    assert not (special & (new_ids != model.tokenizer.mask_token_id)).any()  # [MASK] or a non-special id
    assert torch.equal(masked.targets, batch.input_ids[chosen])
    assert out.loss_parts["mlm"] > 0


def test_mlm_loss_is_cross_entropy_of_the_backbone_head(make_model, make_targets, tiny_docs, monkeypatch):
    model = make_model(**NO_DROPOUT)
    spied = []
    real = model_module.mask_tokens
    monkeypatch.setattr(model_module, "mask_tokens", lambda *a, **k: spied.append(real(*a, **k)) or spied[-1])
    batch = docs_batch(model, tiny_docs, make_targets)
    torch.manual_seed(1)
    with record_encoder(model) as calls:
        out = model(batch)
    masked = spied[0]
    hidden = calls[0]["hidden"][masked.positions[:, 0], masked.positions[:, 1]]
    logits = model.backbone.cls(hidden)  # (M, V) the backbone's full MLM head, decoder bias included
    assert logits.shape[1] == len(model.tokenizer)
    torch.testing.assert_close(out.loss_parts["mlm"], F.cross_entropy(logits, masked.targets))
    torch.testing.assert_close(out.loss, out.loss_parts["classification"] + out.loss_parts["mlm"])


@pytest.mark.parametrize("code_faithful", [False, True])
def test_mlm_head_at_every_position_costs_more_but_changes_nothing(
    make_model, make_targets, wos_docs, wos_hierarchy, code_faithful
):
    """``mlm_head_positions="all"`` (the official code's (B, S, V) head) gives the same loss and gradients."""
    config = HPTConfig.for_variant("hpt", code_faithful=code_faithful, max_length=128)
    gathered = make_model(config, wos_hierarchy, **NO_DROPOUT)
    config_all = HPTConfig.for_variant("hpt", code_faithful=code_faithful, max_length=128, mlm_head_positions="all")
    everywhere = make_model(config_all, wos_hierarchy, **NO_DROPOUT)
    batch = docs_batch(gathered, wos_docs[:6], make_targets)
    rows_scored = []
    for model in (gathered, everywhere):
        real = model._mlm_logits
        model._mlm_logits = lambda states, real=real: rows_scored.append(states.shape[0]) or real(states)
    torch.manual_seed(2)
    out_g = gathered(batch)
    torch.manual_seed(2)
    out_a = everywhere(batch)
    masked_rows, all_rows = rows_scored
    assert all_rows == batch.input_ids.numel() > 5 * masked_rows > 0  # every position vs the ~15 % masked ones
    torch.testing.assert_close(out_a.scores, out_g.scores)
    torch.testing.assert_close(out_a.loss_parts["mlm"], out_g.loss_parts["mlm"])
    out_g.loss.backward()
    out_a.loss.backward()
    grads_g = dict(gathered.named_parameters())
    for name, p in everywhere.named_parameters():
        if p.grad is not None or grads_g[name].grad is not None:
            torch.testing.assert_close(p.grad, grads_g[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_replacement_ids_are_never_special(make_model, tiny_tokenizer):
    model = make_model()
    special = set(tiny_tokenizer.all_special_ids)
    assert not special & set(model.replacement_ids.tolist())
    assert len(model.replacement_ids) == len(tiny_tokenizer) - len(special)


def test_eval_mode_never_corrupts(make_model, make_targets, tiny_docs):
    model = make_model()
    batch = docs_batch(model, tiny_docs, make_targets)
    model.eval()
    with torch.no_grad(), record_input_ids(model) as seen:
        first, second = model(batch), model(batch)
    assert torch.equal(first.scores, second.scores)
    assert torch.equal(seen[0], batch.input_ids) and torch.equal(seen[1], batch.input_ids)
    assert set(first.loss_parts) == {"classification"}
    torch.testing.assert_close(first.loss, zmlce_loss(first.scores, batch.labels, model.depth_of_label))


def test_training_without_mlm_leaves_inputs_alone(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig(max_length=128, mlm=False))
    model.train()
    batch = docs_batch(model, tiny_docs, make_targets)
    with record_input_ids(model) as seen:
        out = model(batch)
    assert torch.equal(seen[0], batch.input_ids)
    assert set(out.loss_parts) == {"classification"}
    assert torch.equal(out.loss, out.loss_parts["classification"])


def test_no_text_tokens_gives_zero_mlm_loss(make_model, make_targets):
    model = make_model()
    model.train()
    batch = model.encode(["", ""], make_targets(model.hierarchy, [["Arts"], ["Science", "Chemistry"]]))
    out = model(batch)
    assert out.loss_parts["mlm"].item() == 0.0
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_dropout_is_active_only_in_training(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig(max_length=128, mlm=False))
    batch = docs_batch(model, tiny_docs, make_targets)
    model.train()
    torch.manual_seed(0)
    a = model(batch).scores
    torch.manual_seed(1)
    b = model(batch).scores
    assert not torch.equal(a, b)
    assert torch.equal(eval_scores(model, batch), eval_scores(model, batch))


# ---------------------------------------------------------------------------------------------- ablations (§8.9)
def ablation_pair(make_model, **flags) -> tuple[HPTModel, HPTModel]:
    return make_model(HPTConfig(max_length=128), seed=7), make_model(HPTConfig(max_length=128, **flags), seed=7)


def param_shapes(model: HPTModel) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def same_parameters(a: HPTModel, b: HPTModel) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_no_constraint_uses_one_pred_slot(make_model, make_targets, tiny_docs):
    default, ablated = ablation_pair(make_model, constraint=False)
    assert same_parameters(default, ablated)  # same T (L words kept), e_P, V, GAT, biases
    assert torch.equal(default.graph.edge_index, ablated.graph.edge_index)
    assert ablated.verbalizer.slot_of_label.tolist() == [0] * 13  # every label scored at the one [PRED]
    bd, ba = docs_batch(default, tiny_docs, make_targets), docs_batch(ablated, tiny_docs, make_targets)
    assert bd.pred_pos.shape == (7, 3) and ba.pred_pos.shape == (7, 1) and ba.tmpl_pos.shape == (7, 3)
    assert (bd.attention_mask.sum(1) - ba.attention_mask.sum(1)).tolist() == [2] * 7  # L−1 fewer [PRED]
    assert torch.equal(bd.input_ids[bd.text_mask], ba.input_ids[ba.text_mask])  # same text
    out = ablated.eval()(ba)
    torch.testing.assert_close(out.loss, zmlce_loss(out.scores, ba.labels, None))  # one ZMLCE over all labels
    assert not torch.allclose(out.loss, zmlce_loss(out.scores, ba.labels, ablated.depth_of_label))


def test_no_injection_removes_only_the_graph(make_model, make_targets, tiny_docs):
    default, ablated = ablation_pair(make_model, injection=False)
    shapes_d, shapes_a = param_shapes(default), param_shapes(ablated)
    removed = set(shapes_d) - set(shapes_a)
    assert removed and all(name.startswith("graph.") for name in removed)
    assert not set(shapes_a) - set(shapes_d)
    assert {k: shapes_d[k] for k in shapes_a} == shapes_a
    for name in ("template_words", "pred_embedding", "verbalizer.label_words"):
        assert torch.equal(dict(default.named_parameters())[name], dict(ablated.named_parameters())[name])
    bd, ba = docs_batch(default, tiny_docs, make_targets), docs_batch(ablated, tiny_docs, make_targets)
    for field in ("input_ids", "attention_mask", "pred_pos", "tmpl_pos", "text_mask"):
        assert torch.equal(getattr(bd, field), getattr(ba, field))
    assert set(default(bd).loss_parts) == set(ablated(ba).loss_parts)


def test_random_connection_changes_only_the_edges(make_model, make_targets, tiny_docs):
    default, ablated = ablation_pair(make_model, connection="random")
    assert same_parameters(default, ablated)
    c = default.num_labels
    base, edges = default.graph.edge_index, ablated.graph.edge_index
    assert edges.shape[1] - base.shape[1] == 2 * c  # exactly C extra edges per direction
    extra = set(map(tuple, edges.t().tolist())) - set(map(tuple, base.t().tolist()))
    to_labels = sorted((t, s) for s, t in extra if s >= c)
    assert [t for t, _ in to_labels] == list(range(c))
    assert all(s - c != default.hierarchy.depth_of[t] for t, s in to_labels)
    bd, ba = docs_batch(default, tiny_docs, make_targets), docs_batch(ablated, tiny_docs, make_targets)
    assert torch.equal(bd.input_ids, ba.input_ids)
    assert not torch.equal(default.eval()(bd).scores, ablated.eval()(ba).scores)  # the edges matter


def test_depth_increasing_adds_the_shallower_level_edges(make_model):
    default, ablated = ablation_pair(make_model, connection="depth_increasing")
    assert same_parameters(default, ablated)
    c, depth = default.num_labels, default.hierarchy.depth_of
    before = set(map(tuple, default.graph.edge_index.t().tolist()))
    after = set(map(tuple, ablated.graph.edge_index.t().tolist()))
    assert before <= after
    one_way = {(c + m, y) for y in range(c) for m in range(3) if depth[y] < m}
    assert after - before == one_way | {(y, v) for v, y in one_way}


def test_bce_changes_the_loss_not_the_scores(make_model, make_targets, tiny_docs):
    default, ablated = ablation_pair(make_model, loss="bce")
    assert same_parameters(default, ablated)
    batch = docs_batch(default, tiny_docs, make_targets)
    with torch.no_grad():
        od, oa = default.eval()(batch), ablated.eval()(batch)
    assert torch.equal(od.scores, oa.scores)
    torch.testing.assert_close(oa.loss, bce_loss(oa.scores, batch.labels))
    torch.testing.assert_close(od.loss, zmlce_loss(od.scores, batch.labels, default.depth_of_label))
    assert not torch.allclose(od.loss, oa.loss)
    ablated.train()
    assert set(ablated(batch).loss_parts) == {"classification", "mlm"}  # MLM kept


def test_no_mlm_changes_only_the_mlm_term(make_model, make_targets, tiny_docs):
    default, ablated = ablation_pair(make_model, mlm=False)
    assert same_parameters(default, ablated)
    batch = docs_batch(default, tiny_docs, make_targets)
    default.train(), ablated.train()
    with record_input_ids(default) as seen_d, record_input_ids(ablated) as seen_a:
        od, oa = default(batch), ablated(batch)
    assert not torch.equal(seen_d[0], batch.input_ids) and torch.equal(seen_a[0], batch.input_ids)
    assert set(od.loss_parts) == {"classification", "mlm"} and set(oa.loss_parts) == {"classification"}


def test_variant_names():
    assert HPTConfig().variant_name == "hpt"
    assert HPTConfig.for_variant("hpt", code_faithful=True).variant_name == "hpt (code-faithful)"
    assert HPTConfig.for_variant("hpt", ["no-mlm"], code_faithful=True).variant_name == "hpt[no-mlm] (code-faithful)"
    assert HPTConfig(graph_form="code").variant_name == "hpt"  # one deviation alone is not the official code
    assert HPTConfig.for_variant("hpt", ["no-mlm", "bce"]).variant_name == "hpt[bce,no-mlm]"
    assert HPTConfig.for_variant("hpt", ["no-hierarchy"]).variant_name == "hpt[no-constraint,no-injection]"
    assert HPTConfig.for_variant("finetune").variant_name == "finetune"
    for name, flags in ABLATIONS.items():
        config = HPTConfig.for_variant("hpt", [name])
        assert all(getattr(config, k) == v for k, v in flags.items())


# ---------------------------------------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"template": "none", "constraint": True}, "constraint=True only applies to template 'hpt'"),
        ({"template": "soft", "injection": True}, "injection=True only applies"),
        ({"template": "prefix"}, "Unknown template 'prefix'"),
        ({"loss": "focal"}, "Unknown loss 'focal'; choose one of zmlce, bce"),
        ({"connection": "full"}, "Unknown connection 'full'"),
        ({"graph_conv": "gin"}, "Unknown graph_conv 'gin'"),
        ({"mlm_probability": 1.0}, "mlm_probability must be in"),
        ({"max_length": 8}, "max_length must be at least 16"),
        ({"soft_prompt_len": 0}, "at least 1"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, pattern: str):
    with pytest.raises(ConfigError, match=pattern):
        HPTConfig(**kwargs)


def test_config_defaults_and_variants():
    default = HPTConfig()
    assert (default.template, default.constraint, default.injection, default.loss, default.mlm) == (
        "hpt", True, True, "zmlce", True,
    )  # fmt: skip
    assert default.zmlce_per_layer and default.middle_sep and not default.label_init_special_tokens
    assert default.graph_form == "paper" and not default.is_code_faithful
    assert not (default.two_label_biases or default.mlm_extended_vocab or default.mlm_mask_special_tokens)
    code = HPTConfig.for_variant("hpt", code_faithful=True)
    assert not code.zmlce_per_layer and not code.middle_sep and code.label_init_special_tokens
    assert code.graph_form == "code" and code.two_label_biases and code.mlm_extended_vocab
    assert code.mlm_mask_special_tokens and code.is_code_faithful
    assert code.to_dict() == HPTConfig(**CODE_FAITHFUL).to_dict()  # the preset is plain field values
    assert "code_faithful" not in code.to_dict()  # a saved config says each deviation, never a switch
    kept = HPTConfig.for_variant("hpt", code_faithful=True, middle_sep=True)  # single flags may still be overridden
    assert kept.middle_sep and not kept.is_code_faithful
    for variant in ("finetune", "hard", "soft"):  # the preset is the same fields on every variant
        assert HPTConfig.for_variant(variant, code_faithful=True).is_code_faithful
    for variant in ("finetune", "hard", "soft"):
        config = HPTConfig.for_variant(variant)
        assert (config.constraint, config.injection, config.loss, config.mlm) == (False, False, "bce", False)
    assert HPTConfig.for_variant("finetune").template == "none"


def test_config_rejects_unknown_names():
    with pytest.raises(ConfigError, match="Unknown variant 'bert'; choose one of hpt, finetune, hard, soft"):
        HPTConfig.for_variant("bert")
    with pytest.raises(ConfigError, match="Unknown ablation 'no-graph'; choose from no-constraint"):
        HPTConfig.for_variant("hpt", ["no-graph"])
    with pytest.raises(ConfigError, match="applies to the 'hpt' variant only"):
        HPTConfig.for_variant("soft", ["no-mlm"])


@pytest.mark.parametrize(
    "data", [{"constraint": "false"}, {"max_length": "512"}, {"mlm_weight": "one"}, {"mlm": 1}, {"max_length": 64.0}]
)
def test_config_rejects_values_of_the_wrong_type(data: dict):
    """``bool("false")`` is True: a hand-edited config must not silently keep the constraint."""
    name, value = next(iter(data.items()))
    with pytest.raises(ConfigError, match=rf"HPTConfig\.{name} must be .*got {re.escape(repr(value))}"):
        HPTConfig.from_dict(data)


def test_config_dict_round_trip_is_strict():
    config = HPTConfig.for_variant("hpt", ["random-connection"], code_faithful=True, max_length=64)
    assert HPTConfig.from_dict(config.to_dict()) == config
    data = config.to_dict() | {"lerning_rate": 1.0}
    pattern = r"Unknown HPTConfig field\(s\) \['lerning_rate'\]; valid fields: .*max_length"
    with pytest.raises(ConfigError, match=pattern):
        HPTConfig.from_dict(data)


# ---------------------------------------------------------------------------------------------- code-faithful (§8.14)
def test_code_faithful_model(make_model, make_targets, tiny_tokenizer, monkeypatch):
    tok = tiny_tokenizer
    model = make_model(HPTConfig.for_variant("hpt", code_faithful=True, max_length=64))
    levels, c, vocab = 3, 13, len(tok)
    cls, sep, mask = tok.cls_token_id, tok.sep_token_id, tok.mask_token_id
    jazz, genetics = tok.convert_tokens_to_ids(["jazz", "genetics"])
    targets = make_targets(model.hierarchy, [["Arts", "Music", "Jazz"], ["Science"]])
    batch = model.encode([" ".join(["jazz"] * 200), "genetics"], targets)
    ids = batch.input_ids[0].tolist()
    assert len(ids) == 64
    kept = 64 - (2 * levels + 1)  # [CLS] + text is cut to max_len − (2L+1)
    assert ids[kept:] == [mask] * (2 * levels) + [sep]  # no middle [SEP]
    assert ids[:kept] == [cls] + [jazz] * (kept - 1)
    assert batch.input_ids[1].tolist()[:5] == [cls, genetics, mask, mask, mask]
    # Two biases: the label bias and a zero-initialised decoder bias.
    assert torch.equal(model.verbalizer.decoder_bias, torch.zeros(c))
    # One ZMLCE over all labels.
    with torch.no_grad():
        out = model.eval()(batch)
    torch.testing.assert_close(out.loss, zmlce_loss(out.scores, batch.labels, None))
    # MLM over the extended vocabulary V + C + L + 1, candidates incl. [CLS]/[SEP].
    spied = {}
    real_mask, real_loss = model_module.mask_tokens, model_module.mlm_loss

    def spy_mask(*args, **kwargs):
        spied["candidates"] = args[1]
        return real_mask(*args, **kwargs)

    def spy_loss(logits, targets):
        spied["width"] = logits.shape[1]
        return real_loss(logits, targets)

    monkeypatch.setattr(model_module, "mask_tokens", spy_mask)
    monkeypatch.setattr(model_module, "mlm_loss", spy_loss)
    model.train()
    torch.manual_seed(0)
    out = model(batch)
    assert spied["width"] == vocab + c + levels + 1
    assert torch.equal(spied["candidates"], batch.text_mask | batch.special_mask)
    assert spied["candidates"][:, 0].all()
    out.loss_parts["mlm"].backward()
    assert model.verbalizer.label_words.grad.abs().sum() > 0  # label words sit in the MLM softmax
    assert model.extra_decoder_bias.grad is not None


def test_code_faithful_soft_prompt_with_mlm(make_model, make_targets, tiny_docs):
    """Flags combine: the soft layout has no [PRED] vector, so its MLM softmax stays the backbone vocabulary."""
    model = make_model(HPTConfig.for_variant("soft", code_faithful=True, max_length=128, mlm=True))
    assert model.extra_decoder_bias is None
    out = model(docs_batch(model, tiny_docs, make_targets))
    assert set(out.loss_parts) == {"classification", "mlm"} and torch.isfinite(out.loss)


@pytest.mark.parametrize("name", sorted(CODE_FAITHFUL))
def test_each_code_deviation_is_its_own_switch(make_model, make_targets, tiny_docs, name: str):
    """Each field of the preset alone changes the model (its parameters, or its loss under the same seed)."""
    flags = {name: CODE_FAITHFUL[name]}
    if name == "mlm_extended_vocab":
        flags["two_label_biases"] = True  # the extended vocabulary's label rows use that second bias
        _, base = ablation_pair(make_model, two_label_biases=True)
    else:
        base = make_model(HPTConfig(max_length=128), seed=7)
    changed = make_model(HPTConfig(max_length=128, **flags), seed=7)
    losses = []
    for model in (base, changed):
        torch.manual_seed(3)
        losses.append(model.train()(docs_batch(model, tiny_docs, make_targets)).loss)
    assert param_shapes(base) != param_shapes(changed) or not torch.equal(*losses)
    assert not changed.config.is_code_faithful


def test_extended_vocabulary_needs_the_second_label_bias():
    with pytest.raises(ConfigError, match="mlm_extended_vocab=True needs two_label_biases=True"):
        HPTConfig(mlm_extended_vocab=True)


def test_legacy_code_faithful_key_is_expanded():
    """Configs saved before the preset (the shipped checkpoints) carry ``code_faithful`` and not its fields."""
    paper = HPTConfig(max_length=128).to_dict()
    legacy = {k: v for k, v in paper.items() if k not in CODE_FAITHFUL} | {"code_faithful": False}
    assert HPTConfig.from_dict(legacy) == HPTConfig(max_length=128)
    assert HPTConfig.from_dict(legacy | {"code_faithful": True}) == HPTConfig.for_variant(
        "hpt", code_faithful=True, max_length=128
    )
    # the three fields old files already stored win over the switch (a saved override stays an override)
    old_code = legacy | {"code_faithful": True, "middle_sep": True, "zmlce_per_layer": False}
    loaded = HPTConfig.from_dict(old_code)
    assert loaded.middle_sep and not loaded.zmlce_per_layer and loaded.graph_form == "code"
    assert HPTConfig.from_dict(legacy | {"code_faithful": False, "middle_sep": None}).middle_sep
    with pytest.raises(ConfigError, match="code_faithful"):
        HPTConfig.from_dict(legacy | {"code_faithful": "yes"})
    with pytest.raises(ConfigError, match=r"Unknown HPTConfig field\(s\) \['temperature'\]"):
        HPTConfig.from_dict(legacy | {"temperature": 2.0})  # strict for every other key


@pytest.mark.parametrize("name", ["20ng-hpt", "20ng-finetune"])
def test_shipped_checkpoint_configs_read_as_paper_mode(name: str):
    saved = json.loads((REPO_ROOT / "checkpoints" / name / "config.json").read_text(encoding="utf-8"))["hpt_config"]
    config = HPTConfig.from_dict(saved)
    variant = {"20ng-hpt": "hpt", "20ng-finetune": "finetune"}[name]
    if "code_faithful" in saved:  # the older file format: the preset flag, no explicit fields
        assert saved["code_faithful"] is False and "graph_form" not in saved
        # saved before label_name_split: read as False, the raw-name initialisation those label words came from
        expected = HPTConfig.for_variant(variant, backbone="minilm-l6-mlm", max_length=128, label_name_split=False)
    else:  # today's format: every field explicit
        assert saved["graph_form"] == "paper" and saved["label_name_split"] is True
        expected = HPTConfig.for_variant(variant, backbone="minilm-l6-mlm", max_length=128)
    assert config == expected


def test_default_mlm_softmax_is_the_backbone_vocabulary(make_model, make_targets, tiny_docs):
    """Spec §2 row 11: without mlm_extended_vocab the label words get no MLM gradient (no graph to carry it)."""
    model = make_model(HPTConfig(max_length=128, injection=False))
    assert model.extra_decoder_bias is None
    torch.manual_seed(0)
    out = model(docs_batch(model, tiny_docs, make_targets))
    out.loss_parts["mlm"].backward()
    grad = model.verbalizer.label_words.grad
    assert grad is None or grad.abs().sum() == 0


# ---------------------------------------------------------------------------------------------- baselines
def test_finetune_scores_a_linear_layer_on_cls(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig.for_variant("finetune", max_length=128)).eval()
    assert model.template_words is None and model.pred_embedding is None and model.graph is None
    batch = docs_batch(model, tiny_docs, make_targets)
    with torch.no_grad(), record_encoder(model) as calls:
        out = model(batch)
    torch.testing.assert_close(out.scores, model.verbalizer(calls[0]["hidden"][:, 0]))
    torch.testing.assert_close(out.loss, bce_loss(out.scores, batch.labels))


def test_hard_prompt_scores_headword_logits(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig.for_variant("hard", max_length=128)).eval()
    batch = docs_batch(model, tiny_docs, make_targets)
    with torch.no_grad(), record_encoder(model) as calls:
        out = model(batch)
        logits = model.backbone.cls(calls[0]["hidden"][torch.arange(7), batch.pred_pos[:, 0]])  # (B, V)
    tok = model.tokenizer
    jazz = model.hierarchy.index("Jazz")
    expected = logits[:, tok.convert_tokens_to_ids("jazz")] + model.verbalizer.bias[jazz]
    torch.testing.assert_close(out.scores[:, jazz], expected)
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"backbone", "verbalizer"}


def test_soft_prompt_uses_the_real_mask_token(make_model, make_targets, tiny_docs):
    model = make_model(HPTConfig.for_variant("soft", max_length=128)).eval()
    assert model.pred_embedding is None and model.graph is None and model.template_words.shape == (8, 32)
    batch = docs_batch(model, tiny_docs, make_targets)
    with torch.no_grad(), record_encoder(model) as calls:
        model(batch)
    embeds = calls[0]["inputs_embeds"]
    mask_row = model.word_embeddings.weight[model.tokenizer.mask_token_id]
    for b in range(len(batch)):
        torch.testing.assert_close(embeds[b, batch.pred_pos[b, 0]], mask_row)


# ---------------------------------------------------------------------------------------------- real backbone
def test_minilm_backbone(wos_docs, wos_hierarchy, make_targets):
    from hpt_core.backbones import load_backbone

    tokenizer, backbone = load_backbone("minilm-l6")
    torch.manual_seed(0)
    model = HPTModel(HPTConfig(max_length=128), wos_hierarchy, backbone, tokenizer)
    assert model.hidden_size == 384
    assert model.verbalizer.label_words.shape == (141, 384)
    assert model.template_words.shape == (2, 384)
    bound = 1 / math.sqrt(384)
    assert model.verbalizer.bias.abs().max() <= bound
    assert model.verbalizer.bias.abs().max() > 1 / math.sqrt(768)  # not the code's hard-coded 768
    model.train()
    batch = docs_batch(model, wos_docs[:4], make_targets)
    assert batch.pred_pos.shape == (4, 2) and batch.input_ids.shape[1] <= 128
    weight = model.backbone.cls.predictions.transform.dense.weight
    before = weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-5)
    out = model(batch)
    assert out.scores.shape == (4, 141) and torch.isfinite(out.loss)
    out.loss.backward()
    optimizer.step()
    assert not torch.equal(weight.detach(), before)
