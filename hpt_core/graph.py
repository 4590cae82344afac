"""Hierarchy injection (paper §3.2, Eqs. 4–5): a graph network over the label tree plus one virtual node per level.

Nodes: the C label words (features ``v_i``) followed by the L template words (features ``t_m``), so node ``C + m`` is
the virtual node of depth ``m``. Edges: the tree (parent–child) plus ``t_m – y`` for every label ``y`` of depth ``m``
(``connection="level"``); ``random`` adds for each label one edge to a virtual node of another depth (sampled once
with ``graph_seed`` and kept as a buffer, so it is saved with the weights); ``depth_increasing`` links ``t_m`` to every
label of depths ``0..m``.

Paper form (default): edges in both directions, ``g⁽ᵏ⁺¹⁾ = ReLU(GATConv(g⁽ᵏ⁾))``, ``t'_m = t_m + g⁽ᴷ⁾[C + m]``.
Official-code form (``form="code"``): edges parent→child and virtual→label only (a virtual node receives only its
self-loop), ``g⁽ᵏ⁺¹⁾ = LayerNorm(g⁽ᵏ⁾ + Dropout(GATConv(g⁽ᵏ⁾)))``, ``t'_m = g⁽ᴷ⁾[C + m]``.

Shapes: label words ``(C, d)``, template words ``(L, d)`` → injected template words ``(L, d)``.
"""

from __future__ import annotations

import torch
from torch import nn

from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy

__all__ = ["HierarchyInjection", "build_edges", "CONNECTIONS", "GRAPH_FORMS"]

CONNECTIONS = ("level", "random", "depth_increasing")
GRAPH_FORMS = ("paper", "code")  # edge direction and layer form (module docstring)


def build_edges(
    hierarchy: LabelHierarchy, connection: str = "level", bidirectional: bool = True, graph_seed: int = 0
) -> torch.Tensor:
    """Edge index ``(2, E)`` over the ``C + L`` nodes (row 0 sources, row 1 targets; PyG adds self-loops)."""
    if connection not in CONNECTIONS:
        raise ConfigError(f"Unknown connection {connection!r}; choose one of {', '.join(CONNECTIONS)}.")
    c, levels = hierarchy.num_labels, hierarchy.num_levels
    depth = hierarchy.depth_of
    pairs: list[tuple[int, int]] = [(p, i) for i, p in enumerate(hierarchy.parents) if p >= 0]
    pairs += [(c + depth[y], y) for y in range(c)]  # virtual node of a level -> its labels
    if connection == "random":
        if levels < 2:
            raise ConfigError("connection='random' needs a hierarchy with at least 2 levels.")
        gen = torch.Generator().manual_seed(graph_seed)
        for y in range(c):
            others = [m for m in range(levels) if m != depth[y]]
            m = others[int(torch.randint(len(others), (1,), generator=gen))]
            pairs.append((c + m, y))
    elif connection == "depth_increasing":
        pairs += [(c + m, y) for y in range(c) for m in range(depth[y] + 1, levels)]
    edges = torch.tensor(pairs, dtype=torch.long).t()
    if bidirectional:
        edges = torch.cat([edges, edges.flip(0)], dim=1)
    return edges.contiguous()


class HierarchyInjection(nn.Module):
    """Graph encoder that injects the label hierarchy into the template words.

    Args:
        hierarchy: the label tree (C labels, L levels).
        hidden_size: d, the backbone's hidden size.
        connection: ``level`` (paper), ``random`` or ``depth_increasing`` (ablations).
        graph_conv: ``gat`` (``GATConv``, 1 head) or ``gcn`` (``GCNConv``, the literal ``1/c_u`` of Eq. 4).
        num_layers: K.
        form: ``paper`` or ``code``, the official code's edge direction and layer form (module docstring).
        dropout: dropout after each layer in the code form.
        graph_seed: seed of the random connection.
    """

    def __init__(
        self,
        hierarchy: LabelHierarchy,
        hidden_size: int,
        connection: str = "level",
        graph_conv: str = "gat",
        num_layers: int = 1,
        form: str = "paper",
        dropout: float = 0.1,
        graph_seed: int = 0,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv, GCNConv  # here to keep start-up light: seconds to import, graph only

        if graph_conv not in ("gat", "gcn"):
            raise ConfigError(f"Unknown graph_conv {graph_conv!r}; choose 'gat' or 'gcn'.")
        if num_layers < 1:
            raise ConfigError(f"graph_layers must be >= 1, got {num_layers}.")
        if form not in GRAPH_FORMS:
            raise ConfigError(f"Unknown graph_form {form!r}; choose one of {', '.join(GRAPH_FORMS)}.")
        self.num_labels = hierarchy.num_labels
        self.form = form
        code = form == "code"
        edges = build_edges(hierarchy, connection, bidirectional=not code, graph_seed=graph_seed)
        self.register_buffer("edge_index", edges)
        layer, kwargs = (GATConv, {"heads": 1}) if graph_conv == "gat" else (GCNConv, {})
        self.convs = nn.ModuleList(layer(hidden_size, hidden_size, **kwargs) for _ in range(num_layers))
        if code:
            self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))
            self.dropout = nn.Dropout(dropout)

    def forward(self, label_words: torch.Tensor, template_words: torch.Tensor) -> torch.Tensor:
        """``(C, d)``, ``(L, d)`` → ``(L, d)``; run once per forward pass (batch-independent), with gradients."""
        x = torch.cat([label_words, template_words], dim=0)  # (C + L, d)
        for k, conv in enumerate(self.convs):
            if self.form == "code":
                x = self.norms[k](x + self.dropout(conv(x, self.edge_index)))
            else:
                x = torch.relu(conv(x, self.edge_index))
        injected = x[self.num_labels :]  # (L, d)
        return injected if self.form == "code" else template_words + injected

    def extra_repr(self) -> str:
        return f"num_labels={self.num_labels}, edges={self.edge_index.shape[1]}, form={self.form!r}"
