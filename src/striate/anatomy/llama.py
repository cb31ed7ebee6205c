"""LLaMA-style decoders (LLaMA, Mistral, Qwen2/3, SmolLM, Gemma) and llama.cpp's GGUF names.

Hugging Face: `model.layers.N.self_attn.q_proj`, `mlp.gate_proj / up_proj / down_proj`,
`input_layernorm`, `post_attention_layernorm`, `model.norm`, `model.embed_tokens`, `lm_head`.
GGUF: `token_embd`, `blk.N.attn_q ... ffn_down`, `output_norm`, `output`. GGUF tensor names are
shared by all llama.cpp architectures, so a GGUF GPT-2 (`attn_qkv`, `position_embd`) is read here
too. Shapes arrive in PyTorch order, so both namings store nn.Linear [out, in].
"""

from __future__ import annotations

from striate.anatomy.family import Family, Rule, layer_patterns, patterns

_NORMS = (
    r"input_layernorm|post_attention_layernorm|pre_feedforward_layernorm"
    r"|post_feedforward_layernorm|q_norm|k_norm|norm"
)
#: llama.cpp's names of the position embedding and of attention, the same in every architecture
GGUF_ATTENTION = (
    Rule(r"position_embd", "position_embedding"),
    Rule(r"attn_q", "attn_q"),
    Rule(r"attn_k", "attn_k"),
    Rule(r"attn_v", "attn_v"),
    Rule(r"attn_qkv", "attn_qkv"),
    Rule(r"attn_output", "attn_out"),
)
_GGUF_NORMS = r"attn_norm|ffn_norm|attn_q_norm|attn_k_norm|post_attention_norm|post_ffw_norm"


class Llama(Family):
    name = "llama"
    model_types = ("llama", "mistral", "qwen2", "qwen3", "smollm", "gemma", "olmo", "granite")
    rules = (
        # Hugging Face
        Rule(r"embed_tokens", "embedding"),
        Rule(r"self_attn\.q_proj", "attn_q"),
        Rule(r"self_attn\.k_proj", "attn_k"),
        Rule(r"self_attn\.v_proj", "attn_v"),
        Rule(r"self_attn\.o_proj", "attn_out"),
        Rule(r"mlp\.gate_proj", "ffn_gate"),
        Rule(r"mlp\.up_proj", "ffn_in"),
        Rule(r"mlp\.down_proj", "ffn_out"),
        # mixtures of experts (Mixtral w1/w3/w2, Qwen-MoE / DeepSeek experts.E.*_proj): every
        # expert is an FFN; per-layer FFN triples are left out where a layer has several
        Rule(r"experts\.\d+\.(?:gate_proj|w1)|shared_experts?\.gate_proj", "ffn_gate"),
        Rule(r"experts\.\d+\.(?:up_proj|w3)|shared_experts?\.up_proj", "ffn_in"),
        Rule(r"experts\.\d+\.(?:down_proj|w2)|shared_experts?\.down_proj", "ffn_out"),
        Rule(r"block_sparse_moe\.gate|mlp\.gate|shared_expert_gate", "other"),  # routers
        Rule(_NORMS, "norm"),
        Rule(r"lm_head", "lm_head"),
        Rule(r"score", "classifier"),
        # GGUF (llama.cpp)
        Rule(r"token_embd", "embedding"),
        *GGUF_ATTENTION,
        Rule(r"ffn_gate(?:_exps|_shexp)?", "ffn_gate"),  # _exps: experts stacked, 3-D
        Rule(r"ffn_up(?:_exps|_shexp)?", "ffn_in"),
        Rule(r"ffn_down(?:_exps|_shexp)?", "ffn_out"),
        Rule(r"ffn_gate_inp(?:_shexp)?", "other"),  # router
        Rule(_GGUF_NORMS + r"|output_norm", "norm"),
        Rule(r"output", "lm_head"),
    )
    known_other = patterns(r"rotary_emb\.inv_freq", r"rope_freqs\.weight")
    layer_patterns = layer_patterns(r"layers\.(\d+)", r"blk\.(\d+)")
