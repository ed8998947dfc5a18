"""Every registered env passes the conformance checker (parametrised over the registry).

A new env is tested by registering it. Envs whose data is absent skip with the loader's
own message (which names the files and where to put them); envs whose optional extra is
not installed skip with the install hint.
"""

from __future__ import annotations

import functools

import pytest

import metabench
from metabench.errors import DataError
from metabench.testing import check_meta_env

ALL_IDS = sorted(metabench.registry)


def _make_or_skip(env_id: str):
    try:
        return metabench.make(env_id)
    except DataError as e:
        pytest.skip(f"data not available: {e}")
    except ModuleNotFoundError as e:
        pytest.skip(f"optional dependency missing: {e}")


@functools.cache
def _available(env_id: str) -> bool:
    try:
        metabench.make(env_id)
    except (DataError, ModuleNotFoundError):
        return False
    return True


def _first_of_family(env_id: str) -> bool:
    """Is ``env_id`` the first id of its family (entry point) that can be built here?"""
    family = metabench.registry[env_id].entry_point
    members = [i for i in ALL_IDS if metabench.registry[i].entry_point == family]
    return next((i for i in members if _available(i)), None) == env_id


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_registered_env_passes_the_checker(env_id: str) -> None:
    """Full checker on the first id of each family; the other ids (same code, other sizes)
    get the quick checker in the default run and the full one in ``test_full_checker``."""
    env = _make_or_skip(env_id)
    first = _first_of_family(env_id)
    hashes = check_meta_env(env, second_process=first, quick=not first)
    assert all(len(h) == 64 for h in hashes.values())
    assert bool(hashes) == first


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_full_checker(env_id: str) -> None:
    env = _make_or_skip(env_id)
    hashes = check_meta_env(env, second_process=True)
    assert hashes and all(len(h) == 64 for h in hashes.values())


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_spec_records_data_hash_and_overrides(env_id: str) -> None:
    env = _make_or_skip(env_id)
    assert env.spec.id == env_id
    assert env.spec.data_hash, "make() must record the data hash in env.spec"
    assert env.spec.overrides == ()
