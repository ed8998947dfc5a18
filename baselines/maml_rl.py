"""MAML for reinforcement learning (Finn et al. 2017, section 5.3; Algorithm 3 of seed 002).

For each task ``T_i`` of a meta-batch (Algorithm 3):

1. sample ``episodes`` trajectories ``D_i`` with the Gaussian MLP policy ``pi_theta``;
2. inner step (vanilla policy gradient, REINFORCE with the linear feature baseline fitted
   on ``D_i``, ``metabench.baselines._rl_baseline``)::

       theta'_i = theta - inner_lr * grad_theta L_i(theta; D_i),
       L_i(theta; D) = - sum_t mask_t log pi_theta(a_t | s_t) A_t / sum_t mask_t

   (``inner_steps`` times, re-sampling with the current adapted policy before each step);
3. sample ``episodes`` trajectories ``D'_i`` with ``pi_theta'_i``.

Outer step (``outer``): ``"trpo"`` -- Finn et al.'s choice -- maximises the likelihood-ratio
surrogate of the *adapted* policies, ``mean_i sum_t mask_t rho_t A'_t / sum_t mask_t``,
subject to ``KL(pi_{theta'_i, old} || pi_{theta'_i(theta)}) <= max_kl`` averaged over the
post-update states of all tasks pooled (their ``reduce_mean(concat(kls))``; ``kl_weighting``),
by conjugate gradient on Fisher-vector products and a backtracking line search
(``metabench.baselines._trpo``; rllab's settings: 10 CG iterations, damping 1e-5, ratio 0.8,
15 backtracks; ``max_kl = 0.01`` as their meta step size). The Fisher-vector products
differentiate through the inner update, as the gradient does. Finn et al.'s code multiplies
by rllab's finite-difference product instead, which in float32 vanishes at gradient-sized
vectors and turns the step into a KL-scaled plain gradient step on a trained policy
(``hvp="finite_difference"`` reproduces it; ``metabench.baselines._trpo``; measured in
``docs/results.md``). ``"ppo"``: the PPO
clipped surrogate (Schulman et al. 2017) of the adapted policies,
``- mean_i sum_t mask_t min(rho_t A'_t, clip(rho_t, 1 - clip, 1 + clip) A'_t) / sum_t mask_t``
with ``rho_t = pi_{theta'_i(theta)}(a_t | s_t) / pi_{theta'_i, old}(a_t | s_t)``, minimised
with Adam (``meta_lr``) for ``outer_epochs`` epochs on the same samples. ``theta'_i(theta)``
is recomputed from the fixed ``D_i`` in every epoch, so the meta-gradient differentiates
through the inner update (second order, Hessian-vector products of the inner loss;
``first_order=True`` drops them, eq. 3.7). Like Finn et al.'s code it ignores the
dependence of the sampling distribution of ``D_i`` on ``theta``. The clipped surrogate
(ProMP's "MAML-PPO", Rothfuss et al. 2019, whose ``clip = 0.3``, 5 epochs, Adam ``1e-3``
are its defaults here) needs no conjugate gradient or line search.

Defaults follow Finn et al. (section 5.3 and their rllab scripts), except on Nav2d (below):
policy MLP 2 x 100 ReLU with a state-independent log-std (initial std 1) acting in
``[-1, 1]^A`` rescaled to the env's action box (rllab's ``normalize``), 1 inner step in
training, 20 trajectories per task, discount 0.99, meta-batch 20 (JAX nav envs) / 40
(MuJoCo), evaluation after 0..3 adaptation steps (their Fig. 5). Step sizes left at
``None`` are resolved per env from their scripts (``learner.config`` records the resolved values):

==============  ========  =============  =============  =============  ================
env             inner_lr  eval_inner_lr  eval_later_lr  eval_episodes  eval_batch_steps
==============  ========  =============  =============  =============  ================
point-nav       0.5       0.5            0.25           200 (a cap)    4000
Nav2d           0.01      0.003          0.003          ``episodes``   0
others          0.1       0.1            0.1            ``episodes``   0
==============  ========  =============  =============  =============  ================

(point-nav: ``maml_trpo_point.py`` trains with a fast step size of 0.5;
``test_maml_point.py`` adapts by rllab's VPG with ``batch_size=4000`` -- 4,000 env steps
per adaptation step, i.e. whole episodes until that many steps are collected, so an
episode that reaches the goal early makes room for more episodes -- the first step at 0.5
and the later ones at 0.25 (its optimizer's ``init_learning_rate`` and ``learning_rate``),
and reports the mean return over those episodes. Nav2d: chosen on the validation tasks,
see ``_FAMILY_DEFAULTS``; no published setting exists.)

Nav2d (seed 002 defines it but ran no RL experiment on it, so nothing published to follow):
a *linear* Gaussian policy (``hidden=()``) acting in displacements (``squash``, below), PPO
outer step at Adam 0.03 and VPG step 0.01 (0.003 at evaluation; ``_FAMILY_DEFAULTS`` has the
measurements). In displacement units the walk to the goal is linear in the observation,
``u = 12.75 (goal_n - agent_n)``, and must be precise to 0.01 near the goal; the 2 x 100 MLP
did not get there in 2,000 meta-steps (validation best -233.7 on nav2d-hard), the linear
policy passes +300 within 3,000 (3 min on 2 CPU cores; ``docs/results.md``).

Action squashing (``squash``, left at ``None``: resolved per env). Finn et al.'s envs clip
the Gaussian sample to the action box (``"clip"``). Nav2d, which seed 002 defines but ran no
RL experiment on, uses what was measured best (``docs/results.md``): at the same budget (300
PPO meta-steps, nav2d-easy, MLP policy) the clipped policy ends at -449.9 after 3 adaptation
steps, the tanh-squashed one at -161.1 (with clipping, a step-length mean beyond the box
makes every longer sample equally good, and the step-length std grew instead of
shrinking). Both Nav2d envs act in ``"displacement"``s (the env's ``displacement_to_action``:
walking to the goal is then linear in the observation, where the heading is an ``atan2`` of
it): with the MLP, -248.3 after 3 steps at 1,000 PPO meta-steps on nav2d-hard against tanh's
-332.2; with the linear policy it is the only squash under which the optimum is linear.

Evaluation batches. ``eval_batch_steps = 0``: every adaptation step samples
``eval_episodes`` episodes and the curve is their mean return. ``eval_batch_steps = B >
0`` (rllab's batch semantics, Finn et al.'s test protocol): ``eval_episodes`` episodes are
sampled in a fixed order and the first ones are kept while the steps taken before them
sum to less than ``B`` (each kept episode is whole, as rllab's sampler finishes the path
it is on); the inner step and the curve use the kept episodes only. Because episodes that
end early (point-nav: the goal reached) leave room for more episodes, the mean return
over a step budget weighs successful episodes more than the fixed-count mean does
(``--set eval_batch_steps=0 --set eval_episodes=40`` gives the fixed-count protocol).
``eval_envs = n > 0`` samples the batch as rllab's ``VectorizedSampler`` does instead
(``vector_budget``): ``n`` envs in lockstep, each starting its next episode when one ends,
until the ended episodes hold ``B`` steps; the episodes still running then are dropped, so
short (successful) episodes weigh more again. Finn et al.'s repository has versions of its
``BatchPolopt`` with either sampler, so which one made the published point-nav curve is not
certain; point-nav keeps the sequential one (``docs/results.md`` has both).
``eval_episodes`` is then a cap: if all of them together are shorter than ``B`` the batch
has fewer than ``B`` steps (point-nav: a mean length under 20 steps).

JAX envs (``env.functional``): rollouts are ``lax.scan`` inside the step, so the whole
``meta_train_step`` and ``eval_curve`` jit (the harness jits and vmaps them). MuJoCo
envs are simulated on the host: ``jittable = False`` tells the harness to call
``meta_train_step`` un-jitted and to evaluate with ``eval_curves`` (one vector rollout
per adaptation step for the whole batch of tasks); only the gradient computations are
jitted there.

The same learner is reached as ``maml`` on RL envs (``MAML`` dispatches here; shared config
names ``meta_batch``, ``inner_lr``, ``inner_steps``, ``eval_steps``, ``eval_inner_lr``,
``meta_lr``, ``first_order``), as ``maml-rl`` (all RL options settable) and as
``random-policy`` (``meta_train=False``: the untrained initialisation, adapted with the
same inner loop and budget).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from metabench.baselines._policy import init_policy, log_prob, policy_mean, sample_action
from metabench.baselines._rl_baseline import advantages
from metabench.baselines._trpo import finite_difference_hvp, trpo_step
from metabench.baselines.maml import MamlState
from metabench.errors import ConfigError
from metabench.learner import Learner, LearnerConfig
from metabench.rollout import Trajectories, episode_returns, rollout, rollout_tasks, tanh_box_map, unit_box_map
from metabench.tasks import PRNGKey


#: Per-family settings (module docstring table); ``inner_lr`` for the rest: 0.1. point-nav:
#: Finn et al.'s scripts. Nav2d (no published RL setting; docs/results.md): a linear
#: Gaussian policy acting in displacements, VPG step 0.01, PPO at Adam 0.03, chosen on the
#: validation tasks of nav2d-hard (best of 3,000 PPO steps, clean tree 0e8b2e1): linear
#: policy at inner / meta step 0.1 / 0.01: -93.8; 0.1 / 0.03: -59.0 (adaptation made it
#: worse: test +66.4 before, -85.2 after 3 steps); 0.01 / 0.03: +337.7; 0.01 / 0.1: +315.5;
#: the 2 x 100 MLP's best in 2,000 steps at meta step 1e-3: -233.7, in 800 at 1e-2: -193.4.
#: Evaluation step 0.003, on the validation tasks after 3 steps (best checkpoints of 10,000
#: steps on nav2d-hard / 3,000 on nav2d-easy, trained at 0.01): 0.01 / 0.003 / 0.001 give
#: +488 / +589 / +551 on hard (+452 before adaptation), 0.01 / 0.003 give +671 / +786 on easy
#: (+496 before).
#: Adam 1e-3 (ProMP's) stays the PPO step size elsewhere. ``steps``: the meta-training budget
#: of a run that sets none (``MamlRL.default_steps``).
_NAV2D_DEFAULTS: dict[str, Any] = {
    "squash": "displacement", "hidden": (), "inner_lr": 0.01, "eval_inner_lr": 0.003, "meta_lr": 0.03, "outer": "ppo",
    "steps": 10_000,
}
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "point-nav": {"inner_lr": 0.5, "eval_later_lr": 0.25, "eval_episodes": 200, "eval_batch_steps": 4000, "steps": 100,
                  "val_every": 10},
    "nav2d-easy": _NAV2D_DEFAULTS,
    "nav2d-hard": _NAV2D_DEFAULTS,
}


OUTER_STEPS = ("trpo", "ppo")
#: how a policy sample reaches the env's action box (``Config.squash``)
SQUASHES = ("clip", "tanh", "displacement")
#: TRPO curvature products (``Config.hvp``)
HVPS = ("exact", "finite_difference")
#: how TRPO's mean KL weighs the post-update steps (``Config.kl_weighting``)
KL_WEIGHTINGS = ("task", "pooled")


def _gauss_kl(mu0: jax.Array, log_std0: jax.Array, mu1: jax.Array, log_std1: jax.Array) -> jax.Array:
    """``KL(N(mu0, e^{2 log_std0}) || N(mu1, e^{2 log_std1}))`` of diagonal Gaussians, summed over the last axis."""
    var0, var1 = jnp.exp(2.0 * log_std0), jnp.exp(2.0 * log_std1)
    return jnp.sum(log_std1 - log_std0 + (var0 + jnp.square(mu0 - mu1)) / (2.0 * var1) - 0.5, axis=-1)


def _family_defaults(env: Any) -> dict[str, Any]:
    return {"inner_lr": 0.1, **_FAMILY_DEFAULTS.get(env.spec.name, {})}


def _as_sizes(hidden: Any) -> tuple[Any, ...]:
    """``hidden`` as a tuple (a JSON list or a CLI tuple); a single size ``n`` is ``(n,)``."""
    return tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)


def _tree_index(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[i], tree)


class MamlRL(Learner):
    """MAML for RL with a Gaussian MLP policy, VPG inner steps and a TRPO or PPO outer step (module docstring)."""

    kinds: ClassVar[frozenset[str]] = frozenset({"rl"})

    @dataclasses.dataclass(frozen=True)
    class Config(LearnerConfig):
        """MAML-RL hyperparameters (Finn et al. 2017 section 5.3 unless noted).

        meta_batch: tasks per meta-update (0: 20 for JAX envs, 40 for MuJoCo).
        inner_lr, inner_steps: VPG step size alpha and steps in meta-training.
        eval_steps, eval_inner_lr: adaptation steps / step size of the first one at evaluation
            (``eval_curve`` has ``eval_steps + 1`` entries); ``eval_inner_lr`` defaults to ``inner_lr``.
        eval_later_lr: step size of evaluation adaptation steps 2, 3, ... (default
            ``eval_inner_lr``; Finn et al.'s point-nav test halves it).
        eval_batch_steps: > 0: evaluation batches of whole episodes until this many env steps
            (rllab's ``batch_size``; ``eval_episodes`` is the cap), 0: ``eval_episodes``
            episodes (module docstring). JAX envs only.
        eval_envs: with ``eval_batch_steps``: 0 samples the batch's episodes one after another
            (``step_budget``), ``n > 0`` in ``n`` envs stepped in lockstep as rllab's vectorized
            sampler does (``vector_budget``; ``eval_episodes`` must be a multiple of ``n``).
        outer: ``"trpo"`` (Finn et al.) or ``"ppo"`` (module docstring); ``None``: the env's default
            (``"ppo"`` on Nav2d, ``"trpo"`` elsewhere).
        max_kl, cg_iters: TRPO's trust region (mean KL of the adapted policies) and CG iterations.
        kl_weighting: how that mean weighs the post-update steps (``None``: ``"pooled"`` with
            the TRPO outer step, unused by PPO): ``"pooled"`` (one mean over the valid steps of
            all tasks together, as Finn et al.'s ``MAMLNPO`` does with ``reduce_mean(concat(kls))``,
            so a task whose episodes end early weighs less) or ``"task"`` (each task's masked
            mean over its steps, then the mean over tasks; the default before 2026-11-30,
            configuration ``2366e11e`` on point-nav).
        hvp: TRPO's curvature product: ``"exact"`` (the Fisher-vector product ``J^T M J v``,
            i.e. the Hessian of the KL at the old parameters) or ``"finite_difference"``
            (Finn et al.'s code: rllab's ``FiniteDifferenceHvp`` in float32, which on a trained
            policy makes the step a KL-scaled plain gradient step; ``metabench.baselines._trpo``).
        meta_lr: Adam step size of the outer PPO step (``None``: the env's default, 1e-3 but on
            Nav2d); outer_epochs: Adam steps per batch of samples;
            clip: PPO clip range (ProMP's MAML-PPO values).
        first_order: drop the second-order term (eq. 3.7).
        hidden: policy hidden sizes (``None``: the env's default, Finn et al.'s ``(100, 100)`` but on
            Nav2d; ``()`` is a linear policy); log_std_init: initial log standard deviation.
        tanh_mean: bound the policy mean by ``tanh`` before the noise is added (rllab's
            ``output_nonlinearity``; ``metabench.baselines._policy``).
        skip: add a linear path from the observation to the policy mean (zero at first;
            ``metabench.baselines._policy``).
        episodes: trajectories per task and adaptation step (training); eval_episodes: at
            evaluation (0: ``episodes``); horizon: steps per trajectory (0: ``env.max_steps``).
        train_episode_cap: 0 samples ``episodes`` trajectories per task in training; ``n > 0``
            samples the batch as Finn et al.'s ``BatchMAMLPolopt`` does (one env per task, all
            stepped in lockstep until the ended episodes hold ``episodes * horizon *
            meta_batch`` steps; ``lockstep_budget``), with at most ``n`` episodes per task
            (``>= episodes``). JAX envs only.
        discount: gamma of the returns the baseline and advantages use.
        meta_train: False keeps the initialisation (the ``random-policy`` reference).
        normalize_actions: the policy acts in ``[-1, 1]^A``, rescaled to the env's action box
            (rllab's ``normalize``, which Finn et al. wrapped every env in); matters for
            ``point-nav``, whose box is ``[-0.1, 0.1]^2``: without it the initial std of 1 is
            ten times the box and nearly every action is clipped to a corner.
        squash: ``"clip"`` (rllab, Finn et al.; the default but for Nav2d): the Gaussian
            sample is clipped to the box; ``"tanh"``: it is squashed by ``tanh`` into the box
            (``metabench.rollout.tanh_box_map``; the trajectories keep the unsquashed sample,
            so the losses are unchanged; it maps into the box whatever ``normalize_actions``
            says); ``"displacement"`` (Nav2d only): the sample is a planar displacement in
            units of the largest step, turned into (heading, step length) by the env's
            ``displacement_to_action`` (parameter-free, so the losses are unchanged too).
            ``None``: the env's default (module docstring).
        """

        meta_batch: int = 0
        inner_lr: float | None = None
        inner_steps: int = 1
        eval_steps: int = 3
        eval_inner_lr: float | None = None
        eval_later_lr: float | None = None
        eval_batch_steps: int | None = None
        eval_envs: int = 0
        outer: Literal["trpo", "ppo"] | None = None
        max_kl: float = 0.01
        cg_iters: int = 10
        hvp: Literal["exact", "finite_difference"] = "exact"
        kl_weighting: Literal["task", "pooled"] | None = None
        meta_lr: float | None = None
        outer_epochs: int = 5
        clip: float = 0.3
        first_order: bool = False
        hidden: tuple[int, ...] | None = None
        log_std_init: float = 0.0
        tanh_mean: bool = False
        skip: bool = False
        episodes: int = 20
        train_episode_cap: int = 0
        eval_episodes: int = 0
        horizon: int = 0
        discount: float = 0.99
        meta_train: bool = True
        normalize_actions: bool = True
        squash: Literal["clip", "tanh", "displacement"] | None = None

        #: ``hvp`` and ``kl_weighting`` came after the published results; at their defaults they
        #: stay out of their hash (TRPO resolves ``kl_weighting`` to ``"pooled"``, which is hashed)
        hash_omits_default: ClassVar[frozenset[str]] = frozenset({"hvp", "kl_weighting"})

    def __init__(self, env: Any, config: Config, mesh: jax.sharding.Mesh | None = None):
        super().__init__(env, config, mesh)
        host = not getattr(env, "functional", True)
        fam = _family_defaults(env)
        c = dataclasses.replace(
            config,
            meta_batch=config.meta_batch or (40 if host else 20),
            eval_episodes=config.eval_episodes or fam.get("eval_episodes", config.episodes),
            horizon=config.horizon or int(env.max_steps),
            inner_lr=fam["inner_lr"] if config.inner_lr is None else config.inner_lr,
            squash=fam.get("squash", "clip") if config.squash is None else config.squash,
            outer=fam.get("outer", "trpo") if config.outer is None else config.outer,
            meta_lr=fam.get("meta_lr", 1e-3) if config.meta_lr is None else config.meta_lr,
            hidden=_as_sizes(fam.get("hidden", (100, 100)) if config.hidden is None else config.hidden),
            eval_batch_steps=fam.get("eval_batch_steps", 0) if config.eval_batch_steps is None else config.eval_batch_steps,
        )
        if c.outer == "trpo" and c.kl_weighting is None:  # Finn et al.'s MAMLNPO
            c = dataclasses.replace(c, kl_weighting="pooled")
        if c.eval_inner_lr is None:  # the family's only when no training step size was set by hand
            own = config.inner_lr is not None
            c = dataclasses.replace(c, eval_inner_lr=c.inner_lr if own else fam.get("eval_inner_lr", c.inner_lr))
        if c.eval_later_lr is None:  # the family's schedule only when no step size was set by hand
            own_lr = config.inner_lr is not None or config.eval_inner_lr is not None
            later = None if own_lr else fam.get("eval_later_lr")
            c = dataclasses.replace(c, eval_later_lr=c.eval_inner_lr if later is None else later)
        for name in ("inner_lr", "eval_inner_lr", "eval_later_lr"):
            if not getattr(c, name) >= 0.0:
                raise ConfigError(f"maml-rl: {name} must be >= 0, got {getattr(c, name)}")
        for name, low in (("meta_batch", 1), ("inner_steps", 1), ("eval_steps", 0), ("outer_epochs", 1),
                          ("episodes", 1), ("eval_episodes", 1), ("horizon", 1), ("eval_batch_steps", 0),
                          ("eval_envs", 0), ("train_episode_cap", 0)):
            if getattr(c, name) < low:
                raise ConfigError(f"maml-rl: {name} must be >= {low}, got {getattr(c, name)}")
        if c.eval_batch_steps > 0 and host:
            raise ConfigError(f"maml-rl: eval_batch_steps (rllab step budgets) needs a JAX env; {env.spec.id} is "
                              "simulated on the host: use eval_episodes")
        if c.train_episode_cap and host:
            raise ConfigError(f"maml-rl: train_episode_cap (lockstep training batches) needs a JAX env; {env.spec.id} "
                              "is simulated on the host: use episodes")
        if c.train_episode_cap and c.train_episode_cap < c.episodes:
            raise ConfigError(f"maml-rl: train_episode_cap ({c.train_episode_cap}) must be >= episodes ({c.episodes}): "
                              "it caps the episodes a task may contribute to a budget of episodes * horizon steps")
        if not c.meta_lr > 0.0:
            raise ConfigError(f"maml-rl: meta_lr must be > 0, got {c.meta_lr}")
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in c.hidden):
            raise ConfigError(f"maml-rl: hidden must be a tuple of positive layer sizes (() for a linear "
                              f"policy), got {config.hidden!r}")
        if c.eval_envs and not c.eval_batch_steps:
            raise ConfigError(f"maml-rl: eval_envs={c.eval_envs} says how a step-budget batch is sampled, but "
                              f"{env.spec.id} evaluates on a fixed episode count (eval_batch_steps=0): "
                              "set eval_batch_steps too, or drop eval_envs")
        if c.eval_envs and c.eval_episodes % c.eval_envs:
            raise ConfigError(f"maml-rl: eval_episodes ({c.eval_episodes}) must be a multiple of eval_envs "
                              f"({c.eval_envs}): each env runs eval_episodes / eval_envs episodes")
        if not 0.0 < c.discount <= 1.0:
            raise ConfigError(f"maml-rl: discount must lie in (0, 1], got {c.discount}")
        if not c.clip > 0.0:
            raise ConfigError(f"maml-rl: clip must be > 0, got {c.clip}")
        if c.outer not in OUTER_STEPS:
            raise ConfigError(f"maml-rl: unknown outer step {c.outer!r}; choose one of {', '.join(OUTER_STEPS)}")
        if c.squash not in SQUASHES:
            raise ConfigError(f"maml-rl: unknown squash {c.squash!r}; choose one of {', '.join(SQUASHES)}")
        if c.kl_weighting is not None and c.kl_weighting not in KL_WEIGHTINGS:
            raise ConfigError(f"maml-rl: unknown kl_weighting {c.kl_weighting!r}; "
                              f"choose one of {', '.join(KL_WEIGHTINGS)}")
        if c.kl_weighting is not None and c.outer != "trpo":
            raise ConfigError(f"maml-rl: kl_weighting={c.kl_weighting!r} weighs TRPO's trust region, but the outer "
                              f"step is {c.outer!r}: use --set outer=trpo, or drop kl_weighting")
        if c.hvp not in HVPS:
            raise ConfigError(f"maml-rl: unknown hvp {c.hvp!r}; choose one of {', '.join(HVPS)}")
        if c.hvp != "exact" and c.outer != "trpo":
            raise ConfigError(f"maml-rl: hvp={c.hvp!r} is TRPO's curvature product, but the outer step is "
                              f"{c.outer!r}: set outer='trpo' too, or drop hvp")
        if not c.max_kl > 0.0 or c.cg_iters < 1:
            raise ConfigError(f"maml-rl: TRPO needs max_kl > 0 and cg_iters >= 1, got {c.max_kl} and {c.cg_iters}")
        if len(env.observation_space.shape) != 1 or len(env.action_space.shape) != 1:
            raise ConfigError(f"maml-rl: needs flat observations and actions, {env.spec.id} has "
                              f"{env.observation_space.shape} and {env.action_space.shape}")
        self.config = c
        self.host = host
        #: meta-steps of a run that sets none: Finn et al.'s 100 TRPO iterations on point-nav
        #: (``maml_trpo_point.py``'s ``n_itr``), 10,000 on Nav2d (docs/results.md); 1 for the
        #: random-policy reference, which has nothing to train
        self.default_steps = fam.get("steps") if c.meta_train else 1
        #: point-nav: validate every 10 of the 100 meta-steps (the best-validation checkpoint is
        #: evaluated; docs/results.md measures what that changes)
        self.default_val_every = fam.get("val_every")
        #: False for host-simulated envs: the harness must not jit meta_train_step / eval_curve
        self.jittable = not host
        #: policy action -> env action (None: the identity; see ``normalize_actions``)
        if c.squash == "tanh":
            self.action_map = tanh_box_map(env.action_space)
        elif c.squash == "displacement":
            to_action = getattr(env, "displacement_to_action", None)
            if to_action is None:
                raise ConfigError(f"maml-rl: squash='displacement' needs an env whose action is a heading and a "
                                  f"step length (nav2d-easy, nav2d-hard); {env.spec.id} has none: use 'clip' or 'tanh'")
            self.action_map = to_action
        else:
            self.action_map = unit_box_map(env.action_space) if c.normalize_actions else None
        self.obs_dim = int(env.observation_space.shape[0])
        self.act_dim = int(env.action_space.shape[0])
        self.optimizer = optax.adam(c.meta_lr)
        #: the inner step on a batch of tasks (per-task params); jitted for the host path, inlined under jit
        self._inner_batch = jax.jit(jax.vmap(self._inner_step_fo, in_axes=(0, 0, None)))
        if host:
            self._returns = jax.jit(lambda t: episode_returns(t).mean(-1))
            self._post_stats = jax.jit(jax.vmap(self._post_stats_one))
            self._outer = jax.jit(self._outer_update)

    @classmethod
    def from_maml_config(cls, env: Any, config: Any, mesh: Any = None) -> MamlRL:
        """Build from a supervised ``MAML.Config`` (the ``maml`` id on an RL env).

        The shared names carry over where set; the supervised backbone options (``channels``,
        ``depth``, ``hidden`` left at its supervised default, ...) do not apply: the policy is
        the env's (Finn et al.'s 2 x 100 MLP, linear on Nav2d) unless ``hidden`` was changed.
        ``meta_lr`` at the supervised default (1e-3) also means the env's default.
        """
        from metabench.baselines.maml import MAML

        if getattr(config, "backbone", None) is not None:
            raise ConfigError(
                f"maml on the RL env {env.spec.id!r} is MAML for RL, whose policy is the env's Gaussian MLP "
                "(its sizes: hidden); backbone= selects the network of supervised envs only, drop it"
            )
        default = MAML.Config()
        kw: dict[str, Any] = {"meta_batch": config.meta_batch, "first_order": config.first_order}
        if config.meta_lr != default.meta_lr:  # else MamlRL's per-env default
            kw["meta_lr"] = config.meta_lr
        for name in ("inner_lr", "inner_steps", "eval_steps", "eval_inner_lr"):  # None: MamlRL's per-env default
            if getattr(config, name) is not None:
                kw[name] = getattr(config, name)
        if tuple(config.hidden) != tuple(default.hidden):
            kw["hidden"] = tuple(config.hidden)
        return cls(env, cls.Config(**kw), mesh)

    def eval_batch(self, traj: Trajectories) -> Trajectories:
        """The evaluation episodes one adaptation step keeps (``eval_batch_steps``, ``eval_envs``)."""
        c = self.config
        if c.eval_envs > 0:  # only with eval_batch_steps > 0 (checked in __init__)
            return vector_budget(traj, c.eval_batch_steps, c.eval_envs)
        return step_budget(traj, c.eval_batch_steps)

    def eval_lr(self, s: int) -> float:
        """Step size of evaluation adaptation step ``s`` (0-based)."""
        return self.config.eval_inner_lr if s == 0 else self.config.eval_later_lr

    # -- losses on one task's trajectories [E, T] -----------------------------------------------
    def inner_loss(self, params: Any, traj: Trajectories, baseline: jax.Array | None = None) -> jax.Array:
        """REINFORCE surrogate with the task's linear feature baseline (normalised advantages).

        ``baseline``: weights of a baseline fitted elsewhere (``_rl_baseline.advantages``);
        default: fitted on ``traj``.
        """
        mask = jnp.asarray(traj.mask, jnp.float32)
        adv = advantages(traj.obs, traj.rewards, mask, self.config.discount, weights=baseline)
        lp = log_prob(params, traj.obs, traj.actions)
        return -jnp.sum(mask * lp * adv) / jnp.maximum(mask.sum(), 1.0)

    def inner_step(self, params: Any, traj: Trajectories, lr: float, first_order: bool = False) -> Any:
        """``theta - lr * grad inner_loss(theta; traj)`` (differentiable unless ``first_order``)."""
        g = jax.grad(self.inner_loss)(params, traj)
        if first_order:
            g = jax.lax.stop_gradient(g)
        return jax.tree_util.tree_map(lambda p, gi: p - lr * gi, params, g)

    def _inner_step_fo(self, params: Any, traj: Trajectories, lr: float) -> Any:
        return self.inner_step(params, traj, lr, True)

    def adapt_chain(self, params: Any, pre: Trajectories) -> Any:
        """``theta'_i(theta)``: the training inner steps on fixed samples ``pre`` ``[K, E, T]``."""
        for k in range(self.config.inner_steps):
            params = self.inner_step(params, _tree_index(pre, k), self.config.inner_lr, self.config.first_order)
        return params

    def ppo_loss(self, params: Any, pre: Trajectories, post: Trajectories, old_logp: jax.Array, adv: jax.Array) -> jax.Array:
        """Clipped surrogate of the adapted policy ``theta'_i(params)`` on the post-update samples of one task."""
        return self.surrogate(self.adapt_chain(params, pre), post, old_logp, adv)

    def surrogate(self, adapted: Any, post: Trajectories, old_logp: jax.Array, adv: jax.Array) -> jax.Array:
        """PPO clipped surrogate (to minimise) of policy ``adapted`` on samples ``post [E, T]``."""
        mask = jnp.asarray(post.mask, jnp.float32)
        ratio = jnp.exp(log_prob(adapted, post.obs, post.actions) - old_logp)
        eps = self.config.clip
        surr = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * adv)
        return -jnp.sum(mask * surr) / jnp.maximum(mask.sum(), 1.0)

    def _post_stats_one(self, adapted: Any, post: Trajectories) -> tuple[jax.Array, jax.Array]:
        mask = jnp.asarray(post.mask, jnp.float32)
        old = jax.lax.stop_gradient(log_prob(adapted, post.obs, post.actions))
        return old, advantages(post.obs, post.rewards, mask, self.config.discount)

    # -- sampling (JAX envs: one task, jittable) ----------------------------------------------------
    def _collect_one(self, params: Any, task: Any, key: PRNGKey) -> tuple[Trajectories, Trajectories, Any]:
        """``(pre [K, E, T], post [E, T], adapted params)`` of one task: Algorithm 3 lines 5-8."""
        c = self.config
        pres = []
        for k in range(c.inner_steps):
            traj = rollout(self.env, sample_action, params, task, jax.random.fold_in(key, k), c.episodes, c.horizon,
                           self.action_map)
            pres.append(traj)
            params = self._inner_step_fo(params, traj, c.inner_lr)
        post = rollout(self.env, sample_action, params, task, jax.random.fold_in(key, c.inner_steps), c.episodes, c.horizon,
                       self.action_map)
        pre = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *pres)
        return pre, post, params

    def _outer_update(self, state: MamlState, pre: Trajectories, post: Trajectories, old_logp: jax.Array,
                      adv: jax.Array) -> tuple[MamlState, jax.Array]:
        """The outer step on a batch of tasks' samples ``pre [N, K, E, T]``, ``post [N, E, T]``."""
        if self.config.outer == "trpo":
            return self._trpo_update(state, pre, post, old_logp, adv)
        return self._ppo_update(state, pre, post, old_logp, adv)

    def trpo_problem(self, state: MamlState, pre: Trajectories, post: Trajectories, old_logp: jax.Array,
                     adv: jax.Array) -> tuple[jax.Array, Any, Any, Any, Any]:
        """``(theta_0, loss, kl, fvp, unravel)`` of the TRPO meta-step on flat parameters.

        loss: minus the likelihood-ratio surrogate of the adapted policies (mean over tasks of the
        masked mean over steps); kl: mean KL(old adapted || new adapted) over the same steps,
        weighted per ``kl_weighting``;
        fvp: its Hessian at theta_0 times a vector, as J^T M J v through the adapted policies'
        outputs (M: 1 / var on the means, 2 on the log-stds, no cross terms -- the Hessian of
        the Gaussian KL in its outputs at theta_0, where it equals the Hessian of ``kl``).
        """
        flat0, unravel = ravel_pytree(state.params)
        mask = jnp.asarray(post.mask, jnp.float32)  # [N, E, T]
        denom = jnp.maximum(mask.sum((1, 2)), 1.0)

        def adapted(flat: jax.Array) -> Any:
            return jax.vmap(self.adapt_chain, (None, 0))(unravel(flat), pre)

        def outputs(flat: jax.Array) -> tuple[jax.Array, jax.Array]:
            new = adapted(flat)
            return jax.vmap(policy_mean)(new, post.obs), new["log_std"]  # [N, E, T, A], [N, A]

        (old_mu, old_ls), jvp_fn = jax.linearize(outputs, flat0)
        old_mu, old_ls = jax.lax.stop_gradient((old_mu, old_ls))
        vjp_fn = jax.linear_transpose(jvp_fn, flat0)  # J^T from the same linearisation: one primal pass

        def loss(flat: jax.Array) -> jax.Array:
            ratio = jnp.exp(jax.vmap(log_prob)(adapted(flat), post.obs, post.actions) - old_logp)
            return -jnp.mean(jnp.sum(mask * ratio * adv, (1, 2)) / denom)

        pooled = self.config.kl_weighting == "pooled"

        def kl(flat: jax.Array) -> jax.Array:
            mu, ls = outputs(flat)
            k = _gauss_kl(old_mu, old_ls[:, None, None, :], mu, ls[:, None, None, :])
            if pooled:  # one mean over all tasks' valid steps
                return jnp.sum(mask * k) / jnp.maximum(mask.sum(), 1.0)
            return jnp.mean(jnp.sum(mask * k, (1, 2)) / denom)  # each task's mean, then their mean

        # each step's weight in ``kl`` (for ``fvp``; ``kl`` keeps its own expression so the "task"
        # weighting stays bit for bit what it was before ``kl_weighting`` existed)
        w = mask / jnp.maximum(mask.sum(), 1.0) if pooled else mask / denom[:, None, None] / mask.shape[0]

        inv_var = jnp.exp(-2.0 * old_ls)[:, None, None, :]

        def fvp(v: jax.Array) -> jax.Array:
            d_mu, d_ls = jvp_fn(v)
            return vjp_fn((w[..., None] * inv_var * d_mu, 2.0 * w.sum((1, 2))[:, None] * d_ls))[0]

        return flat0, loss, kl, fvp, unravel

    def _trpo_update(self, state: MamlState, pre: Trajectories, post: Trajectories, old_logp: jax.Array,
                     adv: jax.Array) -> tuple[MamlState, jax.Array]:
        """TRPO on the adapted policies (module docstring); returns the surrogate after the step."""
        c = self.config
        flat0, loss, kl, fvp, unravel = self.trpo_problem(state, pre, post, old_logp, adv)
        fd = c.hvp == "finite_difference"
        if fd:
            fvp = finite_difference_hvp(jax.grad(kl), flat0)
        res = trpo_step(loss, kl, flat0, fvp=fvp, max_kl=c.max_kl, cg_iters=c.cg_iters, fresh_curvature=fd)
        return MamlState(unravel(res.theta), state.opt_state, state.step + 1), res.loss_after

    def _ppo_update(self, state: MamlState, pre: Trajectories, post: Trajectories, old_logp: jax.Array,
                    adv: jax.Array) -> tuple[MamlState, jax.Array]:
        """``outer_epochs`` Adam steps on the mean clipped surrogate over tasks; returns the last epoch's loss."""

        def loss_fn(p: Any) -> jax.Array:
            return jnp.mean(jax.vmap(self.ppo_loss, (None, 0, 0, 0, 0))(p, pre, post, old_logp, adv))

        def epoch(carry: tuple[Any, Any], _: Any) -> tuple[tuple[Any, Any], jax.Array]:
            params, opt_state = carry
            loss, g = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = self.optimizer.update(g, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(epoch, (state.params, state.opt_state), None,
                                                   length=self.config.outer_epochs)
        return MamlState(params, opt_state, state.step + 1), losses[-1]

    # -- the contract ---------------------------------------------------------------------------------
    def init(self, key: PRNGKey) -> MamlState:
        c = self.config
        params = init_policy(key, self.obs_dim, self.act_dim, tuple(c.hidden), c.log_std_init, c.tanh_mean, c.skip)
        return MamlState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def meta_train_step(self, state: MamlState, tasks: Any, key: PRNGKey) -> tuple[MamlState, dict]:
        """One meta-update on ``meta_batch`` tasks; metrics: ``loss`` (the last epoch's surrogate),
        ``return_pre`` / ``return_post`` (mean episode return before / after the inner steps)."""
        c = self.config
        if not c.meta_train:
            zero = jnp.zeros((), jnp.float32)
            return state._replace(step=state.step + 1), {"loss": zero, "return_pre": zero, "return_post": zero}
        if self.host:
            return self._host_train_step(state, tasks, key)
        n = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        if c.train_episode_cap:
            pre, post, adapted = self._collect_tasks(state.params, tasks, key, c.train_episode_cap,
                                                     budget=c.episodes * c.horizon * n)
        else:
            pre, post, adapted = jax.vmap(self._collect_one, (None, 0, 0))(state.params, tasks, jax.random.split(key, n))
        old_logp, adv = jax.vmap(self._post_stats_one)(adapted, post)
        new, loss = self._outer_update(state, pre, post, old_logp, adv)
        ret_pre = mean_episode_return(_tree_index_axis1(pre, 0)).mean()
        return new, {"loss": loss, "return_pre": ret_pre, "return_post": mean_episode_return(post).mean()}

    def _collect_tasks(self, params: Any, tasks: Any, key: PRNGKey, n_episodes: int,
                       budget: int = 0) -> tuple[Trajectories, Trajectories, Any]:
        """``(pre [N, K, E, T], post [N, E, T], adapted params)`` of a batch of tasks at once.

        Sampling round ``k`` is ``rollout_tasks(..., fold_in(key, k), n_episodes)`` with the
        per-task policies. ``budget > 0`` cuts every batch by ``lockstep_budget`` (pooled over
        the tasks, so it needs them all before the inner step: ``train_episode_cap``). Host envs
        (``budget = 0``) and JAX envs both go through here; under jit the conversions are no-ops.
        """
        c = self.config
        n = int(np.shape(jax.tree_util.tree_leaves(tasks)[0])[0])
        params = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), params)

        def sample(p: Any, k: int) -> Trajectories:
            traj = rollout_tasks(self.env, sample_action, p, tasks, jax.random.fold_in(key, k), n_episodes, c.horizon,
                                 per_task_policy=True, action_map=self.action_map)
            traj = jax.tree_util.tree_map(jnp.asarray, traj)
            return lockstep_budget(traj, budget) if budget else traj

        pres = []
        for k in range(c.inner_steps):
            pres.append(sample(params, k))
            params = self._inner_batch(params, pres[-1], c.inner_lr)
        post = sample(params, c.inner_steps)
        pre = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *pres)  # [N, K, E, T]
        return pre, post, params

    def _host_train_step(self, state: MamlState, tasks: Any, key: PRNGKey) -> tuple[MamlState, dict]:
        pre, post, params = self._collect_tasks(state.params, tasks, key, self.config.episodes)
        old_logp, adv = self._post_stats(params, post)
        new, loss = self._outer(state, pre, post, old_logp, adv)
        return new, {"loss": loss, "return_pre": self._returns(_tree_index_axis1(pre, 0)).mean(),
                     "return_post": self._returns(post).mean()}

    # -- evaluation -----------------------------------------------------------------------------------
    def adaptation_trajectories(self, state: MamlState, task: Any, key: PRNGKey) -> Trajectories:
        """``Trajectories [eval_steps + 1, eval_episodes, T]``: samples of the policy after 0..S steps.

        Step ``s`` samples ``eval_episodes`` trajectories with the current (adapted) policy
        from ``fold_in(key, s)``, then takes one inner step on them (Finn et al. Fig. 5).
        JAX envs only (jittable, vmappable over tasks); host envs: ``eval_curves``.
        """
        if self.host:
            raise ConfigError(f"{self.env.spec.id} is simulated on the host: use eval_curves(state, tasks, keys)")
        c = self.config
        params, out = state.params, []
        for s in range(c.eval_steps + 1):
            traj = rollout(self.env, sample_action, params, task, jax.random.fold_in(key, s), c.eval_episodes, c.horizon,
                           self.action_map)
            traj = self.eval_batch(traj)
            out.append(traj)
            if s < c.eval_steps:
                params = self._inner_step_fo(params, traj, self.eval_lr(s))
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *out)

    def eval_curve(self, state: MamlState, task: Any, key: PRNGKey) -> jax.Array:
        """``float32[eval_steps + 1]``: mean return after 0, 1, ..., ``eval_steps`` adaptation steps."""
        if self.host:
            task = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], task)
            return jnp.asarray(self.eval_curves(state, task, jnp.stack([key]))[0])
        return mean_episode_return(self.adaptation_trajectories(state, task, key)).astype(jnp.float32)

    def eval_curves(self, state: MamlState, tasks: Any, keys: PRNGKey) -> np.ndarray:
        """``float32[N, eval_steps + 1]`` for a batch of tasks (the harness's path for host envs).

        JAX envs: ``vmap(eval_curve)``. Host envs: one vector rollout of ``N * eval_episodes``
        envs per adaptation step, seeded by ``fold_in(keys[0], s)`` (so a task's curve depends
        on the batch it is evaluated in; the harness's batches are fixed).
        """
        if not self.host:
            return np.asarray(jax.jit(jax.vmap(self.eval_curve, in_axes=(None, 0, 0)))(state, tasks, keys))
        c = self.config
        n = int(np.shape(jax.tree_util.tree_leaves(tasks)[0])[0])
        params = jax.block_until_ready(jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), state.params))
        curves = []
        for s in range(c.eval_steps + 1):
            traj = rollout_tasks(self.env, sample_action, params, tasks, jax.random.fold_in(keys[0], s),
                                 c.eval_episodes, c.horizon, per_task_policy=True, action_map=self.action_map)
            traj = jax.tree_util.tree_map(jnp.asarray, traj)
            curves.append(np.asarray(self._returns(traj)))
            if s < c.eval_steps:
                params = self._inner_batch(params, traj, self.eval_lr(s))
        return np.stack(curves, axis=1).astype(np.float32)

    def adapt(self, state: MamlState, support: Any, key: PRNGKey) -> Any:
        """Policy parameters after ``eval_steps`` adaptation steps on task ``support`` (RL: the task)."""
        if self.host:
            raise ConfigError(f"{self.env.spec.id} is simulated on the host: use eval_curves(state, tasks, keys)")
        c = self.config
        params = state.params
        for s in range(c.eval_steps):
            traj = rollout(self.env, sample_action, params, support, jax.random.fold_in(key, s), c.eval_episodes,
                           c.horizon, self.action_map)
            traj = self.eval_batch(traj)
            params = self._inner_step_fo(params, traj, self.eval_lr(s))
        return params

    def predict(self, state: MamlState, adapted: Any, x: jax.Array) -> jax.Array:
        """Mean env action ``float32[..., A]`` of the adapted policy for observations ``x``."""
        mean = policy_mean(adapted, x)
        return mean if self.action_map is None else self.action_map(mean)


def step_budget(traj: Trajectories, budget: int) -> Trajectories:
    """Keep the leading episodes of ``traj [..., E, T]`` whose predecessors took < ``budget`` steps.

    rllab's batch sampling (whole episodes until ``budget`` env steps); the others get mask 0
    (returns, baselines and losses all weigh steps by the mask). ``budget = 0``: ``traj`` unchanged.
    """
    if budget <= 0:
        return traj
    mask = jnp.asarray(traj.mask, jnp.float32)
    lengths = mask.sum(-1)
    before = jnp.cumsum(lengths, axis=-1) - lengths
    return traj._replace(mask=mask * (before < budget).astype(jnp.float32)[..., None])


def vector_budget(traj: Trajectories, budget: int, n_envs: int) -> Trajectories:
    """The episodes of ``traj [..., E, T]`` that rllab's vectorized sampler would keep for ``budget`` steps.

    ``n_envs`` envs step in lockstep and each starts its next episode on the step after the
    last one ends (episode ``e`` is the ``e // n_envs``-th of env ``e % n_envs``); after every
    step the episodes that have ended are counted, and sampling stops at the first step ``t*``
    at which they hold ``>= budget`` steps; episodes still running then are dropped
    (``VectorizedSampler.obtain_samples`` of Finn et al.'s ``maml_rl``). Short episodes are
    therefore over-represented compared with ``step_budget``. The dropped episodes get mask 0.
    An env that runs out of its ``E / n_envs`` episodes before ``t*`` makes the batch a cap
    (as ``step_budget`` is when all ``E`` episodes take fewer than ``budget`` steps).
    """
    mask = jnp.asarray(traj.mask, jnp.float32)
    *lead, n_ep, _ = mask.shape
    if n_ep % n_envs:
        raise ConfigError(f"vector_budget: {n_ep} episodes do not split over {n_envs} envs")
    lengths = mask.sum(-1)
    ends = jnp.cumsum(lengths.reshape(*lead, n_ep // n_envs, n_envs), axis=-2).reshape(*lead, n_ep)
    order = jnp.argsort(ends, axis=-1)  # episodes by the step they end on
    sorted_ends = jnp.take_along_axis(ends, order, -1)
    done_steps = jnp.cumsum(jnp.take_along_axis(lengths, order, -1), axis=-1)
    reached = done_steps >= budget  # after the step that ends the i-th earliest episode
    first = jnp.take_along_axis(sorted_ends, jnp.argmax(reached, -1)[..., None], -1)[..., 0]
    t_star = jnp.where(reached.any(-1), first, jnp.inf)
    return traj._replace(mask=mask * (ends <= t_star[..., None]).astype(jnp.float32)[..., None])


def lockstep_budget(traj: Trajectories, budget: int) -> Trajectories:
    """The episodes of ``traj [N, E, T]`` that Finn et al.'s MAML training sampler keeps for ``budget`` steps.

    ``BatchMAMLPolopt`` runs one env per task (``n_envs = meta_batch_size``) through
    ``VectorizedSampler``: task ``i``'s episodes run one after another in env ``i``, all envs
    step in lockstep, and sampling stops once the ended episodes of *all* tasks hold
    ``budget = batch_size * max_path_length * meta_batch_size`` steps; episodes still running
    then are dropped (mask 0). A task whose episodes end early (point-nav: the goal reached)
    therefore contributes more, shorter episodes. ``vector_budget`` with the tasks as envs.
    """
    mask = jnp.asarray(traj.mask, jnp.float32)
    n, e = mask.shape[:2]
    flat = jnp.swapaxes(mask, 0, 1).reshape(e * n, mask.shape[-1])  # episode j is env j % n's (j // n)-th
    kept = vector_budget(Trajectories(None, None, None, None, flat), budget, n).mask
    return traj._replace(mask=jnp.swapaxes(kept.reshape(e, n, -1), 0, 1))


def mean_episode_return(traj: Trajectories) -> jax.Array:
    """Mean return over the episodes of ``traj [..., E, T]`` that took a step (``step_budget`` drops some)."""
    mask = jnp.asarray(traj.mask, jnp.float32)
    kept = (mask[..., 0] > 0).astype(jnp.float32)
    return (episode_returns(traj) * kept).sum(-1) / jnp.maximum(kept.sum(-1), 1.0)


def _tree_index_axis1(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[:, i], tree)


__all__ = ["MamlRL", "lockstep_budget", "mean_episode_return", "step_budget", "vector_budget"]
