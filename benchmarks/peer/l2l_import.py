"""Import the parts of learn2learn 0.2.0 the peer benchmark uses, without its package ``__init__``.

``import learn2learn`` imports every subpackage, among them ``learn2learn.gym`` (needs gym) and
``learn2learn.vision.datasets`` (needs torchvision), neither of which the benchmark touches and
neither of which installs beside the peer venv's torch (``setup_venv.sh``). Here the parent
packages are registered as empty packages over the installed directories, so importing
``learn2learn.vision.models.cnn4`` or ``learn2learn.algorithms.maml`` runs only those
modules (and ``learn2learn.utils`` / ``learn2learn.nn``, which they import) -- the same code
``import learn2learn`` would give.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

#: parent packages whose ``__init__`` is skipped (they import gym / torchvision / lightning)
_SKIPPED = ("learn2learn", "learn2learn.vision", "learn2learn.vision.models", "learn2learn.algorithms")


def load_l2l() -> types.SimpleNamespace:
    """``OmniglotCNN``, ``CNN4Backbone``, ``MAML`` and the version string of the installed learn2learn.

    Raises ``ImportError`` (with what to do) when torch or learn2learn is missing.
    """
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ImportError(f"torch is not importable here ({e}); run benchmarks/peer/setup_venv.sh") from e
    spec = importlib.util.find_spec("learn2learn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("learn2learn is not installed here; run benchmarks/peer/setup_venv.sh")
    root = Path(list(spec.submodule_search_locations)[0])
    for name in _SKIPPED:
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root.joinpath(*name.split(".")[1:]))]  # type: ignore[attr-defined]
            sys.modules[name] = pkg
    l2l: Any = sys.modules["learn2learn"]
    l2l.nn = importlib.import_module("learn2learn.nn")
    l2l.utils = importlib.import_module("learn2learn.utils")
    cnn4 = importlib.import_module("learn2learn.vision.models.cnn4")
    maml = importlib.import_module("learn2learn.algorithms.maml")
    version = importlib.import_module("learn2learn._version").__version__
    return types.SimpleNamespace(OmniglotCNN=cnn4.OmniglotCNN, CNN4Backbone=cnn4.CNN4Backbone,
                                 MAML=maml.MAML, version=version, path=str(root))
