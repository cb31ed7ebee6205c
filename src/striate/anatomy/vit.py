"""Vision transformers: Hugging Face ViT (transformers 4 and 5 names) and timm.

transformers 4 (and the hub's checkpoints): `vit.encoder.layer.N.attention.attention.query`,
`intermediate.dense`, `output.dense`, `layernorm_before / after`. transformers 5 saves
`vit.layers.N.attention.q_proj ... o_proj`, `mlp.fc1 / fc2`. timm: `blocks.N.attn.qkv`,
`attn.proj`, `mlp.fc1 / fc2`, `norm1 / norm2`, `cls_token`, `pos_embed`, `patch_embed.proj`,
`head`. The patch projection is a convolution that writes the residual stream: its output
channels (axis 0 of the stored [out, in, kh, kw] kernel) are the hidden dimensions.
"""

from __future__ import annotations

from striate.anatomy.family import Family, Rule, layer_patterns

_TOKENS = r"cls_token|reg_token|dist_token|mask_token"


class ViT(Family):
    name = "vit"
    model_types = ("vit", "deit", "dinov2")
    rules = (
        Rule(_TOKENS, "embedding"),
        Rule(r"embeddings\.position_embeddings|pos_embed", "position_embedding"),
        Rule(r"patch_embeddings\.projection|patch_embed\.proj", "conv", "writes"),
        Rule(r"attention\.attention\.query|attention\.q_proj", "attn_q"),
        Rule(r"attention\.attention\.key|attention\.k_proj", "attn_k"),
        Rule(r"attention\.attention\.value|attention\.v_proj", "attn_v"),
        Rule(r"attn\.qkv", "attn_qkv"),
        Rule(r"attention\.output\.dense|attention\.o_proj|attn\.proj", "attn_out"),
        Rule(r"intermediate\.dense|mlp\.fc1", "ffn_in"),
        Rule(r"output\.dense|mlp\.fc2", "ffn_out"),  # after attention.output.dense
        Rule(r"layernorm_before|layernorm_after|layernorm|norm\d?|fc_norm", "norm"),
        Rule(r"classifier|head|head_dist|pooler\.dense", "classifier"),
    )
    layer_patterns = layer_patterns(r"layers?\.(\d+)", r"blocks\.(\d+)")
