"""Suite-wide settings, applied before any test imports JAX's backend.

The suite is dominated by XLA compilation (hundreds of small, distinct programs), not by
running them. ``--xla_backend_optimization_level=0`` skips LLVM's optimisation passes for
the CPU code XLA emits: measured here, compile time of a MAML-RL meta-step 11.0 s -> 6.7 s
(PPO) and 14.9 s -> 8.6 s (TRPO), three smoke-matrix tests 185 s -> 132 s. XLA's own HLO
passes still run; run time grows, which the suite barely has. Results are NOT bit-equal to
an optimised build's (a MAML-RL step's loss here: -0.0289300 vs -0.0289385; instruction
selection and reduction order differ), so the suite never compares against numbers made
outside it: every bit-identity check compares runs under the same flags (the subprocesses
the tests start inherit them) and every other comparison has a tolerance. Set
``METABENCH_TEST_XLA_OPT=1`` to run the suite with XLA's default optimisation.
"""

from __future__ import annotations

import os

_FLAG = "--xla_backend_optimization_level=0"

if os.environ.get("METABENCH_TEST_XLA_OPT") != "1" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()


# -- the image fixtures (tests/fixtures_images.py), one module for every test file -------------------------
# ``--import-mode=importlib`` puts no test directory on sys.path, so the fixture writers are
# registered here under one name: ``import metabench_tests_fixtures_images as fx``.

import importlib.util  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURES_IMAGES = "metabench_tests_fixtures_images"
if FIXTURES_IMAGES not in sys.modules:
    _spec = importlib.util.spec_from_file_location(FIXTURES_IMAGES, Path(__file__).resolve().parent / "fixtures_images.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[FIXTURES_IMAGES] = _module
    _spec.loader.exec_module(_module)


@pytest.fixture(scope="module")
def cross_domain_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data root with miniImageNet (Ravi's pickles) and CUB (the image folder), 4 images per
    class, in their published formats; ``METABENCH_CACHE`` points at a fresh directory for the module."""
    fx = sys.modules[FIXTURES_IMAGES]
    mp = pytest.MonkeyPatch()
    mp.setenv("METABENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    path = tmp_path_factory.mktemp("data")
    fx.mini_imagenet_pickles(path, per_class=4)
    fx.cub_folder(path, per_class=4, grayscale_every=0)
    yield path
    mp.undo()
