"""Torch plumbing shared by the learned methods and bind: device-resident contrastive pairs,
seeded minibatches, state-dict <-> safetensors arrays, batched inference."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from embridge.errors import ConfigError
from embridge.methods.noise import add_noise
from embridge.pairing import Pairing, pair_codes
from torch import nn

INFER_ROWS = 65_536  # rows per forward pass at transform time (an accelerator)
CPU_INFER_ROWS = 4_096  # on the CPU: oneDNN ran 313-378 GFLOP/s on 4,096-row blocks of 20k x 1024 x 1024, 221 on one


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


def relevance_t(pid_q, lab_q, pid_g, lab_g) -> torch.Tensor:
    """Torch version of embridge.pairing.relevance: (nq,), (nq,), (ng,), (ng,) -> (nq, ng) bool."""
    both = (pid_q[:, None] >= 0) & (pid_g[None, :] >= 0)
    same_label = (lab_q[:, None] >= 0) & (lab_q[:, None] == lab_g[None, :])
    return torch.where(both, pid_q[:, None] == pid_g[None, :], same_label)


class Shuffled:
    """The indices 0..n-1 in a fresh random order every pass (an epoch), drawn from the caller's
    generator when a pass starts. `batch(k)`: the next k of this pass, its last batch shorter (a
    shuffled DataLoader: every index once a pass); `stream(k)`: the next k, running on into the
    next pass (always k indices, for k <= n)."""

    def __init__(self, n: int, device) -> None:
        self.n, self.device = int(n), device
        self.order = torch.zeros(0, dtype=torch.int64, device=device)
        self.at = self.n

    def _new_pass(self, gen: torch.Generator) -> None:
        self.order, self.at = torch.randperm(self.n, generator=gen, device=self.device), 0

    def batch(self, k: int, gen: torch.Generator) -> torch.Tensor:
        if self.at >= self.n:
            self._new_pass(gen)
        out = self.order[self.at : self.at + k]
        self.at += k
        return out

    def stream(self, k: int, gen: torch.Generator) -> torch.Tensor:
        out = self.order[self.at : self.at + k]
        self.at += k
        if self.at > self.n:  # this pass ran out: the rest from the next one
            rest = self.at - self.n
            self._new_pass(gen)
            out, self.at = torch.cat([out, self.order[:rest]]), rest
        return out


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
        self._rows = Shuffled(len(self), self.X.device)  # the source rows' passes
        self._candidates = Shuffled(self.Y.shape[0], self.Y.device)  # the candidates' stream

    def __len__(self) -> int:
        return self.X.shape[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, -(-len(self) // batch_size))

    def sample(self, batch_size: int, gen: torch.Generator):
        """A minibatch: source rows ix (B,), candidate rows iy (C,), and where the (B, C) positives
        are (`PositiveIndex`; with every row paired found from the pair ids directly, without the
        mask, else from the mask of `relevance_t`). Full batch when everything fits. Else the source rows go through one shuffle per epoch
        (every row once per epoch, in batches of batch_size, the epoch's last one shorter, as a
        shuffled DataLoader), and the candidates are the next batch_size rows of their own stream
        of shuffles plus the instance partners of the batch."""
        dev = self.X.device
        p, q = len(self), self.Y.shape[0]
        ix = torch.arange(p, device=dev) if p <= batch_size else self._rows.batch(batch_size, gen)
        if q <= batch_size:
            iy = torch.arange(q, device=dev)
        else:
            part = self.partner.index_select(0, ix)
            iy = torch.cat([self._candidates.stream(batch_size, gen), part[part >= 0]]).unique()
        pid_q, pid_g = self.pid_x.index_select(0, ix), self.pid_y.index_select(0, iy)
        if self.all_paired:  # positives: the same pair id
            return ix, iy, PositiveIndex.of_ids(pid_q, pid_g)
        pos = relevance_t(pid_q, self.lab_x.index_select(0, ix), pid_g, self.lab_y.index_select(0, iy))
        return ix, iy, PositiveIndex.of(pos)


class PositiveIndex(NamedTuple):
    """Where a (B, C) positives mask is true, found once a step and shared by the loss, the
    positive draw and the rows kept: rows, cols (row-major, each row's positives in column order)
    and count (B,) positives per row."""

    rows: torch.Tensor
    cols: torch.Tensor
    count: torch.Tensor

    @classmethod
    def of(cls, pos: torch.Tensor) -> PositiveIndex:
        rows, cols = pos.nonzero(as_tuple=True)
        return cls(rows, cols, torch.bincount(rows, minlength=pos.shape[0]))

    @classmethod
    def of_ids(cls, q: torch.Tensor, g: torch.Tensor) -> PositiveIndex:
        """`of` the mask q[:, None] == g[None, :] (q (B,), g (C,) int64), the same tensors, without
        making it: the candidates sorted by id (stably: each id's columns stay in column order), each
        row's run of its id found by binary search. 0.07 against 0.33 ms at 512 x 1,000 (Xeon)."""
        g_sorted, order = torch.sort(g, stable=True)
        lo = torch.searchsorted(g_sorted, q, side="left")
        count = torch.searchsorted(g_sorted, q, side="right") - lo
        rows = torch.repeat_interleave(torch.arange(len(q), device=q.device), count)
        start = torch.cumsum(count, 0) - count  # where each row's positives start in rows, cols
        return cls(rows, order[torch.arange(len(rows), device=q.device) + (lo - start)[rows]], count)

    def mask(self, n_cols: int) -> torch.Tensor:
        """The (B, n_cols) bool mask this indexes."""
        out = torch.zeros(len(self.count), n_cols, dtype=torch.bool, device=self.count.device)
        return out.index_put_((self.rows, self.cols), torch.ones((), dtype=torch.bool, device=out.device))


def pick_positive(pos: torch.Tensor | PositiveIndex, gen: torch.Generator,
                  index: PositiveIndex | None = None) -> torch.Tensor:
    """One positive column per row, uniformly at random (rows without one get column 0). (B, C) -> (B,).
    One uniform draw per row picks among the row's positives (in column order). pos: the mask or
    its PositiveIndex; index: the mask's PositiveIndex, when the caller has it."""
    if isinstance(pos, PositiveIndex):
        index = pos
    _, cols, count = PositiveIndex.of(pos) if index is None else index
    first = torch.cumsum(count, 0) - count  # where each row's positives start in cols
    u = torch.rand(len(count), generator=gen, device=count.device)
    k = (u * count).long().clamp_max_((count - 1).clamp_min(0))  # uniform in 0..count-1
    if len(cols) == 0:
        return torch.zeros(len(count), dtype=torch.int64, device=count.device)
    return torch.where(count > 0, cols[(first + k).clamp_max_(len(cols) - 1)], 0)


class _Unit(torch.autograd.Function):
    """Rows divided by their norm (at least eps), with one fused backward:
    dX = (dZ - Z (Z . dZ)) / ||x|| (rows below eps: dZ / eps)."""

    @staticmethod
    def forward(ctx, X, eps):
        norm = torch.linalg.vector_norm(X, dim=-1, keepdim=True)
        small = norm < eps
        norm = norm.clamp_min(eps)
        Z = X / norm
        ctx.save_for_backward(Z, norm, small)
        return Z

    @staticmethod
    def backward(ctx, dZ):
        Z, norm, small = ctx.saved_tensors
        dot = torch.linalg.vecdot(Z, dZ, dim=-1).unsqueeze(-1).masked_fill_(small, 0.0)
        return torch.addcmul(dZ, Z, dot, value=-1.0).div_(norm), None


def unit(Z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit rows (F.normalize's forward; a fused backward). (n, d) -> (n, d)."""
    if not (torch.is_grad_enabled() and Z.requires_grad):
        return Z / torch.linalg.vector_norm(Z, dim=-1, keepdim=True).clamp_min(eps)
    return _Unit.apply(Z, eps)


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (one pass over each parameter a step; CPU and CUDA)."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def corrupt_t(X: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """C^3 corrupt on a training batch: X + sigma * eps (eps: `noise.randn` from gen, on X's device)."""
    if sigma <= 0:
        return X
    return add_noise(X, sigma, gen)


def _infer_rows(device) -> int:
    return CPU_INFER_ROWS if torch.device(device).type == "cpu" else INFER_ROWS


@torch.no_grad()
def apply(fn, X: np.ndarray, device: torch.device) -> np.ndarray:
    """Run fn over X in chunks on the device, into one float32 array. X: (n, d) -> (n, d_out)."""
    step = _infer_rows(device)
    out = None
    for i in range(0, max(len(X), 1), step):
        Z = fn(tensor(X[i : i + step], device)).float().cpu().numpy()
        if out is None:
            out = np.empty((len(X), *Z.shape[1:]), dtype=np.float32)
        out[i : i + len(Z)] = Z
    return out


@torch.no_grad()
def apply_t(fn, X: torch.Tensor) -> torch.Tensor:
    """`apply` for rows already on the device: fn over X in chunks, into one tensor there.
    (n, d) -> (n, d_out); each row as fn gives it in a block of many rows."""
    step = _infer_rows(X.device)
    blocks = [fn(X[i : i + step]) for i in range(0, max(len(X), 1), step)]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


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
