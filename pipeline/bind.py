"""bind: project every non-anchor modality into the anchor's (text) space with a head trained by
multi-positive InfoNCE on sparse train pairs (a small LanguageBind), or pass tables through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from embridge.config.bind_config import BindConfig
from embridge.config.device import resolve_device
from embridge.errors import ConfigError
from embridge.methods.base import l2_normalize, package_versions
from embridge.methods.heads import ProjectionHead
from embridge.methods.losses import MultiPositiveInfoNCE
from embridge.methods.train_log import epoch_log
from embridge.methods.training import ContrastiveData, adamw, apply, generator, seeded, unit
from embridge.pairing import LabelBudget, choose_budget, pair_rows
from embridge.store import EmbeddingTable, TableWriter


def train_head(
    src: EmbeddingTable, anchor: EmbeddingTable, cfg: BindConfig, pairs_per_class: int, seed: int, device,
    budget: LabelBudget | None = None, unit_src: np.ndarray | None = None, unit_anchor: np.ndarray | None = None,
) -> ProjectionHead:
    """A head d_src -> d_anchor trained with multi-positive InfoNCE (positives: same pair_id, else
    same label) on the paired train rows of `budget` (None: at most `pairs_per_class` per class,
    chosen with `seed`). Pass train splits; unit_src / unit_anchor: their rows already through
    `l2_normalize` (None: normalized here)."""
    P = pair_rows(src, anchor, pairs_per_class, seed, budget=budget)
    unit_src = l2_normalize(src.X) if unit_src is None else unit_src
    unit_anchor = l2_normalize(anchor.X) if unit_anchor is None else unit_anchor
    data = ContrastiveData.build(src, anchor, P, unit_src, unit_anchor, device)
    with seeded(seed, device):
        head = ProjectionHead(src.dim, anchor.dim, cfg.hidden).to(device)
    gen = generator(seed, device)
    loss_fn = MultiPositiveInfoNCE(cfg.tau)
    opt = adamw(head.parameters(), cfg.lr, cfg.weight_decay)
    log = epoch_log(f"bind/{src.modality}", cfg.epochs, data.steps_per_epoch(cfg.batch_size))
    for _ in log.steps():  # per-epoch hooks (progress bar, dvclive) run outside the step body
        ix, iy, pos = data.sample(cfg.batch_size, gen)
        loss = loss_fn(unit(head(data.X.index_select(0, ix))), data.Y.index_select(0, iy), pos,
                       value=log.wants_loss)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.loss = loss
    return head.eval()


def bind_tables(
    tables: dict[str, EmbeddingTable],
    anchor: str,
    train_pairs: list[tuple[str, str]],
    cfg: BindConfig,
    pairs_per_class: int = 0,
    seed: int = 0,
    device: str = "auto",
    budget: LabelBudget | None = None,
) -> dict[str, np.ndarray]:
    """Every row (train, val and test) of every modality in the anchor's space: {modality: (n, d_a)}
    float32 unit rows. Heads learn from train rows of the pairs (m, anchor) in train_pairs only, and
    of those only the rows of `budget` (the `pairs` stage's label budget; None: one chosen here with
    `pairs_per_class` and `seed`)."""
    cfg.check()
    if anchor not in tables:
        raise ConfigError(f"anchor {anchor!r} is not one of the modalities {sorted(tables)}")
    for p in train_pairs:
        for m in p:
            if m not in tables:
                raise ConfigError(f"pair {'-'.join(p)!r} names modality {m!r}, which does not exist; available: {sorted(tables)}")
    unit_X = {m: l2_normalize(t.X) for m, t in tables.items()}  # row-wise: the train rows' are among them
    if cfg.method == "passthrough":
        return unit_X
    dev = resolve_device(device)
    pairs = {tuple(sorted(p)) for p in train_pairs}
    out = {anchor: unit_X[anchor]}
    train = {m: t.select_split("train") for m, t in tables.items()}
    unit_train = {m: unit_X[m][t.split == "train"] for m, t in tables.items()}
    if budget is None:
        budget = choose_budget(train, [p for p in pairs if anchor in p], pairs_per_class, seed)
    for i, m in enumerate(sorted(tables)):
        if m == anchor:
            continue
        if tuple(sorted((m, anchor))) not in pairs:
            raise ConfigError(
                f"bind: modality {m!r} has no pair with the anchor {anchor!r} in pairs.train "
                f"{['-'.join(p) for p in sorted(pairs)]}; a projection head needs {m}-{anchor} pairs"
            )
        head = train_head(train[m], train[anchor], cfg, pairs_per_class, seed + i, dev, budget=budget,
                          unit_src=unit_train[m], unit_anchor=unit_train[anchor])
        out[m] = l2_normalize(apply(lambda x, h=head: unit(h(x)), unit_X[m], dev))
    return out


def write_unified(tables: dict[str, EmbeddingTable], Z: dict[str, np.ndarray], out_root: str | Path, cfg: BindConfig) -> None:
    """Write Z[m] with the rows' ids, splits, labels and pair_ids to out_root/<m>/ (TableWriter)."""
    for m, t in tables.items():
        manifest = t.manifest
        extra = {"bind": {"method": cfg.method, "source_dim": t.dim, "source_encoder": manifest.encoder if manifest else ""}}
        with TableWriter(Path(out_root) / m, m, Z[m].shape[1], dtype=manifest.dtype if manifest else "float32",
                         encoder=manifest.encoder if manifest else "", class_names=t.class_names,
                         versions={**(manifest.versions if manifest else {}), **package_versions()},
                         extra=extra) as w:
            w.write(t.ids, t.split, Z[m], label=t.labels, pair_id=t.pair_ids)
