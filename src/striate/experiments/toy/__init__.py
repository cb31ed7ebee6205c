"""The lab's engine: toy models trained many at once, each batched over an instance axis.

instance.py   one model of a sweep, its random streams, how instances pack into groups
models.py     the toy models (ReLU output, linear, ReLU hidden, MLP, MLP with cross-entropy,
              unembedding)
metrics.py    superposition, dimensionality and the losses, batched
train.py      one group trained as one model (AdamW per instance)
sweep.py      a sweep: groups trained (here or on an executor), results as tables
lab.py        `Lab`: a lab setting's run directory (tables, summary, manifest, report)
"""
