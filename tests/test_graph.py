"""Tests of hpt_core.graph: edge sets of every connection, edge direction, what reaches the template (spec §1.3)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from hpt_core.errors import ConfigError
from hpt_core.graph import HierarchyInjection, build_edges
from hpt_core.hierarchy import LabelHierarchy

D = 32


def edge_set(edges: torch.Tensor) -> Counter:
    """Multiset of (source, target) pairs."""
    return Counter(map(tuple, edges.t().tolist()))


def base_pairs(h: LabelHierarchy) -> list[tuple[int, int]]:
    """Tree edges parent→child plus virtual node of each depth → its labels (the code's direction)."""
    c = h.num_labels
    return [(p, i) for i, p in enumerate(h.parents) if p >= 0] + [(c + h.depth_of[y], y) for y in range(c)]


def both_ways(pairs: list[tuple[int, int]]) -> Counter:
    return Counter(pairs + [(b, a) for a, b in pairs])


def template_jacobian_norms(graph: HierarchyInjection, h: LabelHierarchy, seed: int = 0) -> torch.Tensor:
    """``(L, C)``: norm of ∂t'_m/∂v_i for every level m and label i (exact autograd, K layers of the graph)."""
    torch.manual_seed(seed)
    labels = torch.randn(h.num_labels, D, requires_grad=True)
    template = torch.randn(h.num_levels, D, requires_grad=True)
    out = graph(labels, template)
    rows = []
    for m in range(h.num_levels):
        probe = torch.randn(D)  # a random direction, so a ReLU-zeroed coordinate cannot hide a dependence
        (grad,) = torch.autograd.grad(out[m] @ probe, labels, retain_graph=True)
        rows.append(grad.norm(dim=1))
    return torch.stack(rows)


# ---------------------------------------------------------------------------------------------- edge sets
def test_level_edges_are_the_tree_plus_level_links_both_ways(tiny_tree: LabelHierarchy):
    h = tiny_tree
    edges = build_edges(h, "level")
    tree = h.num_labels - len(h.labels_at_depth(0))
    assert edges.shape == (2, 2 * tree + 2 * h.num_labels)
    assert edges.dtype == torch.long
    assert edge_set(edges) == both_ways(base_pairs(h))
    assert int(edges.max()) == h.num_labels + h.num_levels - 1  # virtual node of the last level


def test_code_edges_point_parent_to_child_and_virtual_to_label(tiny_tree: LabelHierarchy):
    h = tiny_tree
    edges = build_edges(h, "level", bidirectional=False)
    assert edge_set(edges) == Counter(base_pairs(h))
    assert (edges[1] < h.num_labels).all()  # nothing flows into a virtual node


@pytest.mark.parametrize("bidirectional", [True, False])
def test_random_connection_adds_one_edge_per_label_to_another_level(tiny_tree: LabelHierarchy, bidirectional: bool):
    h = tiny_tree
    c = h.num_labels
    base = build_edges(h, "level", bidirectional=bidirectional)
    edges = build_edges(h, "random", bidirectional=bidirectional, graph_seed=3)
    extra = edge_set(edges) - edge_set(base)
    assert edge_set(edges) == edge_set(base) + extra
    assert sum(extra.values()) == (2 if bidirectional else 1) * c
    one_way = [(s, t) for s, t in extra if s >= c]  # virtual → label
    assert sorted(t for _, t in one_way) == list(range(c))  # exactly one per label
    for s, t in one_way:
        assert s - c != h.depth_of[t]  # never the label's own virtual node
        assert c <= s < c + h.num_levels
    if bidirectional:
        assert extra == both_ways(one_way)


def test_random_connection_is_seeded(tiny_tree: LabelHierarchy):
    a = build_edges(tiny_tree, "random", graph_seed=1)
    assert torch.equal(a, build_edges(tiny_tree, "random", graph_seed=1))
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(a, build_edges(tiny_tree, "random", graph_seed=1))
    assert not torch.equal(a, build_edges(tiny_tree, "random", graph_seed=2))


def test_random_connection_needs_two_levels():
    with pytest.raises(ConfigError, match="at least 2 levels"):
        build_edges(LabelHierarchy.from_paths([["a"], ["b"]]), "random")


def test_depth_increasing_links_each_virtual_node_to_all_shallower_labels(tiny_tree: LabelHierarchy):
    h = tiny_tree
    c = h.num_labels
    extra = edge_set(build_edges(h, "depth_increasing", bidirectional=False)) - Counter(base_pairs(h))
    expected = Counter((c + m, y) for y in range(c) for m in range(h.num_levels) if h.depth_of[y] < m)
    assert extra == expected
    assert sum(expected.values()) == 2 + (2 + 5)  # depth 1 ← 2 top labels; depth 2 ← 2 top + 5 mid labels
    both = build_edges(h, "depth_increasing")
    assert edge_set(both) == both_ways(base_pairs(h) + list(expected))


def test_unknown_connection():
    h = LabelHierarchy.from_paths([["a", "b"]])
    with pytest.raises(ConfigError, match="Unknown connection 'full'; choose one of level, random, depth_increasing"):
        build_edges(h, "full")


# ---------------------------------------------------------------------------------------------- the module
def test_injection_shapes_and_parameters(tiny_tree: LabelHierarchy):
    torch.manual_seed(0)
    graph = HierarchyInjection(tiny_tree, D)
    out = graph(torch.randn(13, D), torch.randn(3, D))
    assert out.shape == (3, D)
    names = {n: tuple(p.shape) for n, p in graph.named_parameters()}
    assert names == {
        "convs.0.att_src": (1, 1, D),
        "convs.0.att_dst": (1, 1, D),
        "convs.0.bias": (D,),
        "convs.0.lin.weight": (D, D),
    }
    assert "edge_index" in dict(graph.named_buffers())
    assert "edges=" in repr(graph) and "form='paper'" in repr(graph)


def test_paper_form_is_residual_relu(tiny_tree: LabelHierarchy):
    torch.manual_seed(0)
    graph = HierarchyInjection(tiny_tree, D)
    labels, template = torch.randn(13, D), torch.randn(3, D)
    out = graph(labels, template)
    g = torch.relu(graph.convs[0](torch.cat([labels, template]), graph.edge_index))[13:]
    torch.testing.assert_close(out, template + g)
    assert (out - template >= 0).all()


def test_code_form_is_layernorm_of_self_loop_only(tiny_tree: LabelHierarchy):
    """Official code: t'_m = LN(t_m + W t_m + b); nothing from the hierarchy reaches the template (spec §1.3)."""
    torch.manual_seed(0)
    graph = HierarchyInjection(tiny_tree, D, form="code").eval()
    labels, template = torch.randn(13, D), torch.randn(3, D)
    out = graph(labels, template)
    conv = graph.convs[0]
    torch.testing.assert_close(out, graph.norms[0](template + conv.lin(template) + conv.bias))
    torch.testing.assert_close(out, graph(torch.randn(13, D), template))


def test_gcn_and_more_layers(tiny_tree: LabelHierarchy):
    graph = HierarchyInjection(tiny_tree, D, graph_conv="gcn", num_layers=2)
    assert len(graph.convs) == 2 and type(graph.convs[0]).__name__ == "GCNConv"
    assert graph(torch.randn(13, D), torch.randn(3, D)).shape == (3, D)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"graph_conv": "gin"}, "graph_conv 'gin'"),
        ({"num_layers": 0}, ">= 1"),
        ({"form": "official"}, "Unknown graph_form 'official'; choose one of paper, code"),
    ],
)
def test_bad_graph_options(tiny_tree: LabelHierarchy, kwargs: dict, pattern: str):
    with pytest.raises(ConfigError, match=pattern):
        HierarchyInjection(tiny_tree, D, **kwargs)


# ---------------------------------------------------------------------------------------------- what reaches t'_m
def test_level_connection_template_depends_only_on_its_level(tiny_tree: LabelHierarchy):
    """Pitfall 7: perturbing v_i changes t'_{depth(i)} and, with K=1, no other template word."""
    h = tiny_tree
    torch.manual_seed(0)
    norms = template_jacobian_norms(HierarchyInjection(h, D), h)
    depth = torch.tensor(h.depth_of)
    for m in range(h.num_levels):
        assert (norms[m, depth == m] > 1e-6).all(), f"level {m} misses some of its labels"
        assert (norms[m, depth != m] == 0).all(), f"level {m} sees labels of other levels"


def test_code_connection_template_ignores_labels(tiny_tree: LabelHierarchy):
    torch.manual_seed(0)
    graph = HierarchyInjection(tiny_tree, D, form="code").eval()
    assert (template_jacobian_norms(graph, tiny_tree) == 0).all()


def test_depth_increasing_template_sees_all_shallower_levels(tiny_tree: LabelHierarchy):
    h = tiny_tree
    torch.manual_seed(0)
    norms = template_jacobian_norms(HierarchyInjection(h, D, connection="depth_increasing"), h)
    depth = torch.tensor(h.depth_of)
    for m in range(h.num_levels):
        assert (norms[m, depth <= m] > 1e-6).all()
        assert (norms[m, depth > m] == 0).all()


def test_random_connection_template_sees_its_level_and_the_random_links(tiny_tree: LabelHierarchy):
    h = tiny_tree
    c = h.num_labels
    torch.manual_seed(0)
    graph = HierarchyInjection(h, D, connection="random", graph_seed=5)
    linked = torch.zeros(h.num_levels, c, dtype=torch.bool)
    for s, t in graph.edge_index.t().tolist():
        if s >= c and t < c:
            linked[s - c, t] = True
    assert int(linked.sum()) == 2 * c  # own level + one random other level per label
    norms = template_jacobian_norms(graph, h)
    assert (norms[linked] > 1e-6).all()
    assert (norms[~linked] == 0).all()
