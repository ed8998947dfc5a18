"""Transfer baselines (baselines/transfer.py) and the non-episodic view they pre-train on.

Synthetic Omniglot-shaped envs (``_synthetic``), tiny networks (``channels=4``) and few
fine-tuning epochs keep this fast; the image-fixture tests build miniImageNet / CUB in their
published formats (tests/fixtures_images.py).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metabench
import metabench_tests_fixtures_images as fx  # registered by tests/conftest.py
from metabench import augment as A
from metabench.baselines import transfer as T
from metabench.baselines._synthetic import synthetic_env
from metabench.errors import ConfigError
from metabench.testing import check_examples, task_digest

ROOT = Path(__file__).resolve().parents[2]
TINY = {"channels": 4, "ft_epochs": 3, "batch_size": 8}




@pytest.fixture(scope="module")
def env() -> Any:
    """5-way 1-shot, 3 queries; 15 base classes x 4 rotations (9 x 4 = 36 training classes), 8 images each."""
    return synthetic_env(5, 1, 3, classes=15, per_class=8, rotations=True)


@pytest.fixture(scope="module")
def env5s() -> Any:
    return synthetic_env(3, 5, 2, classes=15, per_class=8)


# -- the non-episodic view ----------------------------------------------------------------------------


def test_examples_are_images_of_their_global_class(env: Any) -> None:
    assert env.num_classes("train") == 36 and env.num_examples("train") == 36 * 8
    x, y = env.sample_examples(jax.random.key(0), 32, "train")
    images = np.asarray(env._images)
    t = env.tables["train"]
    offsets, counts = np.asarray(env._offsets), np.asarray(env._counts)
    for xi, yi in zip(np.asarray(x), np.asarray(y)):
        b, r = int(t.base[yi]), int(t.rot[yi])
        cands = np.rot90(images[offsets[b] : offsets[b] + counts[b]], r, axes=(1, 2)).astype(np.float32) / 255.0
        assert np.min(np.abs(cands - xi).reshape(len(cands), -1).max(1)) == 0.0


def test_an_epoch_visits_every_example_once(env: Any) -> None:
    n = 24
    per_epoch = env.steps_per_epoch(n)
    assert per_epoch == 36 * 8 // n
    key = jax.random.key(3)
    epoch = [env.sample_examples(key, n, step=t) for t in range(per_epoch)]
    digests = [task_digest((b.x[i], b.y[i])) for b in epoch for i in range(n)]
    assert len(set(digests)) == 36 * 8
    labels = np.concatenate([np.asarray(b.y) for b in epoch])
    assert np.all(np.bincount(labels, minlength=36) == 8)
    nxt = env.sample_examples(key, n, step=per_epoch)  # epoch 1 starts in another order
    assert not np.array_equal(np.asarray(nxt.y), np.asarray(epoch[0].y))
    again = env.sample_examples(key, n, step=2)
    assert np.array_equal(np.asarray(again.x), np.asarray(epoch[2].x))


def test_check_examples_passes_and_catches_a_bad_view(env: Any) -> None:
    check_examples(env)

    class Shifted(type(env)):  # type: ignore[misc]
        def example_sampler(self, n, split="train", **kw):  # type: ignore[no-untyped-def]
            sample, data = super().example_sampler(n, split, **kw)
            return (lambda d, k, s: sample(d, k, s)._replace(y=sample(d, k, s).y + 1000)), data

        def sample_examples(self, key, n, split="train", **kw):  # type: ignore[no-untyped-def]
            b = super().sample_examples(key, n, split, **kw)
            return b._replace(y=b.y + 1000)

    bad = Shifted(env.spec, ways=5, shots=1, queries=3, classes=15, per_class=8, rotations=True)
    with pytest.raises(AssertionError, match="examples labels"):
        check_examples(bad)


def test_view_errors(env: Any) -> None:
    with pytest.raises(ConfigError, match="exceeds the 288 examples"):
        env.steps_per_epoch(1000)
    with pytest.raises(ConfigError, match="positive integer"):
        env.sample_examples(jax.random.key(0), 0)
    with pytest.raises(ConfigError, match="set augment=False"):
        env.sample_examples(jax.random.key(0), 4, augment=True)
    with pytest.raises(ConfigError, match="unknown split"):
        env.sample_examples(jax.random.key(0), 4, "tset")


# -- augmentation ----------------------------------------------------------------------------------


def _rgb(seed: int = 0, n: int = 4, size: int = 84) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def test_augmentation_is_deterministic_under_the_key_and_in_range() -> None:
    x = _rgb()
    a = A.augment_batch(jax.random.key(1), x)
    b = jax.jit(A.augment_batch)(jax.random.key(1), x)
    c = A.augment_batch(jax.random.key(2), x)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not np.allclose(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("shape", [(84, 84), (84, 60), (40, 84)])
def test_crop_boxes_lie_in_the_image_and_follow_torchvision(shape: tuple[int, int]) -> None:
    h, w = shape
    boxes = np.asarray(jax.vmap(lambda k: A.crop_box(k, h, w))(jax.random.split(jax.random.key(0), 500)))
    top, left, ch, cw = boxes.T
    assert np.all((top >= 0) & (left >= 0) & (ch >= 1) & (cw >= 1) & (top + ch <= h) & (left + cw <= w))
    area = ch * cw / (h * w)
    assert area.min() >= 0.07 and area.max() <= 1.0 and np.median(area) < 0.7  # U(0.08, 1) of the area


def test_identity_cases_of_each_transform() -> None:
    img = _rgb(n=1)[0]
    full = jnp.array([0, 0, 84, 84], jnp.int32)
    np.testing.assert_allclose(np.asarray(A.resized_crop(img, full)), np.asarray(img), atol=1e-6)
    np.testing.assert_allclose(np.asarray(A.image_jitter(jax.random.key(0), img, (0.0, 0.0, 0.0))), np.asarray(img),
                               atol=1e-6)
    flips = [bool(np.array_equal(np.asarray(A.horizontal_flip(jax.random.key(s), img)), np.asarray(img[:, ::-1])))
             for s in range(40)]
    assert 5 < sum(flips) < 35


def test_rgb_fixture_env_augments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))
    fx.cub_folder(tmp_path, per_class=4, grayscale_every=0)
    env = metabench.make(metabench.spec("cub-5w1s").replace(eval_tasks=4), root=str(tmp_path), queries=2)
    plain = env.sample_examples(jax.random.key(0), 6)
    aug = env.sample_examples(jax.random.key(0), 6, augment=True)
    np.testing.assert_array_equal(np.asarray(plain.y), np.asarray(aug.y))
    assert not np.allclose(np.asarray(plain.x), np.asarray(aug.x))
    np.testing.assert_array_equal(np.asarray(aug.x), np.asarray(env.sample_examples(jax.random.key(0), 6, augment=True).x))


# -- the learners ----------------------------------------------------------------------------------


def test_torch_sgd_with_dampening_matches_its_definition() -> None:
    p, g = {"w": jnp.array([1.0, -2.0])}, [jnp.array([0.5, 0.25]), jnp.array([-1.0, 2.0]), jnp.array([0.1, 0.1])]
    buf, ref_p, ref_buf = {"w": jnp.zeros(2)}, np.array([1.0, -2.0]), None
    for i, gi in enumerate(g):
        p, buf = T.torch_sgd_step(p, {"w": gi}, buf, jnp.asarray(i == 0), lr=0.01, momentum=0.9, dampening=0.9,
                                  weight_decay=1e-3)
        d = np.asarray(gi) + 1e-3 * ref_p
        ref_buf = d if ref_buf is None else 0.9 * ref_buf + 0.1 * d
        ref_p = ref_p - 0.01 * ref_buf
        np.testing.assert_allclose(np.asarray(p["w"]), ref_p, rtol=1e-6)


@pytest.mark.parametrize("n_out, scale", [(5, 2.0), (200, 2.0), (201, 10.0)])
def test_cosine_head_is_distlinear(n_out: int, scale: float) -> None:
    head = T.head_init(jax.random.key(0), "cosine", 16, n_out)
    np.testing.assert_allclose(np.asarray(head["g"]), np.linalg.norm(np.asarray(head["v"]), axis=0), rtol=1e-6)
    f = jax.random.normal(jax.random.key(1), (7, 16))
    logits = np.asarray(T.head_apply(head, f))
    v = np.asarray(head["v"]) / np.linalg.norm(np.asarray(head["v"]), axis=0)
    fn = np.asarray(f) / (np.linalg.norm(np.asarray(f), axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(logits, scale * (fn @ v) * np.asarray(head["g"]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("learner_id, extra", [
    ("baseline", {}), ("baseline-pp", {}), ("train-from-scratch", {}), ("finetune", {"finetune": "all"}),
    ("baseline", {"bn": "batch"}),
])
def test_batched_evaluation_equals_a_per_task_loop(env: Any, learner_id: str, extra: dict) -> None:
    learner = metabench.make_learner(learner_id, env, **TINY, **extra)
    state = learner.init(jax.random.key(0))
    tasks = env.eval_tasks("test", 0, 6)
    keys = jax.random.split(jax.random.key(9), 6)

    def logits(s: Any, task: Any, k: Any) -> jax.Array:
        return learner.predict(s, learner.adapt(s, task.support, k), task.query[0])

    batched = np.asarray(jax.jit(jax.vmap(logits, in_axes=(None, 0, 0)))(state, tasks, keys))
    one = jax.jit(logits)
    looped = np.stack([np.asarray(one(state, jax.tree_util.tree_map(lambda x, i=i: x[i], tasks), keys[i]))
                       for i in range(6)])
    np.testing.assert_allclose(batched, looped, rtol=2e-4, atol=2e-4)
    curves = np.asarray(jax.jit(jax.vmap(learner.eval_curve, in_axes=(None, 0, 0)))(state, tasks, keys))
    acc = (looped.argmax(-1) == np.asarray(tasks.query[1])).mean(-1)
    np.testing.assert_allclose(curves[:, 0], acc, atol=1e-6)
    fast = np.asarray(jax.jit(learner.batched_eval_curves)(state, tasks, keys))  # what the harness runs
    np.testing.assert_allclose(fast, curves, atol=1e-6)


@pytest.mark.parametrize("bn", ["running", "batch"])
def test_head_only_fine_tuning_learns_the_support_set(env5s: Any, bn: str) -> None:
    """100 epochs of Chen et al.'s SGD on frozen features (20 pre-training steps) fit a 3-way 5-shot support set."""
    learner = metabench.make_learner("baseline", env5s, channels=32, bn=bn)
    state = learner.init(jax.random.key(0))
    sample, data = learner.train_batches(env5s)
    step = jax.jit(learner.meta_train_step)
    for t in range(20):  # fills the running batch-norm statistics
        state, _ = step(state, sample(data, jax.random.key(5), t), jax.random.key(1))
    task = jax.tree_util.tree_map(lambda x: x[0], env5s.eval_tasks("test", 0, 1))
    adapted = jax.jit(learner.adapt)(state, task.support, jax.random.key(1))
    train_acc = float(jnp.mean(jnp.argmax(learner.predict(state, adapted, task.support[0]), -1) == task.support[1]))
    assert train_acc == 1.0


def test_pretraining_through_the_hook_reduces_the_loss(env: Any) -> None:
    learner = metabench.make_learner("baseline-pp", env, channels=8, batch_size=16)
    sample, data = learner.train_batches(env)
    step = jax.jit(lambda s, d, t: learner.meta_train_step(s, sample(d, jax.random.key(5), t), jax.random.key(1)))
    state = learner.init(jax.random.key(0))
    losses = []
    for t in range(60):
        state, m = step(state, data, t)
        losses.append(float(m["loss"]))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1
    assert learner.steps_per_epoch == 288 // 16 and learner.default_steps == 5 * 18  # Chen et al.: 5 epochs on grey images


def test_meta_train_step_without_the_hook_draws_its_own_batch(env: Any) -> None:
    learner = metabench.make_learner("baseline", env, **TINY)
    state = learner.init(jax.random.key(0))
    tasks = env.sample_tasks(jax.random.key(1), 2)
    new, m = jax.jit(learner.meta_train_step)(state, tasks, jax.random.key(2))
    assert np.isfinite(float(m["loss"])) and int(new.step) == 1
    assert not np.allclose(np.asarray(new.params["head"]["w"]), np.asarray(state.params["head"]["w"]))


@pytest.mark.slow
def test_runs_resume_and_record_images_per_second(env: Any, tmp_path: Path) -> None:
    from metabench.harness import RunInterrupted, run

    small = dict(steps=8, seed=1, progress=False, overrides={**TINY}, val_every=0)
    whole = run(env, "baseline", out_dir=tmp_path / "a", **small)

    def stop(t: int, state: Any, metrics: Any) -> None:
        if t == 5:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run(env, "baseline", out_dir=tmp_path / "b", callback=stop, **small)
    resumed = run(env, "baseline", out_dir=tmp_path / "b", resume=True, **small)
    assert resumed.record["run"]["resumed_from"] == 5
    for a, b in zip(jax.tree_util.tree_leaves(whole.final_state), jax.tree_util.tree_leaves(resumed.final_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert whole.metric == resumed.metric
    assert whole.record["train"]["examples_per_step"] == 8 and whole.record["train"]["examples_per_s"] > 0


def test_the_run_seed_reaches_test_time_initialisation(env: Any) -> None:
    learner = metabench.make_learner("train-from-scratch", env, channels=4, ft_epochs=2)
    task = jax.tree_util.tree_map(lambda x: x[0], env.eval_tasks("test", 0, 1))
    curve = jax.jit(learner.eval_curve)
    logits = jax.jit(lambda s: learner.predict(s, learner.adapt(s, task.support, jax.random.key(3)), task.query[0]))
    a, b = (learner.init(jax.random.fold_in(jax.random.key(s), 0)) for s in (0, 1))
    assert int(a.seed) != int(b.seed)
    assert not np.allclose(np.asarray(logits(a)), np.asarray(logits(b)))
    assert curve(a, task, jax.random.key(3)).shape == (1,)


@pytest.mark.parametrize("overrides, match", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"ft_epochs": 0}, "ft_epochs must be a positive integer"),
    ({"ft_batch": 0}, "ft_batch must be a positive integer"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"head_classes": 10}, "head_classes=10 but the training split"),
    ({"augment": True}, "set augment=False"),
    ({"init": "pretrain"}, "Did you mean: 'pretrained'"),
    ({"head": "cosin"}, "Did you mean: 'cosine'"),
    ({"init": "scratch"}, "use finetune='all'"),
    ({"ft_epoch": 3}, "Did you mean: 'ft_epochs'"),
])
def test_bad_config_is_a_clear_error(env: Any, overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        metabench.make_learner("baseline", env, **overrides)


@pytest.mark.parametrize("learner_id", ["baseline", "baseline-pp", "train-from-scratch", "finetune"])
def test_regression_and_rl_envs_are_refused(learner_id: str) -> None:
    for env_id in ("sinusoid-5s", "point-nav"):
        with pytest.raises(ConfigError, match="does not support"):
            metabench.make_learner(learner_id, metabench.make(env_id))


def test_support_set_that_does_not_split_into_the_ways(env: Any) -> None:
    learner = metabench.make_learner("baseline", env, **TINY)
    state = learner.init(jax.random.key(0))
    xs = jnp.zeros((7, 28, 28, 1))
    with pytest.raises(ConfigError, match="do not split into 5 ways"):
        learner.adapt(state, (xs, jnp.zeros((7,), jnp.int32)), jax.random.key(0))


def test_pretrain_finetune_is_unchanged_for_sinusoid() -> None:
    """The moved learner gives the config hash of the committed sinusoid result."""
    from metabench.harness.config import config_hash

    path = ROOT / "leaderboard" / "results" / "sinusoid-5s-v0__pretrain-finetune__54ffc36d__s0.json"
    record = json.loads(path.read_text())
    env = metabench.make("sinusoid-5s")
    learner = metabench.make_learner("pretrain-finetune", env, **record["learner"].get("overrides", {}))
    assert type(learner).__module__ == "metabench.baselines.transfer"
    run = record["run"]
    h = config_hash(env.spec.to_dict(), "pretrain-finetune", learner.config.hash_dict(), steps=run["steps"],
                    val_every=run["val_every"], val_tasks=run["val_tasks"])
    assert h.startswith("54ffc36d")


# -- image fixtures: cross-domain view and the reproduction script ----------------------------------------


@pytest.fixture(scope="module")
def image_root(cross_domain_root: Path) -> Path:
    return cross_domain_root


@pytest.mark.parametrize("env_id, classes", [("mini-imagenet-to-cub-5w1s", 100), ("cub-to-mini-imagenet-5w1s", 200),
                                             ("mini-imagenet-5w1s", 64)])
def test_pretraining_classes_of_image_envs(image_root: Path, env_id: str, classes: int) -> None:
    env = metabench.make(metabench.spec(env_id).replace(eval_tasks=4), root=str(image_root), queries=2)
    assert env.num_classes("train") == classes and env.num_examples("train") == 4 * classes
    learner = metabench.make_learner("baseline", env, **TINY)
    assert learner.n_classes == classes and learner.features == 4 * 5 * 5


@pytest.mark.parametrize("table, env_id, learners", [
    ("3.4", "mini-imagenet-to-cub-5w1s", ["baseline-pp"]),
    pytest.param("3.4", "mini-imagenet-to-cub-5w1s", ["train-from-scratch", "baseline", "baseline-pp"],
                 marks=pytest.mark.slow),
    pytest.param("chen", "cub-5w1s", ["baseline", "baseline-pp"], marks=pytest.mark.slow),
])
def test_reproduction_script_smoke(image_root: Path, tmp_path: Path, table: str, env_id: str, learners: list) -> None:
    spec = importlib.util.spec_from_file_location("transfer_tables", ROOT / "benchmarks" / "reproduce" / "transfer_tables.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    only = [a for lid in learners for a in ("--learner", lid)]
    summary = module.main(["--table", table, "--env", env_id, *only, "--seeds", "0", "--steps", "2",
                           "--set", "channels=2", "--set", "ft_epochs=1", "--set", "batch_size=4",
                           "--eval-tasks", "3", "--queries", "2", "--root", str(image_root), "--out", str(tmp_path),
                           "--no-progress"])
    rows = summary["tables"][table]
    assert [r["learner"] for r in rows] == learners
    assert all(len(r["values"]) == 1 and 0.0 <= r["median"] <= 1.0 for r in rows)
    if table != "chen":  # seed 003 has every row (Chen et al.'s CUB values are not stored)
        assert all(r["published"] and r["published"][0]["value"] > 0 for r in rows)
    assert len(list((tmp_path / "results").glob("*.json"))) == len(learners)
    assert json.loads((tmp_path / "transfer_tables.json").read_text())["tables"][table][0]["env"] == env_id
