"""The learner table: ids and string entry points of metabench's baseline learners."""

from __future__ import annotations

if __name__ != "metabench.baselines":  # pragma: no cover
    raise ImportError("import this package as metabench.baselines, not as a top-level 'baselines'")

from metabench.learner import register_learner  # noqa: E402

# -- ProtoNet, MAML, pretrain/fine-tune (baselines/protonet.py, maml.py, finetune.py) --------
register_learner(
    "protonet", "metabench.baselines.protonet:ProtoNet", "Prototypical Networks, -squared Euclidean (Snell et al. 2017)"
)
register_learner(
    "protonet-cosine",
    "metabench.baselines.protonet:ProtoNet",
    "Prototypical Networks with scaled cosine similarity (seed 000)",
    defaults={"distance": "cosine"},
)
register_learner("maml", "metabench.baselines.maml:MAML", "second-order MAML (Finn et al. 2017)")
register_learner(
    "maml-fo", "metabench.baselines.maml:MAML", "first-order MAML (eq. 3.7 of seed 002)", defaults={"first_order": True}
)
register_learner(
    "pretrain-finetune",
    "metabench.baselines.finetune:PretrainFinetune",
    "pretrain on all tasks jointly, fine-tune with SGD (Finn et al. 2017 Fig. 2); from scratch for classification",
)
