"""Moved: ``PretrainFinetune`` (id ``pretrain-finetune``) lives in ``metabench.baselines.transfer``
with the other transfer baselines; this module re-exports it for old imports."""

from __future__ import annotations

from metabench.baselines.transfer import FinetuneState, PretrainFinetune

__all__ = ["FinetuneState", "PretrainFinetune"]
