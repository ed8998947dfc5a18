"""Published reference curves that metabench's RL results are compared with.

Returns before and after 1, 2, 3 adaptation steps, mean over 40 test tasks, one training
run each, as Finn et al. 2017 report them (Fig. 5 and text; ``../shared/GUIDE.md``
anchors). Keys: env id without its version, then the learner id; ``maml_0_and_1`` where
only the return before and after one step is published.
"""

from __future__ import annotations

PUBLISHED_RL: dict[str, dict[str, list[float]]] = {
    "point-nav": {"maml": [-40.4, -11.7, -3.3, -3.2]},
    "halfcheetah-vel": {"maml": [-129.5, -78.6, -66.6, -60.8]},
    "halfcheetah-dir": {"maml_0_and_1": [-50.7, 293.2]},
    "ant-dir": {"maml_0_and_1": [8.7, 499.2]},
}
