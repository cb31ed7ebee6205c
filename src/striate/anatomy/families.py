"""The family registry: every family reads the specimen, the best fit wins.

To add a family, write a module with a `Family` subclass and put an instance in `FAMILIES`.
"""

from __future__ import annotations

from striate.anatomy.bert import Bert
from striate.anatomy.convnet import ConvNet
from striate.anatomy.family import Family
from striate.anatomy.generic import Generic
from striate.anatomy.gpt2 import GPT2
from striate.anatomy.llama import Llama
from striate.anatomy.specimen import Specimen, View
from striate.anatomy.vit import ViT

FAMILIES: tuple[Family, ...] = (GPT2(), Bert(), Llama(), ViT(), ConvNet())
FALLBACK: Family = Generic()
#: a family must beat this score (recognised fraction, x1.5 when the config names it)
MIN_SCORE = 0.5


def choose(spec: Specimen) -> tuple[Family, View]:
    """The best-fitting family and its reading of the specimen; the generic one if none fits."""
    best: tuple[Family, View] | None = None
    best_score = MIN_SCORE
    for family in FAMILIES:
        view = family.read(spec)
        score = family.detect(view)
        if score > best_score:
            best, best_score = (family, view), score
    return best or (FALLBACK, FALLBACK.read(spec))
