"""The env registry: make, register, spec, versions, did-you-mean, overrides."""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Iterator

import pytest

import metabench
from metabench.errors import ConfigError, RegistrationError, UnknownIdError

EXPECTED_IDS = [
    "omniglot-5w1s",
    "omniglot-5w5s",
    "omniglot-20w1s",
    "omniglot-20w5s",
    "omniglot-lite-5w1s",
    "omniglot-lite-5w5s",
    "omniglot-lite-20w1s",
    "omniglot-lite-20w5s",
    "sinusoid-5s",
    "sinusoid-10s",
    "sinusoid-20s",
]


@pytest.fixture
def scratch_ids() -> Iterator[list[str]]:
    added: list[str] = []
    yield added
    for key in added:
        metabench.registry.remove(key)


@pytest.mark.parametrize("env_id", EXPECTED_IDS)
def test_builtin_ids_resolve(env_id: str) -> None:
    spec = metabench.spec(env_id)
    assert spec.id == f"{env_id}-v0"
    assert metabench.spec(f"{env_id}-v0") is spec


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(UnknownIdError, match="Did you mean: 'omniglot-5w1s'"):
        metabench.make("omniglott-5w1s")


def test_unknown_version_lists_registered_versions() -> None:
    with pytest.raises(UnknownIdError, match="registered versions: v0"):
        metabench.make("sinusoid-5s-v7")


def test_newest_version_wins(scratch_ids: list[str]) -> None:
    for v in (0, 2, 1):
        metabench.register(f"scratch-{v}s-v{v}", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 1})
        scratch_ids.append(f"scratch-{v}s-v{v}")
    metabench.register("scratch-v0", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 1})
    metabench.register("scratch-v3", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 2})
    scratch_ids += ["scratch-v0", "scratch-v3"]
    assert metabench.spec("scratch").id == "scratch-v3"
    assert metabench.make("scratch").shots == 2
    assert metabench.make("scratch-v0").shots == 1


def test_register_twice_needs_override(scratch_ids: list[str]) -> None:
    metabench.register("dup-v0", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 1})
    scratch_ids.append("dup-v0")
    with pytest.raises(RegistrationError, match="already registered; pass override=True"):
        metabench.register("dup-v0", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 2})
    metabench.register("dup-v0", "metabench.envs.sinusoid:Sinusoid", "regression", {"shots": 2}, override=True)
    assert metabench.make("dup").shots == 2


def test_overrides_are_applied_and_recorded() -> None:
    env = metabench.make("sinusoid-5s", queries=7)
    assert env.queries == 7
    assert env.spec.kwargs["queries"] == 7
    assert env.spec.overrides == ("queries",)
    assert metabench.spec("sinusoid-5s").kwargs["queries"] == 10  # the registry is untouched


def test_unknown_override_suggests_option() -> None:
    with pytest.raises(ConfigError, match="unknown option 'querys'. Did you mean: 'queries'"):
        metabench.make("sinusoid-5s", querys=3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "5", True])
def test_bad_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(ConfigError, match="shots must be a positive integer"):
        metabench.make("sinusoid-5s", shots=bad)


def test_module_prefixed_id_imports_the_module(tmp_path, monkeypatch, scratch_ids: list[str]) -> None:
    (tmp_path / "thirdparty_tasks.py").write_text(
        textwrap.dedent(
            """
            import metabench
            metabench.register("third-party-task-v0", "metabench.envs.sinusoid:Sinusoid", "regression",
                               {"shots": 3}, override=True)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scratch_ids.append("third-party-task-v0")
    env = metabench.make("thirdparty_tasks:third-party-task")
    assert env.spec.id == "third-party-task-v0" and env.shots == 3
    sys.modules.pop("thirdparty_tasks", None)


def test_entry_points_are_imported_lazily() -> None:
    import subprocess

    code = (
        "import sys, metabench; "
        "print(sorted(m for m in sys.modules if m.startswith('metabench.envs.') or m.startswith('metabench.baselines.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pprint_registry_lists_every_id() -> None:
    buf = io.StringIO()
    metabench.pprint_registry(file=buf)
    text = buf.getvalue()
    for env_id in EXPECTED_IDS:
        assert f"{env_id}-v0" in text


def test_a_published_spelling_that_is_not_an_id_resolves_to_its_learner() -> None:
    """Chen et al. write Baseline++; '+' is not valid in an id, so the id is baseline-pp and
    the registry accepts the paper's spelling for it."""
    from metabench.learner import learner_spec

    assert learner_spec("baseline++").id == learner_spec("baseline-pp").id
    with pytest.raises(RegistrationError, match="malformed id"):
        learner_spec("baseline+++")
