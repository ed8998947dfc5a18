"""The gradient-learner core and its update rules (seed 003 ch. 3): MAML unchanged, Theorem 1
(meta-learner LSTM subsumes MAML), TURTLE subsumes MAML, second-order meta-gradients of TURTLE
and the enhanced LSTM against float64 central differences, option errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
from metabench.baselines._inner import rule_adapt
from metabench.baselines._synthetic import synthetic_env
from metabench.baselines.backbones import supervised_loss
from metabench.baselines.update_rules import SGD
from metabench.baselines.update_rules.meta_lstm import MetaLSTM, gradient_descent_params
from metabench.baselines.update_rules.turtle import gradient_passthrough_params
from metabench.errors import ConfigError

tmap = jax.tree_util.tree_map
leaves = jax.tree_util.tree_leaves


def _img():
    return synthetic_env(5, 1, 3, classes=25, per_class=6, size=16)


def _f64(tree):
    return tmap(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _landed_maml_step(learner, state, tasks):
    """MAML's meta-step as landed before the core existed (b0640e1): its own SGD inner loop."""
    c = learner.config

    def task_loss(p, t):
        for _ in range(c.inner_steps):
            g = jax.grad(learner.loss)(p, *t.support)
            if c.first_order:
                g = jax.lax.stop_gradient(g)
            p = tmap(lambda a, b: a - c.inner_lr * b, p, g)
        return supervised_loss(learner.kind, learner.model.apply(p, t.query[0]), t.query[1])

    def meta(p):
        n = leaves(tasks)[0].shape[0]
        if c.task_map == "vmap":
            losses = jax.vmap(task_loss, (None, 0))(p, tasks)
        else:
            losses = jnp.stack([task_loss(p, tmap(lambda a: a[i], tasks)) for i in range(n)])
        return jnp.mean(losses)

    grads = jax.grad(meta)(state.params)
    updates, opt_state = learner.optimizer.update(grads, state.opt_state, state.params)
    import optax

    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)


@pytest.mark.parametrize("learner_id", ["maml", "maml-fo"])
@pytest.mark.parametrize("family", ["sinusoid", "images"])
def test_maml_on_the_core_equals_the_landed_maml_bit_for_bit(learner_id, family):
    env = metabench.make("sinusoid-5s") if family == "sinusoid" else _img()
    kw = dict(inner_steps=2, meta_batch=3) if family == "sinusoid" else dict(channels=4, inner_steps=2, meta_batch=2)
    learner = metabench.make_learner(learner_id, env, **kw)
    new = ref = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    landed = jax.jit(lambda s, t: _landed_maml_step(learner, s, t))
    for i in range(3):
        tasks = env.sample_tasks(jax.random.key(10 + i), learner.config.meta_batch)
        new, ref = step(new, tasks, jax.random.key(i))[0], landed(ref, tasks)
    for a, b in zip(leaves(new.params), leaves(ref.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_maml_config_fields_and_hash_inputs_unchanged():
    """The fields (and so the config hashes of committed results) of MAML stay as landed."""
    learner = metabench.make_learner("maml", metabench.make("sinusoid-5s"))
    assert learner.config.hash_dict() == {
        "meta_batch": 25, "inner_lr": 0.01, "inner_steps": 1, "eval_steps": 10, "eval_inner_lr": 0.01,
        "meta_lr": 1e-3, "first_order": False, "meta_reduce": "mean", "channels": 64, "depth": 4,
        "hidden": (40, 40), "inner_scan": False, "task_map": "vmap", "pool": "max",
    }


# -- subsumption ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["sinusoid", "images"])
@pytest.mark.parametrize("inputs", ["proc", "grad"])
def test_theorem_1_meta_lstm_reproduces_gradient_descent(family, inputs):
    """Seed 003 Theorem 1: W_f = 0, large b_f, W_i = 0, b_i = -ln((1-a)/a) make eq. 3.3 eq. 3.1."""
    env = metabench.make("sinusoid-5s") if family == "sinusoid" else _img()
    learner = metabench.make_learner("maml", env, channels=4, inner_lr=0.05)
    theta = learner.model.init(jax.random.key(0))
    if family == "sinusoid":  # away from the tiny init, so the steps are not negligible
        theta = tmap(lambda p: p * 30.0 + 0.1, theta)
    task = env.sample_task(jax.random.key(1), "train")
    rule = MetaLSTM(inputs=inputs)
    phi = gradient_descent_params(rule, 0.05, jax.random.key(2))
    got = jax.jit(lambda t: rule_adapt(learner.loss, rule, phi, t, task.support, 4))(theta)
    want = jax.jit(lambda t: rule_adapt(learner.loss, SGD(0.05), (), t, task.support, 4))(theta)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves(want), leaves(theta)))
    assert moved > 1e-3
    for a, b in zip(leaves(got), leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=2e-7)
    # and a random LSTM is not gradient descent (the check can fail)
    rnd = jax.jit(lambda t: rule_adapt(learner.loss, rule, rule.init(jax.random.key(3), t), t, task.support, 4))(theta)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves(rnd), leaves(want))) > 1e-4


@pytest.mark.parametrize("family", ["sinusoid", "images"])
def test_turtle_with_a_pass_through_network_is_maml(family):
    """g_phi(grad) = -grad and alpha = lr: eq. 3.7 is eq. 3.1; the second-order meta-gradients
    with respect to theta agree too (same meta-objective, seed 003 Algorithm 9)."""
    env = metabench.make("sinusoid-5s") if family == "sinusoid" else _img()
    kw = dict(inner_steps=3, meta_batch=2, channels=4, meta_reduce="mean")
    lr = 0.01 if family == "sinusoid" else 0.05
    maml = metabench.make_learner("maml", env, inner_lr=lr, **kw)
    turtle = metabench.make_learner("turtle", env, **kw)
    theta = maml.model.init(jax.random.key(0))
    if family == "sinusoid":  # away from the tiny init (still a converging inner loop)
        theta = tmap(lambda p: p * 10.0 + 0.1, theta)
    phi = gradient_passthrough_params(turtle.update_rule(True), lr, theta)
    tasks = env.sample_tasks(jax.random.key(1), 2)
    g_maml, (l_maml, _) = jax.jit(lambda p: maml.meta_grad(p, tasks))(theta)
    g_turtle, (l_turtle, _) = jax.jit(lambda p: turtle.meta_grad(p, tasks))({"theta": theta, "phi": phi})
    assert float(l_maml) < 1e3
    np.testing.assert_allclose(float(l_turtle), float(l_maml), rtol=1e-6)
    for a, b in zip(leaves(g_turtle["theta"]), leaves(g_maml)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert any(float(jnp.max(jnp.abs(x))) > 0 for x in leaves(g_turtle["phi"]))  # phi is learned too


# -- meta-gradients against finite differences ---------------------------------------------------


def _fd_check(learner_id, fo_id, extra):
    env = metabench.make("sinusoid-5s")
    kw = dict(inner_steps=3, meta_batch=2, hidden=(6,), **extra)
    learner = metabench.make_learner(learner_id, env, **kw)
    fo = metabench.make_learner(fo_id, env, **kw)
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    with jax.enable_x64(True):
        params, tasks64 = _f64(state.params), _f64(tasks)
        params["theta"] = tmap(lambda p: p * 30.0 + 0.1, params["theta"])
        f = jax.jit(lambda p: learner.meta_loss(p, tasks64)[0])
        g = jax.jit(lambda p: learner.meta_grad(p, tasks64)[0])(params)
        g_fo = jax.jit(lambda p: fo.meta_grad(p, tasks64)[0])(params)
        flat, treedef = jax.tree_util.tree_flatten(params)
        eps = 1e-6
        for k in jax.random.split(jax.random.key(2), 3):
            ks = jax.random.split(k, len(flat))
            v = [jax.random.normal(kk, x.shape, jnp.float64) for kk, x in zip(ks, flat)]
            norm = jnp.sqrt(sum(jnp.sum(x * x) for x in v))
            v = jax.tree_util.tree_unflatten(treedef, [x / norm for x in v])
            fd = (f(tmap(lambda p, d: p + eps * d, params, v)) - f(tmap(lambda p, d: p - eps * d, params, v))) / (2 * eps)
            dot = lambda a: sum(jnp.vdot(x, y) for x, y in zip(leaves(a), leaves(v)))  # noqa: E731
            ad, ad_fo = float(dot(g)), float(dot(g_fo))
            assert abs(ad - float(fd)) <= 1e-5 * max(abs(float(fd)), 1e-3), (learner_id, ad, float(fd))
            assert abs(ad_fo - float(fd)) > 100 * abs(ad - float(fd)), (fo_id, ad_fo, float(fd))


def test_turtle_second_order_meta_gradient_matches_central_differences():
    _fd_check("turtle", "turtle-fo", {"layers": (5, 5)})


def test_enhanced_meta_lstm_second_order_meta_gradient_matches_central_differences():
    _fd_check("meta-lstm-plus", "meta-lstm", {"inputs": "grad", "lstm_hidden": 4, "meta_grad_clip": 0.0})


# -- defaults, state size, bad input ----------------------------------------------------------------


def test_defaults_follow_the_papers():
    sin, img = metabench.make("sinusoid-5s"), _img()
    t = metabench.make_learner("turtle", img, channels=4).config
    assert (t.inner_steps, t.eval_steps, tuple(t.layers), t.first_order, t.inputs, t.meta_batch) == (
        5, 5, (20,) * 5, False, "grad", 32)
    m = metabench.make_learner("meta-lstm", img, channels=4).config
    assert (m.inner_steps, m.meta_batch, m.first_order, m.inputs, m.meta_grad_clip) == (8, 1, True, "proc", 0.25)
    p = metabench.make_learner("meta-lstm-plus", sin).config
    assert (p.inner_steps, p.eval_steps, p.first_order, p.inputs) == (8, 8, False, "grad")
    assert metabench.make_learner("turtle-fo", sin, inner_steps=2).config.eval_steps == 2


def test_lstm_state_is_the_gates_and_first_layer_only():
    """No copy of the parameters in the rule state: 2 * hidden + 2 floats per parameter."""
    env = _img()
    learner = metabench.make_learner("meta-lstm", env, channels=4)
    theta = learner.model.init(jax.random.key(0))
    rule = learner.update_rule(True)
    state = rule.init_state(rule.init(jax.random.key(1), theta), theta)
    n = sum(x.size for x in leaves(theta))
    assert sum(x.size for x in leaves(state)) == n * (2 * 20 + 2) == n * rule.state_floats_per_param()


@pytest.mark.parametrize("learner_id", ["meta-lstm", "meta-lstm-plus", "turtle", "turtle-fo"])
def test_bad_options_are_clear_errors(learner_id):
    sin = metabench.make("sinusoid-5s")
    with pytest.raises(ConfigError, match=r"inputs='gard' is not a choice\. Did you mean: 'grad'"):  # Literal field
        metabench.make_learner(learner_id, sin, inputs="gard")
    with pytest.raises(ConfigError, match="unknown config key 'inptus'"):
        metabench.make_learner(learner_id, sin, inptus="grad")
    with pytest.raises(ConfigError, match="inner_steps"):
        metabench.make_learner(learner_id, sin, inner_steps=0)
    with pytest.raises(ConfigError, match="does not support rl"):
        metabench.make_learner(learner_id, metabench.make("point-nav"))
    with pytest.raises(ConfigError, match="meta_batch=100000"):
        metabench.make_learner(learner_id, _img(), meta_batch=100000, first_order=False)


def test_memory_check_counts_the_meta_network_also_first_order():
    """First-order TURTLE still backpropagates through g_phi at every step: its activations
    (inputs + 2 x 100 hidden values per parameter) are counted; first-order MAML keeps none."""
    from metabench.baselines.gradient_learner import check_memory

    env = _img()
    fo_turtle = metabench.make_learner("turtle-fo", env, meta_batch=2)
    assert fo_turtle.update_rule(True).activation_floats_per_param() == 1 + 2 * 100
    fo_maml = metabench.make_learner("maml-fo", env, meta_batch=100000)  # no activations kept: never refused
    check_memory(fo_maml, env)
    with pytest.raises(ConfigError, match=r"turtle: first-order meta-training keeps at least .*meta_batch=100000"):
        metabench.make_learner("turtle-fo", env, meta_batch=100000)


def test_turtle_layers_and_lstm_hidden_must_be_positive():
    sin = metabench.make("sinusoid-5s")
    for layers in ((), (20, 0)):
        with pytest.raises(ConfigError, match="layers"):
            metabench.make_learner("turtle", sin, layers=layers)
    with pytest.raises(ConfigError, match="lstm_hidden"):
        metabench.make_learner("meta-lstm", sin, lstm_hidden=0)


@pytest.mark.parametrize("learner_id", ["meta-lstm", "turtle"])
def test_meta_training_lowers_the_query_loss_of_a_fixed_batch(learner_id):
    """Theta and phi are both trained: 100 meta-steps on one fixed batch of tasks fit it."""
    env = metabench.make("sinusoid-5s")
    learner = metabench.make_learner(learner_id, env, inner_steps=2, meta_batch=8, meta_lr=1e-2)
    state = learner.init(jax.random.key(0))
    step = jax.jit(learner.meta_train_step)
    tasks = env.sample_tasks(jax.random.key(1), 8)
    first = None
    for _ in range(100):
        state, m = step(state, tasks, jax.random.key(2))
        first = float(m["loss"]) if first is None else first
    assert np.isfinite(float(m["loss"])) and float(m["loss"]) < 0.8 * first, (first, float(m["loss"]))
    phi0 = learner.init(jax.random.key(0)).params["phi"]
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves(state.params["phi"]), leaves(phi0))) > 1e-3
    curve = jax.jit(learner.eval_curve)(state, jax.tree_util.tree_map(lambda x: x[0], tasks), jax.random.key(0))
    assert curve.shape == (3,)
