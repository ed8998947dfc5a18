"""The registration table of metabench's task distributions.

Only ids and string entry points live here: an env's module is imported when ``make``
builds it, never at import time.
"""

from __future__ import annotations

if __name__ != "metabench.envs":  # pragma: no cover - guards `import envs` from the repo root
    raise ImportError("import this package as metabench.envs, not as a top-level 'envs'")

from metabench.registry import register

_OMNIGLOT = "metabench.envs.omniglot:Omniglot"
_SINUSOID = "metabench.envs.sinusoid:Sinusoid"


def _register_all() -> None:
    for shots in (5, 10, 20):
        register(
            f"sinusoid-{shots}s-v0",
            _SINUSOID,
            "regression",
            {"shots": shots, "queries": 10},
            description=f"sine regression, A~U[0.1,5], phase~U[0,pi], {shots}-shot (Finn et al. 2017)",
        )
    for ways in (5, 20):
        for shots in (1, 5):
            register(
                f"omniglot-{ways}w{shots}s-v0",
                _OMNIGLOT,
                "classification",
                {"ways": ways, "shots": shots, "queries": 15, "split_scheme": "vinyals"},
                description=f"Omniglot {ways}-way {shots}-shot, Vinyals split with rotations (needs the full zips)",
            )
            register(
                f"omniglot-lite-{ways}w{shots}s-v0",
                _OMNIGLOT,
                "classification",
                {"ways": ways, "shots": shots, "queries": 15, "split_scheme": "lite"},
                description=f"real Omniglot small1+small2 subset (8 alphabets), {ways}-way {shots}-shot, with rotations",
            )


_register_all()
