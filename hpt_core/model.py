"""``HPTConfig`` and ``HPTModel``: HPT, the paper's baselines and its ablations as flags of one model.

Forward pass (default configuration, paper §3; docs/method.md)::

    collate ──> [train] MLM corruption of text tokens ──> graph: T' = T + GAT([V; T])[C:]
      ──> inputs_embeds = E[ids] with T' at [Vm] and e_P at [PRED] ──> encoder ──> H_P = H[pred_pos]
      ──> scores s_i = v_i · Transform(H_P[depth(i)]) + b_i ──> ZMLCE per level + λ · MLM (head at masked rows only)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpt_core.backbones import load_backbone, mlm_head_decoder, mlm_head_transform, set_attention_dropout
from hpt_core.checkpoint import read_checkpoint, save_checkpoint
from hpt_core.configs import AT_LEAST_ONE, Check, ConfigBase, check_config, check_field_types, setting
from hpt_core.errors import ConfigError
from hpt_core.graph import CONNECTIONS, GRAPH_FORMS, HierarchyInjection
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.label_names import LabelName, label_names_from_dict, label_names_to_dict, label_texts
from hpt_core.losses import bce_loss, mask_tokens, mlm_loss, zmlce_loss
from hpt_core.template import TEMPLATE_KINDS, PromptTemplate, TemplateBatch
from hpt_core.verbalizer import HardVerbalizer, Verbalizer, bias_bound, label_name_embeddings  # noqa: F401

__all__ = ["HPTConfig", "HPTModel", "HPTOutput", "VARIANTS", "ABLATIONS", "CODE_FAITHFUL"]

VARIANTS: dict[str, dict[str, Any]] = {
    "hpt": {"template": "hpt"},
    "finetune": {"template": "none"},
    "hard": {"template": "hard"},
    "soft": {"template": "soft"},
}
ABLATIONS: dict[str, dict[str, Any]] = {
    "no-constraint": {"constraint": False},
    "no-injection": {"injection": False},
    "no-hierarchy": {"constraint": False, "injection": False},
    "bce": {"loss": "bce"},
    "no-mlm": {"mlm": False},
    "random-connection": {"connection": "random"},
    "depth-increasing": {"connection": "depth_increasing"},
}
# The official code's deviations from the paper (docs/faithfulness.md), one field each; the training loop's own
# deviation is ``hpt_core.training.CODE_FAITHFUL_TRAINING``.
CODE_FAITHFUL: dict[str, Any] = {
    "graph_form": "code",
    "zmlce_per_layer": False,
    "mlm_mask_special_tokens": True,
    "mlm_extended_vocab": True,
    "two_label_biases": True,
    "label_init_special_tokens": True,
    "middle_sep": False,
}
BACKBONE_HELP = "hub name, local directory, 'minilm-l6-mlm' (the shipped re-warmed MiniLM) or 'minilm-l6' (raw MiniLM)"
# Fields left unset (None) take the value the template implies; a variant re-derives them (``for_variant``).
_FROM_TEMPLATE = ("constraint", "injection", "loss", "mlm")
_FRACTION = Check(lambda v: 0.0 <= v <= 1.0, "in [0, 1]", "a fraction in [0, 1]")


@dataclass
class HPTConfig(ConfigBase):
    """Architecture of one model; saved as ``config.json`` beside the weights.

    Defaults are the paper's method. ``None`` fields are resolved in ``__post_init__`` from ``template``,
    so a saved config is always explicit. Prefer ``HPTConfig.for_variant("hpt", ablations=[...])``; presets
    (``VARIANTS``, ``ABLATIONS``, ``CODE_FAITHFUL``) are plain field values.
    """

    backbone: str = setting("minilm-l6-mlm", BACKBONE_HELP)
    template: str = setting("hpt", "prompt: hpt, soft, hard or none (plain fine-tune)", choices=TEMPLATE_KINDS)
    constraint: bool | None = setting(None, "one [PRED] per level (True) or one [PRED] for all labels")
    injection: bool | None = setting(None, "hierarchy injection through the graph network")
    connection: str = setting("level", "graph edges of the virtual nodes", choices=CONNECTIONS)
    graph_conv: str = setting("gat", "graph layer: gat or gcn", choices=("gat", "gcn"))
    graph_form: str = setting(
        "paper",
        "paper: edges both ways, ReLU layers, t' = t + g; code: parent->child edges, LayerNorm residual layers",
        choices=GRAPH_FORMS,
    )
    graph_layers: int = setting(1, "graph layers (K)", check=AT_LEAST_ONE)
    graph_dropout: float = setting(0.1, "dropout of the code-form graph layers", check=_FRACTION)
    graph_seed: int = setting(0, "seed of the random connection")
    loss: str | None = setting(None, "classification loss: zmlce or bce", choices=("zmlce", "bce"))
    zmlce_per_layer: bool = setting(True, "ZMLCE per level (Eq. 10, paper) or one ZMLCE over all labels (code)")
    mlm: bool | None = setting(None, "masked-LM auxiliary loss")
    mlm_weight: float = setting(1.0, "weight of the masked-LM loss")
    mlm_probability: float = setting(
        0.15, "fraction of the text wordpieces masked", check=Check(lambda v: 0.0 < v < 1.0, "in (0, 1)", "in (0, 1)")
    )
    mlm_mask_special_tokens: bool = setting(False, "masked LM may also choose [CLS]/[SEP] (code)")
    mlm_extended_vocab: bool = setting(
        False, "the MLM decoder also scores label words, template words and [PRED], with its own bias (code; HPT)"
    )
    mlm_head_positions: str = setting(
        "masked", "MLM head at [PRED]/masked rows only, or at every position (code's cost)", choices=("masked", "all")
    )
    soft_prompt_len: int = setting(8, "virtual words of the soft prompt", check=AT_LEAST_ONE)
    hard_prompt: str = setting("The text is about", "words of the hard prompt before [MASK]")
    verbalizer_transform: bool = setting(True, "apply the MLM head's transform before scoring")
    two_label_biases: bool = setting(False, "a second, zero-initialised label bias: the decoder bias (code)")
    label_init_special_tokens: bool = setting(False, "include [CLS]/[SEP] in the label-word mean (code)")
    label_name_split: bool = setting(
        True,
        "label words start from names split into words (comp.sys.ibm.pc.hardware -> 'ibm pc hardware'; "
        "hpt_core.label_names); False: from the raw name, as models trained before this field",
    )
    middle_sep: bool = setting(True, "[SEP] between text and template (paper)")
    max_length: int = setting(
        512, "tokens incl. the template", check=Check(lambda v: v >= 16, "at least 16 tokens", "at least 16 tokens")
    )
    attention_dropout: float | None = setting(
        None,
        "dropout of the backbone's attention probabilities; 0 turns it off; default: the backbone's own",
        check=_FRACTION,
    )

    def __post_init__(self) -> None:
        check_field_types(self)
        is_hpt = self.template == "hpt"
        for name in ("constraint", "injection"):
            value = getattr(self, name)
            if not is_hpt and value:
                raise ConfigError(f"{name}=True only applies to template 'hpt', not {self.template!r}; leave it unset.")
            setattr(self, name, is_hpt if value is None else bool(value))
        if self.loss is None:
            self.loss = "zmlce" if is_hpt else "bce"
        if self.mlm is None:
            self.mlm = is_hpt
        check_config(self)
        if self.mlm_extended_vocab and not self.two_label_biases:
            raise ConfigError(
                "mlm_extended_vocab=True needs two_label_biases=True: the label rows of the extended vocabulary "
                "use the label words' decoder bias."
            )

    @classmethod
    def for_variant(
        cls,
        variant: str = "hpt",
        ablations: list[str] | tuple[str, ...] = (),
        code_faithful: bool = False,
        base: HPTConfig | None = None,
        **kw: Any,
    ) -> HPTConfig:
        """Config of a named variant (``hpt``, ``finetune``, ``hard``, ``soft``) with ablations applied, and the
        official code's deviations (``CODE_FAITHFUL``) when ``code_faithful``; ``kw`` overrides any field.

        ``base`` gives the other fields (e.g. the app's default backbone and length); the fields a template implies
        (constraint, injection, loss, mlm) are derived again for the variant.
        """
        if variant not in VARIANTS:
            raise ConfigError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
        values: dict[str, Any] = {}
        if base is not None:
            values = {k: v for k, v in base.to_dict().items() if k not in _FROM_TEMPLATE}
        values.update(VARIANTS[variant])
        for name in ablations:
            if name not in ABLATIONS:
                raise ConfigError(f"Unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}.")
            if variant != "hpt":
                raise ConfigError(f"Ablation {name!r} applies to the 'hpt' variant only, not {variant!r}.")
            values.update(ABLATIONS[name])
        if code_faithful:
            values.update(CODE_FAITHFUL)
        values.update(kw)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HPTConfig:
        """Strict: unknown keys raise ``ConfigError`` listing the valid ones.

        One legacy key is read: ``code_faithful`` (configs saved before ``CODE_FAITHFUL`` became explicit fields, e.g.
        the shipped checkpoints) is expanded into the fields it stood for; values the file gives explicitly win.
        A config without ``label_name_split`` (saved before it existed) reads as ``False``: its label words were
        initialised from the raw names, and ``hpt_core.explain`` compares them with that initialisation.
        """
        values = dict(data)
        values.setdefault("label_name_split", False)
        if "code_faithful" in values:
            legacy = values.pop("code_faithful")
            if not isinstance(legacy, bool):
                raise ConfigError(f"HPTConfig.code_faithful (legacy) must be bool, got {legacy!r}.")
            for name, code_value in CODE_FAITHFUL.items():
                if values.get(name) is None:
                    values.pop(name, None)
                    if legacy:
                        values[name] = code_value
        return super().from_dict(values)

    @property
    def is_code_faithful(self) -> bool:
        """Whether every deviation of ``CODE_FAITHFUL`` holds."""
        return all(getattr(self, k) == v for k, v in CODE_FAITHFUL.items())

    @property
    def variant_name(self) -> str:
        """Short human name, e.g. ``hpt``, ``hpt[no-mlm]``, ``finetune``, ``hpt (code-faithful)``."""
        base = {"none": "finetune"}.get(self.template, self.template)
        if self.template != "hpt":
            return base
        changed = [
            name
            for name, flags in ABLATIONS.items()
            if name != "no-hierarchy" and all(getattr(self, k) == v for k, v in flags.items())
        ]
        name = base + (f"[{','.join(changed)}]" if changed else "")
        return name + (" (code-faithful)" if self.is_code_faithful else "")


@dataclass
class HPTOutput:
    """Result of ``HPTModel.forward``."""

    scores: torch.Tensor  # (B, C) label scores; predict s > 0
    loss: torch.Tensor | None = None  # scalar when the batch has labels
    loss_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # "classification", "mlm"


class HPTModel(nn.Module):
    """One model for every variant. Build with ``HPTModel.from_backbone(config, hierarchy)`` or
    ``HPTModel.from_pretrained(directory)``.

    Args:
        config: the architecture.
        hierarchy: the label tree (C labels, L levels).
        backbone: a Hugging Face masked-LM model (``BertForMaskedLM``-style or ``RobertaForMaskedLM``-style).
        tokenizer: its tokenizer.
        label_names: display names by label id (``hpt_core.label_names.load_label_names``): the label words start
            from them; kept as ``self.label_names`` (path → ``{"name", "description"}``) and saved with the model.
    """

    def __init__(
        self,
        config: HPTConfig,
        hierarchy: LabelHierarchy,
        backbone: nn.Module,
        tokenizer: Any,
        label_names: Mapping[int, LabelName] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.hierarchy = hierarchy
        self.label_names: dict[str, dict[str, str]] = label_names_to_dict(label_names or {}, hierarchy)
        self.tokenizer = tokenizer
        self.backbone = backbone
        if config.attention_dropout is not None:
            set_attention_dropout(backbone, config.attention_dropout)
        self.encoder = backbone.base_model
        bconf = backbone.config
        hidden = bconf.hidden_size
        c = hierarchy.num_labels
        positions = getattr(bconf, "max_position_embeddings", None)
        if positions is not None:
            if bconf.model_type in ("roberta", "xlm-roberta", "camembert"):  # positions start after the pad id
                positions -= (bconf.pad_token_id or 0) + 1
            if config.max_length > positions:
                raise ConfigError(
                    f"max_length {config.max_length} exceeds the {positions} positions backbone {config.backbone!r} "
                    f"supports; use --max-length {positions} or less."
                )
        self.template = PromptTemplate(
            tokenizer,
            kind=config.template,
            num_levels=hierarchy.num_levels,
            constraint=bool(config.constraint),
            middle_sep=bool(config.middle_sep),
            soft_prompt_len=config.soft_prompt_len,
            hard_prompt=config.hard_prompt,
        )
        words = self.word_embeddings.weight
        self.register_buffer("depth_of_label", torch.tensor(hierarchy.depth_of, dtype=torch.long), persistent=False)
        special = set(tokenizer.all_special_ids)
        replacement = torch.tensor([i for i in range(words.shape[0]) if i not in special], dtype=torch.long)
        self.register_buffer("replacement_ids", replacement, persistent=False)

        self.template_words: nn.Parameter | None = None
        self.pred_embedding: nn.Parameter | None = None
        self.graph: HierarchyInjection | None = None
        self.extra_decoder_bias: nn.Parameter | None = None
        if self.template.num_virtual:
            std = getattr(bconf, "initializer_range", 0.02)
            self.template_words = nn.Parameter(torch.randn(self.template.num_virtual, hidden) * std)  # (T, d)
        if config.template == "hpt":
            self.pred_embedding = nn.Parameter(words[tokenizer.mask_token_id].detach().clone())  # (d,)
            if config.injection:
                self.graph = HierarchyInjection(
                    hierarchy,
                    hidden,
                    connection=config.connection,
                    graph_conv=config.graph_conv,
                    num_layers=config.graph_layers,
                    form=config.graph_form,
                    dropout=config.graph_dropout,
                    graph_seed=config.graph_seed,
                )
        names = label_texts(hierarchy, bool(config.label_name_split), label_names)
        if config.template in ("hpt", "soft"):
            init = label_name_embeddings(tokenizer, words, names, bool(config.label_init_special_tokens))
            slots = self.depth_of_label if config.template == "hpt" and config.constraint else torch.zeros(c)
            self.verbalizer: nn.Module = Verbalizer(init, slots, two_biases=config.two_label_biases)
            if config.mlm_extended_vocab and config.mlm and config.template == "hpt":
                self.extra_decoder_bias = nn.Parameter(torch.zeros(self.template.num_virtual + 1))
        elif config.template == "hard":
            self.verbalizer = HardVerbalizer(tokenizer, names, hidden)
        else:
            self.dropout = nn.Dropout(getattr(bconf, "hidden_dropout_prob", 0.1))
            self.verbalizer = nn.Linear(hidden, c)  # (C, d) classifier over h_[CLS]

    # ------------------------------------------------------------------ backbone parts
    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.backbone.get_input_embeddings()

    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def num_labels(self) -> int:
        return self.hierarchy.num_labels

    @property
    def device(self) -> torch.device:
        return self.word_embeddings.weight.device

    def head_transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM head's transform (BERT: dense, GELU, LayerNorm): ``(..., d)`` → ``(..., d)``."""
        return mlm_head_transform(self.backbone, hidden)

    def head_decoder(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLM decoder's ``(V, d)`` weight and ``(V,)`` bias."""
        return mlm_head_decoder(self.backbone)

    # ------------------------------------------------------------------ forward
    def encode(self, texts: list[str], labels: torch.Tensor | None = None) -> TemplateBatch:
        """Texts → a collated batch on CPU (dynamic padding; the template is never truncated)."""
        return self.template.encode(texts, self.config.max_length, labels)

    def injected_template(self) -> torch.Tensor | None:
        """``T'`` ``(T, d)``: the template words after hierarchy injection (``T`` itself without a graph)."""
        if self.template_words is None:
            return None
        if self.graph is None:
            return self.template_words
        return self.graph(self.verbalizer.label_words, self.template_words)

    def forward(self, batch: TemplateBatch) -> HPTOutput:
        """Scores ``(B, C)`` and, when ``batch.labels`` is set, the loss ``ℒ = ℒ_cls + λ·ℒ_MLM``."""
        cfg = self.config
        input_ids = batch.input_ids  # (B, S)
        size = input_ids.shape[0]
        rows = torch.arange(size, device=input_ids.device)[:, None]  # (B, 1)
        masked = None
        if cfg.mlm and self.training:
            candidates = batch.text_mask | batch.special_mask if cfg.mlm_mask_special_tokens else batch.text_mask
            masked = mask_tokens(
                input_ids, candidates, self.tokenizer.mask_token_id, self.replacement_ids, cfg.mlm_probability
            )
            input_ids = masked.input_ids
        embeds = self.word_embeddings(input_ids)  # (B, S, d)
        template = self.injected_template()  # (T, d)
        if template is not None:
            tmpl_pos = batch.tmpl_pos  # (B, T)
            embeds = embeds.index_put((rows.expand_as(tmpl_pos), tmpl_pos), template.expand(size, -1, -1))
        if self.pred_embedding is not None:
            pred_pos = batch.pred_pos  # (B, P)
            values = self.pred_embedding.expand(size, pred_pos.shape[1], -1)  # (B, P, d)
            embeds = embeds.index_put((rows.expand_as(pred_pos), pred_pos), values)
        hidden = self.encoder(inputs_embeds=embeds, attention_mask=batch.attention_mask).last_hidden_state  # (B,S,d)
        all_logits = None
        if cfg.mlm_head_positions == "all" and cfg.template != "none":  # the official code's cost: (B, S, V)
            all_logits = self._mlm_logits(hidden.flatten(0, 1)).view(size, hidden.shape[1], -1)
        slot_states = hidden[rows, batch.pred_pos]  # (B, P, d)
        scores = self._score(slot_states)  # (B, C)
        out = HPTOutput(scores=scores)
        if batch.labels is None:
            return out
        targets = batch.labels.to(scores.device)
        if cfg.loss == "bce":
            cls_loss = bce_loss(scores, targets)
        else:
            per_level = cfg.template == "hpt" and cfg.constraint and cfg.zmlce_per_layer
            cls_loss = zmlce_loss(scores, targets, self.depth_of_label if per_level else None)
        out.loss_parts["classification"] = cls_loss
        out.loss = cls_loss
        if masked is not None:
            at = (masked.positions[:, 0], masked.positions[:, 1])
            logits = all_logits[at] if all_logits is not None else self._mlm_logits(hidden[at])  # (M, V)
            m_loss = mlm_loss(logits, masked.targets)
            out.loss_parts["mlm"] = m_loss
            out.loss = cls_loss + cfg.mlm_weight * m_loss
        return out

    def _score(self, slot_states: torch.Tensor) -> torch.Tensor:
        """``(B, P, d)`` hidden states at the scored slots → ``(B, C)`` scores."""
        template = self.config.template
        if template == "none":
            return self.verbalizer(self.dropout(slot_states[:, 0]))
        z = self.head_transform(slot_states) if self.config.verbalizer_transform or template == "hard" else slot_states
        if template == "hard":
            return self.verbalizer(z, *self.head_decoder())
        return self.verbalizer(z)

    def _mlm_logits(self, states: torch.Tensor) -> torch.Tensor:
        """MLM head at the masked positions only: ``(M, d)`` → ``(M, V)`` (``V + C + T + 1`` with
        ``mlm_extended_vocab``)."""
        z = self.head_transform(states)  # (M, d)
        weight, bias = self.head_decoder()
        logits = z @ weight.t() + bias  # (M, V)
        if self.extra_decoder_bias is not None:  # the official code's extended vocabulary
            rows = torch.cat([self.verbalizer.label_words, self.template_words, self.pred_embedding[None]])
            extra_bias = torch.cat([self.verbalizer.decoder_bias, self.extra_decoder_bias])
            logits = torch.cat([logits, z @ rows.t() + extra_bias], dim=-1)
        return logits

    # ------------------------------------------------------------------ construction and I/O
    @classmethod
    def from_backbone(
        cls, config: HPTConfig, hierarchy: LabelHierarchy, label_names: Mapping[int, LabelName] | None = None
    ) -> HPTModel:
        """A fresh model on the pretrained backbone named by ``config.backbone`` (label words from ``label_names``
        where given)."""
        tokenizer, backbone = load_backbone(config.backbone)
        return cls(config, hierarchy, backbone, tokenizer, label_names)

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        """Write a checkpoint directory (see ``hpt_core.checkpoint.save_checkpoint``)."""
        return save_checkpoint(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> HPTModel:
        """Load a checkpoint written by ``save_pretrained`` as an fp32 model (never unpickles): a directory, or a
        Hugging Face Hub id (``owner/name``, safetensors and JSON only: ``hpt_core.hub``); raises ``CheckpointError``
        saying what is wrong. ``hpt_core.checkpoint`` rebuilds the parts, this class joins them."""
        from hpt_core.hub import resolve_checkpoint

        directory = resolve_checkpoint(directory)
        saved = read_checkpoint(directory, HPTConfig.from_dict)
        names = label_names_from_dict(saved.label_names or {}, saved.hierarchy, f"{directory}/label_names.json")
        model = cls(saved.config, saved.hierarchy, saved.backbone, saved.tokenizer, names)
        saved.load_weights(model)
        return model.to(device).eval()

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters by learning-rate group (``training.parameter_groups``, ``TrainConfig``): ``new``, what this
        model adds on top of the backbone (label words, template and soft-prompt words, ``[PRED]``, graph, label and
        extra decoder biases, the fine-tune classifier: ``lr_new``); ``embeddings``, the backbone's word-embedding
        matrix, tied to the MLM decoder (``lr_embeddings``); ``backbone``, the rest, MLM head included (``lr``)."""
        words = self.word_embeddings.weight
        groups: dict[str, list[nn.Parameter]] = {"new": [], "embeddings": [], "backbone": []}
        for name, p in self.named_parameters():  # a tied parameter comes once
            part = "embeddings" if p is words else "backbone" if name.startswith("backbone.") else "new"
            groups[part].append(p)
        return groups

    def parameter_groups(self) -> dict[str, int]:
        """Parameter count per part, for model cards and sanity checks."""
        groups: dict[str, int] = {}
        for name, p in self.named_parameters():
            part = name.split(".")[0]
            groups[part] = groups.get(part, 0) + p.numel()
        return groups
