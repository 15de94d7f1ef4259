"""`emergentbridge` and its ablations `naive_proxy` / `anchor_only`: align a new modality to the
anchor and, only orthogonally to the anchor direction, to a noisy bridge anchor synthesized from
the anchor (our reading of the abstract of Xie et al., arXiv 2604.11043; see docs/methods.md)."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from embridge.errors import ConfigError
from embridge.methods.losses import CosineLoss, MultiPositiveInfoNCE, ProxyLoss
from embridge.methods.neural import NeuralMethod
from embridge.methods.noise import add_noise
from embridge.methods.train_log import epoch_log
from embridge.methods.training import (
    ContrastiveData,
    Shuffled,
    adamw,
    apply_t,
    check_training_params,
    corrupt_t,
    generator,
    pick_positive,
    tensor,
    unit,
)
from embridge.store import EmbeddingTable

PROJECTIONS = ("feature", "gradient", "none")
U_CHOICES = ("anchor", "positives")


class EmergentBridge(NeuralMethod):
    """New modality n, anchor a, bridge modalities b (already aligned with a):

    1. proxy synthesizer g_b: a -> b, residual MLP, 1 - cos(g_b(a), b) on (b, a) pairs
       (class-level pairs: b's class mean);
    2. head f for n (residual MLP at identity when d_n = d_a, else a projection), trained with
           L = InfoNCE_tau(f(x_n), a) + lam * mean_b L_proxy(P f(x_n), P p_b),
           p_b = normalize(g_b(a) + sigma_p * eps) (eps fresh every step; g_b frozen, evaluated
           once at every anchor row), P = I - u u^T,
       u = normalize(a) for u="anchor" (a: one positive anchor drawn per row and step) or the
       normalized mean of the row's positive anchors in the batch for u="positives";
       projection="gradient" applies the proxy loss without P and removes from its parameter
       gradient the component along the anchor loss's gradient; "none" is the naive proxy.

    transform: n -> normalize(f(x)); every other modality passes through (normalized).
    """

    name = "emergentbridge"

    def __init__(
        self,
        new: str = "audio",
        bridges: list[str] | None = None,
        lam: float = 1.0,
        sigma_p: float = 0.1,
        tau: float = 0.05,
        projection: str = "feature",
        u: str = "anchor",
        head: str = "auto",
        hidden: int = 256,
        epochs: int = 300,
        proxy_epochs: int = 300,
        batch_size: int = 1024,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pairs_per_class: int = 0,
        collapse: bool = False,
        corrupt_sigma: float = 0.0,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.new = new
        self.bridges = bridges
        self.lam = lam
        self.sigma_p = sigma_p
        self.tau = tau
        self.projection = projection
        self.u = u
        self.head = head
        self.hidden = hidden
        self.epochs = epochs
        self.proxy_epochs = proxy_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pairs_per_class = pairs_per_class
        self.collapse = collapse
        self.corrupt_sigma = corrupt_sigma
        self.seed = seed
        self.device = device

    def _check(self, train: dict[str, EmbeddingTable], anchor: str, pairs) -> list[str]:
        check_training_params(self.name, **{k: getattr(self, k) for k in (
            "lam", "sigma_p", "tau", "hidden", "epochs", "proxy_epochs", "batch_size", "lr",
            "weight_decay", "pairs_per_class", "corrupt_sigma")})
        if self.projection not in PROJECTIONS:
            raise ConfigError(f"{self.name}.projection = {self.projection!r}: expected one of {list(PROJECTIONS)}")
        if self.u not in U_CHOICES:
            raise ConfigError(f"{self.name}.u = {self.u!r}: expected one of {list(U_CHOICES)}")
        if self.head not in ("auto", "residual", "projection"):
            raise ConfigError(f"{self.name}.head = {self.head!r}: expected auto, residual or projection")
        bridges = ["image"] if self.bridges is None else list(self.bridges)
        pair_names = ["-".join(p) for p in pairs]
        if self.new not in train or self.new == anchor:
            raise ConfigError(f"{self.name}.new = {self.new!r}: expected a non-anchor modality of {sorted(train)}")
        for m in [self.new, *bridges]:
            if tuple(sorted((m, anchor))) not in pairs:
                raise ConfigError(f"{self.name}: needs the pair {m}-{anchor} in train_pairs, got {pair_names}")
        for b in bridges:
            if b not in train or b in (anchor, self.new):
                raise ConfigError(f"{self.name}.bridges: {b!r} must be a modality other than the anchor and new")
            if train[b].dim != train[anchor].dim:
                raise ConfigError(f"{self.name}: bridge {b!r} has dim {train[b].dim}, the anchor {train[anchor].dim}; "
                                  f"bridges must already live in the anchor's space (run bind)")
        if self.head == "residual" and train[self.new].dim != train[anchor].dim:
            raise ConfigError(f"{self.name}.head = 'residual' needs d_new = d_anchor, got {train[self.new].dim}")
        return bridges

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        bridges = self._check(train, anchor, pairs)
        self._prepare(train)
        for m in train:
            if m != self.new:
                self.passthrough_ok(m)
        dev = self._device()
        gen = generator(self.seed, dev)
        Xp = {m: self._prep(t.X, m) for m, t in train.items()}
        d_a = train[anchor].dim
        # 1. proxy synthesizers g_b: a -> b, cosine regression on (b, a) pairs
        proxies = {}
        for i, b in enumerate(bridges):
            P = self.pair(train[anchor], train[b])
            A, B = tensor(Xp[anchor][P.src], dev), tensor(P.targets(Xp[b], train[b].labels, np.float32), dev)
            g = self._new_head(f"g/{b}", {"kind": "residual", "dim": d_a, "hidden": self.hidden}, 1 + i)
            rows = Shuffled(len(A), dev)
            self._train(g.parameters(), epoch_log(f"{self.name}/proxy_{b}", self.proxy_epochs, -(-len(A) // self.batch_size)),
                        lambda g=g, A=A, B=B, rows=rows: _regression_step(g, A, B, rows, self.batch_size, gen))
            proxies[b] = g.eval().requires_grad_(False)
        # 2. head f for the new modality
        d_n = train[self.new].dim
        kind = self.head if self.head != "auto" else ("residual" if d_n == d_a else "projection")
        spec = ({"kind": "residual", "dim": d_n, "hidden": self.hidden} if kind == "residual"
                else {"kind": "projection", "d_in": d_n, "d_out": d_a, "hidden": self.hidden})
        f = self._new_head("f", spec, 0)
        P = self.pair(train[self.new], train[anchor])
        data = ContrastiveData.build(train[self.new], train[anchor], P, Xp[self.new], Xp[anchor], dev)
        infonce, proxy_loss = MultiPositiveInfoNCE(self.tau), ProxyLoss(self.projection)
        # the frozen g_b at every anchor candidate, once: (q, d_a) each on the device, beside data.Y;
        # a step gathers its positives' rows (bit for bit what g_b gives on the gathered batch)
        proxy_at = [apply_t(g, data.Y) for g in proxies.values()] if self.lam != 0 else []
        # u = normalize(a) at every anchor candidate, once (each row's bits as in a gathered batch)
        unit_Y = unit(data.Y) if self.lam != 0 and self.u == "anchor" else None
        params = list(f.parameters())
        opt = adamw(params, self.lr, self.weight_decay)
        log = epoch_log(self.name, self.epochs, data.steps_per_epoch(self.batch_size))
        for _ in log.steps():  # per-epoch hooks (progress bar, dvclive) run outside the step body
            ix, iy, index = data.sample(self.batch_size, gen)
            Z = unit(f(corrupt_t(data.X.index_select(0, ix), self.corrupt_sigma, gen)))  # (B, d_a)
            Ya = data.Y.index_select(0, iy)  # (C, d_a)
            l_anchor = infonce(Z, Ya, index, value=log.wants_loss)["loss"]
            log.loss = l_anchor
            opt.zero_grad(set_to_none=True)
            if self.lam == 0:
                l_anchor.backward()
                opt.step()
                continue
            with torch.no_grad():
                at = iy.index_select(0, pick_positive(index, gen))  # one positive anchor a per row
                if unit_Y is not None:
                    u = unit_Y.index_select(0, at)  # (B, d_a)
                else:
                    u = unit(index.mask(len(iy)).float() @ Ya + 1e-12 * data.Y.index_select(0, at))
                ps = [unit(add_noise(g_at.index_select(0, at), self.sigma_p, gen)) for g_at in proxy_at]
            has = index.count > 0
            l_proxy = sum(proxy_loss(*_rows(has, Z, p, u))["loss"] for p in ps) / len(ps)
            if self.projection == "gradient":
                g_a = torch.autograd.grad(l_anchor, params, retain_graph=True)
                g_p = torch.autograd.grad(l_proxy, params)
                flat_a = torch.cat([g.reshape(-1) for g in g_a])
                flat_p = torch.cat([g.reshape(-1) for g in g_p])
                coef = (flat_a @ flat_p) / (flat_a @ flat_a).clamp_min(1e-20)  # remove g_p's part along g_a
                for prm, ga, gp in zip(params, g_a, g_p, strict=True):
                    prm.grad = ga + self.lam * (gp - coef * ga)
            else:
                (l_anchor + self.lam * l_proxy).backward()
            opt.step()
        f.eval()

    def _train(self, params, log, step_fn) -> None:
        opt = adamw(params, self.lr, self.weight_decay)
        for _ in log.steps():
            opt.zero_grad(set_to_none=True)
            loss = step_fn()
            loss.backward()
            opt.step()
            log.loss = loss

    def _transform_t(self, X: torch.Tensor, modality: str) -> torch.Tensor:
        return self.heads_["f"](X) if modality == self.new else X


def _rows(has: torch.Tensor, *T: torch.Tensor) -> list[torch.Tensor]:
    """The rows `has` (B,) bool of each (B, d) tensor. When every row is kept: views, not copies
    (one autograd node per call, as the copies had, so gradients add up in the same order)."""
    return [t.view_as(t) for t in T] if bool(has.all()) else [t[has] for t in T]


def _regression_step(g, A, B, rows: Shuffled, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    if len(A) > batch_size:
        idx = rows.batch(batch_size, gen)
        A, B = A.index_select(0, idx), B.index_select(0, idx)
    return CosineLoss()(g(A), B)["loss"]


def _ablation(base: type, cls_name: str, name: str, fixed: dict, doc: str) -> type:
    """A subclass of `base` whose constructor fixes `fixed` (those keys are not accepted)."""
    sig = inspect.signature(base.__init__)
    params = [p for n, p in sig.parameters.items() if n not in fixed]

    def __init__(self, **kwargs):
        base.__init__(self, **{**kwargs, **fixed})

    __init__.__signature__ = sig.replace(parameters=params)
    __init__.__annotations__ = {k: v for k, v in base.__init__.__annotations__.items() if k not in fixed}
    __init__.__defaults__ = None

    # get_params / set_params come from BridgeMethod, over param_names() of this signature
    return type(cls_name, (base,), {"__init__": __init__, "name": name, "__doc__": doc, "__module__": __name__})


NaiveProxy = _ablation(EmergentBridge, "NaiveProxy", "naive_proxy", {"projection": "none"},
                       "Ablation: EmergentBridge with projection='none' (the proxy loss on the full vector).")
AnchorOnly = _ablation(EmergentBridge, "AnchorOnly", "anchor_only", {"lam": 0.0},
                       "Ablation: EmergentBridge with lam=0 (only the anchor InfoNCE trains the head).")
