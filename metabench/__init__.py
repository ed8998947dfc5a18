"""metabench: a Gymnasium-style benchmark suite and task registry for meta-learning, on JAX.

>>> import jax, metabench
>>> env = metabench.make("sinusoid-5s")
>>> task = env.sample_task(jax.random.key(0), "train")

Importing metabench registers the built-in ids but imports no env module, no MuJoCo
and touches no dataset; the ids appear in gymnasium's registry as ``metabench/<id>`` once
gymnasium is imported (``metabench.gym_ids``).
"""

from __future__ import annotations

from metabench.env import CONTRACT_VERSION, MetaEnv
from metabench.errors import (
    ConfigError,
    DataError,
    MetabenchError,
    RegistrationError,
    UnknownIdError,
)
from metabench.learner import (
    Learner,
    LearnerConfig,
    learner_registry,
    make_learner,
    pprint_learners,
    register_learner,
)
from metabench.loading import LoadedRun, LoadError, load
from metabench.registry import make, pprint_registry, register, registry, spec
from metabench.spec import EnvSpec
from metabench.tasks import SupervisedTask

__version__ = "0.1.0"

__all__ = [
    "CONTRACT_VERSION",
    "ConfigError",
    "DataError",
    "EnvSpec",
    "Learner",
    "LearnerConfig",
    "LoadError",
    "LoadedRun",
    "MetaEnv",
    "MetabenchError",
    "RegistrationError",
    "SupervisedTask",
    "UnknownIdError",
    "__version__",
    "learner_registry",
    "load",
    "make",
    "make_learner",
    "pprint_learners",
    "register_learner",
    "pprint_registry",
    "register",
    "registry",
    "spec",
]

import metabench.baselines  # noqa: E402,F401  (registers the built-in learners; imports none)
import metabench.envs  # noqa: E402,F401  (registers the built-in ids; imports no env module)
from metabench.gym_ids import install as _install_gym_ids  # noqa: E402

_install_gym_ids()  # gymnasium ids metabench/<id>, registered once gymnasium is imported (metabench.gym_ids)
