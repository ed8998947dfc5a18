"""ES-MAML (Song et al. 2019, cited by seed 000): MAML's initialisation trained by ES.

The inner learner is ``metabench.baselines.maml.MAML`` unchanged; the fitness of a
candidate initialisation is minus ``MAML.meta_loss`` (query loss after the inner loop,
reduced over the meta-batch). No gradient flows through the inner loop, so the memory of
the meta-gradient does not grow with ``inner_steps`` (seed 000, section II-D/E); the inner
loop itself still takes ordinary gradients of the support loss.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax

from metabench.baselines.es.es_learner import ESLearner, es_config
from metabench.baselines.maml import MAML
from metabench.learner import LearnerConfig
from metabench.tasks import PRNGKey


class ESMAML(ESLearner):
    """MAML whose initialisation is the ES search mean."""

    inner_class = MAML
    # Supervised MAML only: MAML-RL's objective needs fresh rollouts per candidate (not built).
    kinds: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    Config: ClassVar[type[LearnerConfig]] = es_config(MAML.Config)

    def _meta_params(self, inner_state: Any) -> Any:
        return inner_state.params

    def _with_meta_params(self, inner_state: Any, params: Any) -> Any:
        return inner_state._replace(params=params)

    def _meta_loss(self, params: Any, tasks: Any, key: PRNGKey) -> jax.Array:
        return self.inner.meta_loss(params, tasks)[0]
