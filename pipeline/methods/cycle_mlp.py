"""`cycle_mlp`: residual MLP heads h_{s->t} around a cycle of modalities (default audio -> image ->
text -> audio), contrastive on the edges whose pair exists, cycle-consistent on all rows, so the
unpaired edge is learned only through the cycle (in the spirit of CycleGAN, Zhu et al. 2017)."""

from __future__ import annotations

import torch
from embridge.errors import ConfigError
from embridge.methods.losses import CosineLoss, MultiPositiveInfoNCE
from embridge.methods.neural import NeuralMethod
from embridge.methods.train_log import epoch_log
from embridge.methods.training import (
    ContrastiveData,
    Shuffled,
    adamw,
    check_training_params,
    corrupt_t,
    generator,
    tensor,
    unit,
)
from embridge.store import EmbeddingTable


class CycleMLP(NeuralMethod):
    """Heads h_{c[i] -> c[i+1]} (residual MLPs at identity, indices mod len(cycle)), trained with

        L = sum over paired edges InfoNCE_tau(h(x_s), x_t)
            + sum over paired m whose route to the anchor takes several heads InfoNCE_tau(T_m(x_m), a)
            + cycle_weight * sum over m in cycle (1 - cos(H_m(x_m), x_m)),

    H_m the composition of all heads once around the cycle starting at m, with unit rows between
    heads, on all train rows of m (no pairs needed). Evaluation space = the anchor's space:
    transform(x, m) follows the cycle forward from m until it reaches the anchor (audio ->
    h_{image->text}(h_{audio->image}(x)) with the default cycle; the anchor maps to itself).
    A modality outside the cycle passes through. Every modality on the cycle must share the
    anchor's dimension (the heads live in the unified space).
    """

    name = "cycle_mlp"

    def __init__(
        self,
        cycle: list[str] | None = None,
        hidden: int = 256,
        tau: float = 0.05,
        cycle_weight: float = 1.0,
        epochs: int = 200,
        batch_size: int = 1024,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pairs_per_class: int = 0,
        collapse: bool = False,
        corrupt_sigma: float = 0.0,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.cycle = cycle
        self.hidden = hidden
        self.tau = tau
        self.cycle_weight = cycle_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pairs_per_class = pairs_per_class
        self.collapse = collapse
        self.corrupt_sigma = corrupt_sigma
        self.seed = seed
        self.device = device

    def _cycle(self) -> list[str]:
        return ["audio", "image", "text"] if self.cycle is None else list(self.cycle)

    def _edges(self) -> list[tuple[str, str]]:
        c = self._cycle()
        return [(c[i], c[(i + 1) % len(c)]) for i in range(len(c))]

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        check_training_params(self.name, **{k: getattr(self, k) for k in (
            "hidden", "tau", "cycle_weight", "epochs", "batch_size", "lr", "weight_decay",
            "pairs_per_class", "corrupt_sigma")})
        cyc = self._cycle()
        if len(cyc) < 2 or len(set(cyc)) != len(cyc):
            raise ConfigError(f"{self.name}.cycle = {cyc}: expected at least two distinct modalities")
        for m in cyc:
            if m not in train:
                raise ConfigError(f"{self.name}.cycle names {m!r}, which is not among the modalities {sorted(train)}")
        if anchor not in cyc:
            raise ConfigError(f"{self.name}.cycle = {cyc} must contain the anchor {anchor!r}")
        for m in train:
            self.passthrough_ok(m)  # every modality in the anchor's dimension
        paired = [e for e in self._edges() if tuple(sorted(e)) in pairs]
        if not paired:
            raise ConfigError(f"{self.name}: no edge of the cycle {cyc} is a pair in train_pairs {pairs}")
        self._prepare(train)
        dev = self._device()
        gen = generator(self.seed, dev)
        d = train[anchor].dim
        Xp = {m: self._prep(t.X, m) for m, t in train.items()}
        for i, (s, t) in enumerate(self._edges()):
            self._new_head(f"{s}->{t}", {"kind": "residual", "dim": d, "hidden": self.hidden}, i)
        data = {}
        for s, t in paired:
            P = self.pair(train[s], train[t])
            data[(s, t)] = ContrastiveData.build(train[s], train[t], P, Xp[s], Xp[t], dev)
        # path terms: a paired modality whose route to the anchor takes several heads
        paths = {}
        for m in cyc:
            if m != anchor and tuple(sorted((m, anchor))) in pairs and len(self._path(m, anchor)) > 1:
                P = self.pair(train[m], train[anchor])
                paths[m] = ContrastiveData.build(train[m], train[anchor], P, Xp[m], Xp[anchor], dev)
        rows = {m: tensor(Xp[m], dev) for m in cyc}  # all train rows, for the cycle term
        passes = {m: Shuffled(len(X), dev) for m, X in rows.items()}
        infonce, cosine = MultiPositiveInfoNCE(self.tau), CosineLoss()
        params = [p for h in self.heads_.values() for p in h.parameters()]
        opt = adamw(params, self.lr, self.weight_decay)
        log = epoch_log(self.name, self.epochs, max(dd.steps_per_epoch(self.batch_size) for dd in data.values()))
        for _ in log.steps():  # per-epoch hooks (progress bar, dvclive) run outside the step body
            loss = 0.0
            for (s, t), dd in data.items():
                ix, iy, pos = dd.sample(self.batch_size, gen)
                Z = unit(self.heads_[f"{s}->{t}"](corrupt_t(dd.X.index_select(0, ix), self.corrupt_sigma, gen)))
                loss = loss + infonce(Z, dd.Y.index_select(0, iy), pos, value=log.wants_loss)["loss"]
            for m, dd in paths.items():
                ix, iy, pos = dd.sample(self.batch_size, gen)
                Z = self._transform_t(corrupt_t(dd.X.index_select(0, ix), self.corrupt_sigma, gen), m)
                loss = loss + infonce(Z, dd.Y.index_select(0, iy), pos, value=log.wants_loss)["loss"]
            if self.cycle_weight > 0:
                for m in cyc:
                    X = rows[m]
                    if len(X) > self.batch_size:
                        X = X.index_select(0, passes[m].batch(self.batch_size, gen))
                    loss = loss + self.cycle_weight * cosine(self._around(corrupt_t(X, self.corrupt_sigma, gen), m), X)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.loss = loss

    def _around(self, X: torch.Tensor, start: str) -> torch.Tensor:
        """Once around the cycle from `start`: (n, d) -> (n, d) unit rows."""
        cyc = self._cycle()
        i = cyc.index(start)
        for j in range(len(cyc)):
            s, t = cyc[(i + j) % len(cyc)], cyc[(i + j + 1) % len(cyc)]
            X = unit(self.heads_[f"{s}->{t}"](X))
        return X

    def _path(self, start: str, anchor: str) -> list[str]:
        """Head names from `start` forward along the cycle to the anchor."""
        cyc = self._cycle()
        i, names = cyc.index(start), []
        while cyc[i % len(cyc)] != anchor:
            names.append(f"{cyc[i % len(cyc)]}->{cyc[(i + 1) % len(cyc)]}")
            i += 1
        return names

    def _transform_t(self, X: torch.Tensor, modality: str) -> torch.Tensor:
        if modality not in self._cycle():
            return X
        for name in self._path(modality, self.anchor_):  # forward along the cycle to the anchor
            X = unit(self.heads_[name](X))
        return X
