"""Torch plumbing shared by the learned methods and bind: device-resident contrastive pairs,
seeded minibatches, state-dict <-> safetensors arrays, batched inference."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from embridge.errors import ConfigError
from embridge.pairing import Pairing, pair_codes
from torch import nn
from torch.nn import functional as F

INFER_ROWS = 65_536  # rows per forward pass at transform time


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch's global RNG for module initialization without disturbing the caller's state."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def tensor(X: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)


def relevance_t(pid_q, lab_q, pid_g, lab_g, all_paired: bool = False) -> torch.Tensor:
    """Torch version of embridge.pairing.relevance: (nq,), (nq,), (ng,), (ng,) -> (nq, ng) bool.
    all_paired: the caller knows every row on both sides has a pair id (then one comparison)."""
    if all_paired:
        return pid_q[:, None] == pid_g[None, :]
    both = (pid_q[:, None] >= 0) & (pid_g[None, :] >= 0)
    same_label = (lab_q[:, None] >= 0) & (lab_q[:, None] == lab_g[None, :])
    return torch.where(both, pid_q[:, None] == pid_g[None, :], same_label)


@dataclass
class ContrastiveData:
    """Paired rows on the device. X: (p, d_s) source rows; Y: (q, d_t) target candidates;
    pid_*/lab_*: int codes (-1 none); partner: (p,) index into Y of the instance partner or -1."""

    X: torch.Tensor
    Y: torch.Tensor
    pid_x: torch.Tensor
    lab_x: torch.Tensor
    pid_y: torch.Tensor
    lab_y: torch.Tensor
    partner: torch.Tensor

    @classmethod
    def build(cls, src, tgt, P: Pairing, X_src: np.ndarray, Y_tgt: np.ndarray, device) -> ContrastiveData:
        """src/tgt: the two train-split EmbeddingTables; X_src/Y_tgt: their preprocessed rows."""
        pid_s, pid_t = pair_codes(src, tgt)
        pos_in_rows = np.full(len(tgt), -1)
        pos_in_rows[P.tgt_rows] = np.arange(len(P.tgt_rows))
        partner = np.where(P.tgt >= 0, pos_in_rows[np.maximum(P.tgt, 0)], -1)

        def lt(a):
            return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

        return cls(tensor(X_src[P.src], device), tensor(Y_tgt[P.tgt_rows], device),
                   lt(pid_s[P.src]), lt(src.labels[P.src]), lt(pid_t[P.tgt_rows]), lt(tgt.labels[P.tgt_rows]),
                   lt(partner))

    def __post_init__(self) -> None:
        # every row on both sides paired: the positives mask is one comparison of pair ids
        self.all_paired = bool((self.pid_x >= 0).all() and (self.pid_y >= 0).all())

    def __len__(self) -> int:
        return self.X.shape[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, -(-len(self) // batch_size))

    def sample(self, batch_size: int, gen: torch.Generator):
        """A minibatch: source rows ix (B,), candidate rows iy (C,), positives (B, C) bool.
        Full batch when everything fits; else B random rows and batch_size random candidates
        plus the instance partners of the batch."""
        dev = self.X.device
        p, q = len(self), self.Y.shape[0]
        ix = torch.arange(p, device=dev) if p <= batch_size else torch.randperm(p, generator=gen, device=dev)[:batch_size]
        if q <= batch_size:
            iy = torch.arange(q, device=dev)
        else:
            part = self.partner[ix]
            iy = torch.cat([torch.randperm(q, generator=gen, device=dev)[:batch_size], part[part >= 0]]).unique()
        pos = relevance_t(self.pid_x[ix], self.lab_x[ix], self.pid_y[iy], self.lab_y[iy], self.all_paired)
        return ix, iy, pos


def pick_positive(pos: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One positive column per row, uniformly at random (rows without one get column 0). (B, C) -> (B,)."""
    r = torch.rand(pos.shape, generator=gen, device=pos.device)  # argmax of uniform scores on the positives
    return torch.where(pos, r, torch.full_like(r, -1.0)).argmax(dim=1)


def unit(Z: torch.Tensor) -> torch.Tensor:
    return F.normalize(Z, dim=-1, eps=1e-12)


def corrupt_t(X: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """C^3 corrupt on a training batch: X + sigma * eps."""
    if sigma <= 0:
        return X
    return X + sigma * torch.randn(X.shape, generator=gen, device=X.device)


@torch.no_grad()
def apply(fn, X: np.ndarray, device: torch.device) -> np.ndarray:
    """Run fn over X in chunks on the device. X: (n, d) -> (n, d_out) float32 numpy."""
    out = [fn(tensor(X[i : i + INFER_ROWS], device)).float().cpu().numpy() for i in range(0, len(X), INFER_ROWS)]
    return np.concatenate(out)


def module_state(prefix: str, module: nn.Module) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_module_state(prefix: str, module: nn.Module, state: dict[str, np.ndarray], device) -> nn.Module:
    sub = {k[len(prefix) + 1 :]: torch.as_tensor(v) for k, v in state.items() if k.startswith(prefix + "/")}
    module.load_state_dict(sub)
    return module.to(device).eval()


def check_training_params(name: str, **kw) -> None:
    """Range checks shared by the learned methods (ConfigError naming the key and value)."""
    rules = {
        "epochs": lambda v: v >= 1, "batch_size": lambda v: v >= 1, "lr": lambda v: v > 0,
        "weight_decay": lambda v: v >= 0, "tau": lambda v: v > 0, "hidden": lambda v: v >= 0,
        "pairs_per_class": lambda v: v >= 0, "corrupt_sigma": lambda v: v >= 0, "sigma_p": lambda v: v >= 0,
        "lam": lambda v: v >= 0, "cycle_weight": lambda v: v >= 0, "proxy_epochs": lambda v: v >= 1,
    }
    expect = {"epochs": ">= 1", "batch_size": ">= 1", "lr": "> 0", "tau": "> 0", "proxy_epochs": ">= 1"}
    for k, v in kw.items():
        if k in rules and not rules[k](v):
            raise ConfigError(f"{name}.{k} = {v}: expected {expect.get(k, '>= 0')}")
