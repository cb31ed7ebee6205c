"""Plain-torch module trees with the attribute names of nanoGPT, timm and torchvision.

Only the names and shapes matter (the models are built on the meta device, no weights are
allocated), so each module is the smallest thing that registers the same parameters and buffers
in the same order as the original. Used by make_lists.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class NanoBlock(nn.Module):
    """karpathy/nanoGPT model.py Block: ln_1, attn.{c_attn,c_proj}, ln_2, mlp.{c_fc,c_proj}."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(d, 3 * d)  # nn.Linear: [3d, d], not GPT-2's Conv1D [d, 3d]
        self.attn.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.c_proj = nn.Linear(4 * d, d)


def nanogpt(n_layer: int = 3, d: int = 40, vocab: int = 101, block_size: int = 37) -> nn.Module:
    gpt = nn.Module()
    gpt.transformer = nn.ModuleDict(
        {
            "wte": nn.Embedding(vocab, d),
            "wpe": nn.Embedding(block_size, d),
            "h": nn.ModuleList(NanoBlock(d) for _ in range(n_layer)),
            "ln_f": nn.LayerNorm(d),
        }
    )
    gpt.lm_head = nn.Linear(d, vocab, bias=False)
    gpt.transformer.wte.weight = gpt.lm_head.weight  # weight tying, both names stay in state_dict
    return gpt


class TimmBlock(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d)
        self.attn.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, hidden)
        self.mlp.fc2 = nn.Linear(hidden, d)


class TimmViT(nn.Module):
    """timm VisionTransformer: cls_token, pos_embed, patch_embed.proj, blocks.N, norm, head."""

    def __init__(self, d: int = 40, depth: int = 3, patch: int = 7, n_patches: int = 16) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, d))
        self.blocks = nn.Sequential(*(TimmBlock(d, 72) for _ in range(depth)))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 5)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )


def resnet18() -> nn.Module:
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(64)
    widths = [64, 128, 256, 512]
    cin = 64
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        setattr(
            net, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1))
        )
        cin = w
    net.fc = nn.Linear(512, 1000)
    return net


def vgg11() -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    net = nn.Module()
    net.features = nn.Sequential(*layers)
    net.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 1000),
    )  # fmt: skip
    return net


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision Conv2dNormActivation: .0 conv, .1 BatchNorm, .2 ReLU6."""
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = [] if t == 1 else [conv_bn(cin, hidden, 1)]
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)


def mobilenet_v2() -> nn.Module:
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    settings += [(6, 160, 3, 2), (6, 320, 1, 1)]
    features: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
    cin = 32
    for t, c, n, s in settings:
        for i in range(n):
            features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    features.append(conv_bn(cin, 1280, 1))
    net = nn.Module()
    net.features = nn.Sequential(*features)
    net.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))
    return net


def build() -> dict[str, tuple[str, Any]]:
    """stem -> (source description, module) for every replica."""
    src = f"plain torch {torch.__version__} replica of"
    with torch.device("meta"):
        return {
            "nanogpt": (f"{src} karpathy/nanoGPT GPT (bias=True)", nanogpt()),
            "vit_timm": (f"{src} timm VisionTransformer", TimmViT()),
            "resnet18": (f"{src} torchvision resnet18", resnet18()),
            "vgg11": (f"{src} torchvision vgg11", vgg11()),
            "mobilenet_v2": (f"{src} torchvision mobilenet_v2", mobilenet_v2()),
        }
