"""The meta-learner LSTM (Ravi & Larochelle 2017; seed 003 §3.3.2, eq. 3.3) and seed 003's
enhanced variant (Table 3.1, footnote 3).

The base learner's weights are the cell state of a coordinate-wise LSTM
(``update_rules.meta_lstm``): ``c^(0) = theta`` (learned), the input gate is a learned
learning rate, the forget gate a learned weight decay. Protocol as the original code
(Ravi & Larochelle's Lua code through its PyTorch port, whose scripts state they follow it):

* inputs: the preprocessed loss and gradient (``inputs="proc"``, Andrychowicz et al. 2016);
* first order: the gradients and losses the LSTM reads are constants of the meta-gradient
  (``first_order=True``); the meta-gradient still flows through the gates and the cell;
* one episode per meta-update on images (``meta_batch=1``), Adam 1e-3, the meta-gradient
  clipped to global norm 0.25;
* the inner loop takes full-batch steps on the support set: 8 updates (the 5-shot script:
  8 epochs of one 25-image batch). The 1-shot script was not available here; 1-shot uses
  the same 8. At evaluation the same number of updates.
* batch norm with the statistics of the current batch in every pass, as the original does
  at meta-training and meta-test (``backbones``).

On sinusoid (seed 003 Fig. 3.3, whose LSTM settings the seed does not list) the defaults
are 5 updates and MAML's 25 tasks per meta-update.

``meta-lstm-plus`` (seed 003, footnote 3 of Table 3.1): raw gradients as inputs
(``inputs="grad"``), second-order gradients (``first_order=False``), 8 updates per task.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from metabench.baselines.learned_rule import LearnedRuleLearner
from metabench.baselines.update_rules.base import check_inputs
from metabench.baselines.update_rules.meta_lstm import MetaLSTM as MetaLSTMRule
from metabench.errors import ConfigError


class MetaLSTM(LearnedRuleLearner):
    """Meta-learner LSTM: Conv-4 / MLP base learner updated by eq. 3.3."""

    name: ClassVar[str] = "meta-lstm"
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"meta_batch": 1, "inner_steps": 8},
        "regression": {"meta_batch": 25, "inner_steps": 5},
    }

    @dataclasses.dataclass(frozen=True)
    class Config(LearnedRuleLearner.Config):
        """Meta-learner LSTM options (besides the core's).

        inputs: per-coordinate LSTM inputs: ``"proc"`` (preprocessed loss and gradient,
            the original), ``"grad"`` (raw gradient), ``"grad+loss"`` (raw both).
        lstm_hidden: units of the first (standard) LSTM layer (20 in the original).
        first_order: True, the original's independence assumption (seed 003 §3.3.2).
        meta_grad_clip: 0.25, the original's clip of the meta-gradient norm.
        """

        inputs: Literal["grad", "grad+loss", "proc"] = "proc"
        lstm_hidden: int = 20
        first_order: bool = True
        meta_grad_clip: float = 0.25

    def validate(self) -> None:
        check_inputs(self.config.inputs, self.name)
        if self.config.lstm_hidden < 1:
            raise ConfigError(f"{self.name}: lstm_hidden must be >= 1, got {self.config.lstm_hidden}")

    def update_rule(self, train: bool) -> MetaLSTMRule:
        return MetaLSTMRule(inputs=self.config.inputs, hidden=self.config.lstm_hidden)
