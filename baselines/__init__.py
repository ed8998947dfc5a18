"""The learner table: ids and string entry points of metabench's baseline learners."""

from __future__ import annotations

if __name__ != "metabench.baselines":  # pragma: no cover
    raise ImportError("import this package as metabench.baselines, not as a top-level 'baselines'")

from metabench.learner import learner_registry, register_learner  # noqa: E402

# -- ProtoNet, MAML, pretrain/fine-tune (baselines/protonet.py, maml.py, transfer.py) --------
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
    "maml-rl",
    "metabench.baselines.maml_rl:MamlRL",
    "MAML for RL: Gaussian MLP policy, VPG inner step, TRPO outer step (PPO-clip option) (Finn et al. 2017 sec. 5.3); `maml` on RL envs",
)
register_learner(
    "random-policy",
    "metabench.baselines.maml_rl:MamlRL",
    "untrained Gaussian MLP policy adapted with MAML-RL's inner loop and budget (the reference MAML must beat)",
    defaults={"meta_train": False},
)
register_learner(
    "pretrain-finetune",
    "metabench.baselines.transfer:PretrainFinetune",
    "pretrain on all tasks jointly, fine-tune with SGD (Finn et al. 2017 Fig. 2); from scratch for classification",
)

# -- learned update rules on the gradient-learner core (baselines/meta_lstm.py, turtle.py; seed 003) --
register_learner(
    "meta-lstm",
    "metabench.baselines.meta_lstm:MetaLSTM",
    "meta-learner LSTM: the weights are an LSTM's cell state (Ravi & Larochelle 2017; seed 003 eq. 3.3), first order",
)
register_learner(
    "meta-lstm-plus",
    "metabench.baselines.meta_lstm:MetaLSTM",
    "enhanced meta-learner LSTM: raw gradients in, second order, 8 updates (seed 003 Table 3.1 note 3)",
    defaults={"inputs": "grad", "first_order": False, "inner_steps": 8},
)
register_learner(
    "turtle",
    "metabench.baselines.turtle:Turtle",
    "TURTLE: stateless MLP update rule with per-parameter learning rates, second order (seed 003 eq. 3.7)",
)
register_learner(
    "turtle-fo",
    "metabench.baselines.turtle:Turtle",
    "first-order TURTLE (seed 003 Fig. 3.2, Table 3.1)",
    defaults={"first_order": True},
)

# -- evolution strategies as the meta-optimiser (baselines/es/, seed 000) ----------------------
register_learner(
    "es-protonet",
    "metabench.baselines.es.es_protonet:ESProtoNet",
    "ProtoNet trained by distributed ES, WSR estimator (seed 000 eq. 7-9; alpha=1, sigma=0.01)",
    defaults={"estimator": "wsr"},
)
register_learner(
    "fd-protonet",
    "metabench.baselines.es.es_protonet:ESProtoNet",
    "ProtoNet trained by finite differences, population = params + 1 (seed 000 II-G; cosine, lr 5e-3, Table IV)",
    defaults={"estimator": "fd", "population": 0, "distance": "cosine", "alpha": 5e-3},
)
register_learner(
    "es-maml",
    "metabench.baselines.es.es_maml:ESMAML",
    "MAML's initialisation trained by WSR evolution strategies (ES-MAML, Song et al. 2019; seed 000)",
    defaults={"estimator": "wsr", "candidate_batch": 1},
)
register_learner(
    "evosax-protonet",
    "metabench.baselines.es.es_protonet:ESProtoNet",
    "ProtoNet trained by any evosax distribution strategy (strategy=Open_ES, SNES, PGPE, ...)",
    defaults={"estimator": "evosax", "strategy": "Open_ES", "alpha": 1e-3},
)

# -- distributed MAML with weight generators (baselines/dmaml.py, seed 002) ---------------------
register_learner(
    "dmaml",
    "metabench.baselines.dmaml:DMAML",
    "distributed MAML: workers x epochs MAML steps from the common model, merged by a weight generator "
    "(seed 002 Algorithms 4-5), second order",
)
register_learner(
    "dmaml-fo",
    "metabench.baselines.dmaml:DMAML",
    "first-order DMAML, as the thesis trains (seed 002 section 5.3)",
    defaults={"first_order": True},
)

# -- transfer baselines (baselines/transfer.py; Chen et al. 2019, seed 003 Tables 3.1 / 3.4) ----------
_TRANSFER = "metabench.baselines.transfer:TransferLearner"
register_learner(
    "baseline",
    _TRANSFER,
    "Chen et al. 2019 Baseline: Conv-4 + linear head pre-trained on all base classes, new head fine-tuned on the support set",
)
register_learner(
    "finetune",
    _TRANSFER,
    "alias of baseline (seed 003's 'Finetuning')",
)
register_learner(
    "baseline-pp",
    _TRANSFER,
    "Chen et al. 2019 Baseline++: as baseline with the cosine head distLinear (learnable class-wise norm, scale 2/10)",
    defaults={"head": "cosine"},
)
learner_registry.spell("baseline++", "baseline-pp")  # Chen et al.'s name; '+' is not valid in an id
register_learner(
    "train-from-scratch",
    _TRANSFER,
    "Conv-4 + linear head from a random initialisation, trained on the support set only (seed 003 Table 3.1)",
    defaults={"init": "scratch", "finetune": "all"},
)
