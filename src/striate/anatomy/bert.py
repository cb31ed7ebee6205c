"""BERT-style encoders: BERT, RoBERTa, MiniLM, ELECTRA, DistilBERT (Hugging Face names), and
llama.cpp's names for them in GGUF files (`token_types`, `blk.N.attn_output_norm`, ...).

Names may carry a task prefix (`bert.`, `roberta.`, `distilbert.`) or none (a bare `BertModel`,
as sentence-transformers saves it); rules match the end of the module path, so both work.
Heads that read the final hidden state (pooler, MLM transform, classifiers) are "classifier";
the vocabulary projection is "lm_head".
"""

from __future__ import annotations

from striate.anatomy.family import Family, Rule, layer_patterns, patterns
from striate.anatomy.llama import GGUF_ATTENTION


class Bert(Family):
    name = "bert"
    model_types = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")
    rules = (
        Rule(r"embeddings\.(?:word_embeddings|token_type_embeddings)", "embedding"),
        Rule(r"embeddings\.position_embeddings", "position_embedding"),
        Rule(r"attention\.self\.query|attention\.q_lin", "attn_q"),
        Rule(r"attention\.self\.key|attention\.k_lin", "attn_k"),
        Rule(r"attention\.self\.value|attention\.v_lin", "attn_v"),
        Rule(r"attention\.output\.dense|attention\.out_lin", "attn_out"),
        Rule(r"intermediate\.dense|ffn\.lin1", "ffn_in"),
        Rule(r"output\.dense|ffn\.lin2", "ffn_out"),  # after attention.output.dense
        Rule(r"LayerNorm|layer_norm|sa_layer_norm|output_layer_norm|vocab_layer_norm", "norm"),
        Rule(r"cls\.predictions\.decoder|lm_head\.decoder|vocab_projector", "lm_head"),
        # the MLM bias stands alone (`cls.predictions.bias`, `lm_head.bias`): the vocab bias
        Rule(r"cls\.predictions|lm_head", "lm_head"),
        Rule(r"pooler\.dense|predictions\.transform\.dense|lm_head\.dense", "classifier"),
        Rule(r"vocab_transform|pre_classifier|classifier(?:\.dense|\.out_proj)?", "classifier"),
        Rule(r"cls\.seq_relationship|qa_outputs", "classifier"),
        # GGUF (llama.cpp's BERT: `general.architecture` bert); names end at the module
        Rule(r"token_embd|token_types", "embedding"),
        *GGUF_ATTENTION,
        Rule(r"ffn_up", "ffn_in"),
        Rule(r"ffn_down", "ffn_out"),
        Rule(r"token_embd_norm|attn_output_norm|layer_output_norm|output_norm", "norm"),
        Rule(r"cls\.output|cls", "classifier"),
    )
    known_other = patterns(r"embeddings\.position_ids", r"embeddings\.token_type_ids")
    layer_patterns = layer_patterns(r"layer\.(\d+)", r"blk\.(\d+)")
