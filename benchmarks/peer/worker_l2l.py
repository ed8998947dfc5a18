"""Peer side of ``bench_peer.py``: learn2learn 0.2.0's ProtoNet and MAML example loops on torch CPU.

Runs in the peer venv (``setup_venv.sh``), never in metabench's. Reads the driver's episodes
(``.npz``, NHWC float32, converted once to NCHW) and answers JSON lines on stdin/stdout:
``{"cmd": "train", "start": i, "n": k}`` trains ``k`` steps on episodes ``i..i+k-1`` (cycled)
and replies ``{"seconds", "cpu_seconds", "losses"}``; ``{"cmd": "quit"}`` ends it.

* ``protonet``: ``CNN4Backbone(hidden_size=64, channels=1, max_pool=True)`` (the Convnet of
  ``examples/vision/protonet_miniimagenet.py`` with one input channel), Adam 1e-3, one episode
  a step, its ``fast_adapt`` (sort by label, support/query masks, squared-distance logits).
* ``maml``: ``OmniglotCNN(5, 64, 4)`` (Finn et al.'s strided Conv-4), ``MAML(lr, first_order)``,
  Adam 1e-3, ``meta_batch`` tasks a step, gradients averaged (``examples/vision/maml_omniglot.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def _protonet(l2l: Any, torch: Any, data: dict[str, np.ndarray]) -> Any:
    """A ``step(i) -> loss`` closure over the example's model, optimiser and ``fast_adapt``."""
    import torch.nn.functional as F

    model = l2l.CNN4Backbone(hidden_size=64, channels=1, max_pool=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ways, shots = int(data["ways"]), int(data["shots"])
    x = np.transpose(data["x"], (0, 1, 2, 5, 3, 4))  # [E, 1, N, H, W, C] -> NCHW per image
    xs, xq = x[:, 0, : ways * shots], x[:, 0, ways * shots:]
    ys, yq = data["ys"][:, 0], data["yq"][:, 0]
    queries = xq.shape[1] // ways
    # the example's batch layout after its sort: per class, `shots` support then `queries` query images
    order = [np.concatenate([np.flatnonzero(ys[e] == k), ways * shots + np.flatnonzero(yq[e] == k)])
             for e in range(x.shape[0]) for k in range(ways)]
    allx = np.concatenate([xs, xq], 1)
    ally = np.concatenate([ys, yq], 1)
    batches = [(torch.from_numpy(np.ascontiguousarray(allx[e][np.concatenate(order[e * ways:(e + 1) * ways])])),
                torch.from_numpy(ally[e][np.concatenate(order[e * ways:(e + 1) * ways])].astype(np.int64)))
               for e in range(x.shape[0])]

    def distances(a: Any, b: Any) -> Any:
        n, m = a.shape[0], b.shape[0]
        return -((a.unsqueeze(1).expand(n, m, -1) - b.unsqueeze(0).expand(n, m, -1)) ** 2).sum(dim=2)

    def step(i: int) -> float:
        data_i, labels = batches[i % len(batches)]
        sort = torch.sort(labels)
        data_i, labels = data_i[sort.indices], labels[sort.indices]
        emb = model(data_i)
        support_idx = np.zeros(data_i.size(0), dtype=bool)
        sel = np.arange(ways) * (shots + queries)
        for off in range(shots):
            support_idx[sel + off] = True
        q_idx, s_idx = torch.from_numpy(~support_idx), torch.from_numpy(support_idx)
        support = emb[s_idx].reshape(ways, shots, -1).mean(dim=1)
        loss = F.cross_entropy(distances(emb[q_idx], support), labels[q_idx].long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _maml(l2l: Any, torch: Any, data: dict[str, np.ndarray], inner_lr: float, first_order: bool) -> Any:
    """A ``step(i) -> loss`` closure over the maml_omniglot example's loop (meta-batch averaged)."""
    ways, shots = int(data["ways"]), int(data["shots"])
    model = l2l.OmniglotCNN(ways, 64, 4)
    maml = l2l.MAML(model, lr=inner_lr, first_order=first_order)
    opt = torch.optim.Adam(maml.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="mean")
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(data["x"], (0, 1, 2, 5, 3, 4))))
    ys, yq = torch.from_numpy(data["ys"].astype(np.int64)), torch.from_numpy(data["yq"].astype(np.int64))
    n_s = ways * shots

    def step(i: int) -> float:
        e = i % x.shape[0]
        opt.zero_grad()
        total = 0.0
        meta_batch = x.shape[1]
        for t in range(meta_batch):
            learner = maml.clone()
            learner.adapt(loss_fn(learner(x[e, t, :n_s]), ys[e, t]))
            err = loss_fn(learner(x[e, t, n_s:]), yq[e, t])
            err.backward()
            total += err.item()
        for p in maml.parameters():
            p.grad.data.mul_(1.0 / meta_batch)
        opt.step()
        return total / meta_batch

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=("protonet", "maml"), required=True)
    p.add_argument("--episodes", required=True, help=".npz written by bench_peer.py")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inner-lr", type=float, default=0.4)
    p.add_argument("--first-order", action="store_true")
    args = p.parse_args(argv)
    from l2l_import import load_l2l

    l2l = load_l2l()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    data = dict(np.load(args.episodes))
    step = (_protonet(l2l, torch, data) if args.algo == "protonet"
            else _maml(l2l, torch, data, args.inner_lr, args.first_order))
    info = {"torch": torch.__version__, "learn2learn": l2l.version, "threads": torch.get_num_threads()}
    print(json.dumps({"ready": True, **info}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        t, c = time.perf_counter(), time.process_time()
        losses = [step(i) for i in range(msg["start"], msg["start"] + msg["n"])]
        print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                          "losses": losses}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
