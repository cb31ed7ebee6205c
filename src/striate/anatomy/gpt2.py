"""GPT-2: Hugging Face (`[transformer.]h.N.attn.c_attn`, Conv1D) and nanoGPT (same names, Linear).

Hugging Face's Conv1D stores weights [in, out]; nanoGPT uses nn.Linear, [out, in], under the
very same names. Which one a checkpoint holds is read from the shapes of the expanding
matrices (`c_attn` is d -> 3d, `c_fc` d -> 4d): their input side is the shorter one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from striate.anatomy.family import Family, Rule, layer_patterns, patterns
from striate.anatomy.records import READS, WRITES
from striate.anatomy.specimen import View

# modules that are Conv1D in Hugging Face GPT-2 (lm_head / score are nn.Linear there too)
_CONV1D = re.compile(r"(?:^|\.)(?:c_attn|q_attn|c_proj|c_fc)$")
_EXPANDING = re.compile(r"(?:^|\.)(?:attn\.c_attn|mlp\.c_fc)$")


class GPT2(Family):
    name = "gpt2"
    model_types = ("gpt2",)
    rules = (
        Rule(r"wte", "embedding"),
        Rule(r"wpe", "position_embedding"),
        Rule(r"ln_\d+|ln_f", "norm"),
        Rule(r"attn\.c_attn", "attn_qkv"),
        Rule(r"attn\.c_proj", "attn_out"),
        Rule(r"mlp\.c_fc", "ffn_in"),
        Rule(r"mlp\.c_proj", "ffn_out"),
        Rule(r"lm_head", "lm_head"),
        Rule(r"score", "classifier"),
    )
    # causal-mask buffers that older transformers (and nanoGPT without flash attention) saved
    known_other = patterns(r"attn\.bias", r"attn\.masked_bias")
    layer_patterns = layer_patterns(r"h\.(\d+)")

    def layouts(self, view: View, roles: Mapping[str, str]) -> dict[str, str | None]:
        out = super().layouts(view, roles)
        layout = "conv1d" if _stores_in_out(view) else "linear"
        for name, param in view.params.items():
            role = roles[name]
            matrix = role in READS or role in WRITES
            if matrix and param.kind == "weight" and _CONV1D.search(param.module):
                out[name] = layout
        return out


def _stores_in_out(view: View) -> bool:
    """True for Conv1D storage: an expanding matrix's first axis is its shorter (input) one.

    With only square matrices to go on, Hugging Face's Conv1D is assumed.
    """
    for name, param in view.params.items():
        shape = view.spec.shapes[name]
        expanding = param.kind == "weight" and _EXPANDING.search(param.module) is not None
        if expanding and len(shape) == 2 and shape[0] != shape[1]:
            return shape[0] < shape[1]
    return True
