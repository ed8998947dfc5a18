"""ES-ProtoNet, FD-ProtoNet and evosax-ProtoNet (seed 000): ProtoNet's embedding trained by ES.

The inner learner is ``metabench.baselines.protonet.ProtoNet`` unchanged; the fitness of a
candidate embedding is minus ``ProtoNet.loss`` (the mean query cross-entropy over the
step's episodes), as in seed 000 section II-C. Every ProtoNet option (``channels``,
``distance``, ``episode_map`` ...) and every ES option (``ESOptions``) is a config field.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax

from metabench.baselines.es.es_learner import ESLearner, es_config
from metabench.baselines.protonet import ProtoNet
from metabench.learner import LearnerConfig
from metabench.tasks import PRNGKey


class ESProtoNet(ESLearner):
    """ProtoNet whose Conv-4 parameters are the ES search mean."""

    inner_class = ProtoNet
    kinds: ClassVar[frozenset[str]] = ProtoNet.kinds
    any_ways: ClassVar[bool] = ProtoNet.any_ways  # seed 000: train way 5/10/20, test 5
    Config: ClassVar[type[LearnerConfig]] = es_config(ProtoNet.Config)

    def _meta_params(self, inner_state: Any) -> Any:
        return inner_state.params

    def _with_meta_params(self, inner_state: Any, params: Any) -> Any:
        return inner_state._replace(params=params)

    def _meta_loss(self, params: Any, tasks: Any, key: PRNGKey) -> jax.Array:
        return self.inner.loss(params, tasks)[0]
