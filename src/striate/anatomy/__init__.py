"""The anatomy of a model: what each tensor is.

`describe(shapes, config, metadata)` names the family (gpt2, bert, llama, vit, convnet, generic),
gives every tensor a role (one of `ROLES`), its block index, storage layout and the stored axis
that indexes the residual stream, and groups each layer's feed-forward weights. Tables per
family live in one small module each; `families.py` lists them.

    >>> from striate.anatomy import describe
    >>> a = describe({"model.layers.0.mlp.down_proj.weight": (576, 1536)},
    ...              config={"model_type": "llama", "hidden_size": 576})
    >>> a["model.layers.0.mlp.down_proj.weight"].residual_axis
    0
"""

from __future__ import annotations

from striate.anatomy.engine import anatomy_of, describe
from striate.anatomy.records import ROLES, Anatomy, FFNTriple, TensorAnatomy

__all__ = ["ROLES", "Anatomy", "FFNTriple", "TensorAnatomy", "anatomy_of", "describe"]
