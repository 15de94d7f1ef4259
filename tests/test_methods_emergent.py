"""EmergentBridge against its ablations on a synthetic setting built to show gradient interference.

Built from make_synthetic (image, audio, text share a latent; text is the anchor) plus 8 extra
dimensions that carry a class code V[c]: the image holds it directly, the audio holds it through a
random rotation Q, the text not at all; the image's text-space part is weak (x 0.5). The proxy
synthesizer learns text -> image (V[c] included), so a head trained towards the proxy learns to undo
Q, which helps audio -> image (never paired); but the naive proxy also pulls the audio along the
anchor direction towards the weak image alignment, which costs audio -> text.
"""

import dataclasses

import numpy as np
import pytest
from embridge.methods import get_method
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]
SETTINGS = {"epochs": 60, "proxy_epochs": 100, "hidden": 64, "sigma_p": 0.02, "device": "cpu", "seed": 0}


def interference_tables(seed: int = 0, d_extra: int = 8):
    t, _ = make_synthetic(SynthConfig(n=800, dim=32, latent_dim=8, rotate=False, noise=0.5, spread=0.8, seed=seed))
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((10, d_extra))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    Q, _ = np.linalg.qr(rng.standard_normal((d_extra, d_extra)))
    out = {}
    for m, tb in t.items():
        X, extra = tb.X, np.zeros((len(tb), d_extra))
        if m == "image":
            X = 0.5 * X
            extra = 0.85 * V[tb.labels] + 0.1 * rng.standard_normal((len(tb), d_extra)) / np.sqrt(d_extra)
        elif m == "audio":
            extra = 0.6 * V[tb.labels] @ Q.T + 0.1 * rng.standard_normal((len(tb), d_extra)) / np.sqrt(d_extra)
        Z = np.hstack([X, extra])
        out[m] = dataclasses.replace(tb, X=(Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32))
    return out


def recall_at_1(Q, G, q_ids, g_ids) -> float:
    """Numpy R@1: the top inner-product hit carries the query's pair_id."""
    return float((g_ids[(Q @ G.T).argmax(axis=1)] == q_ids).mean())


def scores(method, tables):
    te = {m: t.select_split("test") for m, t in tables.items()}
    Z = {m: method.transform(t.X, m) for m, t in te.items()}
    pid = {m: t.pair_ids for m, t in te.items()}
    return recall_at_1(Z["audio"], Z["text"], pid["audio"], pid["text"]), \
        recall_at_1(Z["audio"], Z["image"], pid["audio"], pid["image"])


@pytest.fixture(scope="module")
def results():
    tables = interference_tables()
    fits = {
        "anchor_only": get_method("anchor_only", **SETTINGS),
        "emergentbridge": get_method("emergentbridge", lam=5.0, projection="gradient", **SETTINGS),
        "naive_proxy": get_method("naive_proxy", lam=5.0, **SETTINGS),
    }
    return {name: scores(m.fit(tables, "text", PAIRS), tables) for name, m in fits.items()}


def test_emergentbridge_keeps_anchor_retrieval(results):
    anchor_only, eb, naive = results["anchor_only"][0], results["emergentbridge"][0], results["naive_proxy"][0]
    assert eb >= anchor_only - 0.01, results  # within 1 point of anchor-only training
    assert naive < anchor_only - 0.03, results  # the naive proxy interferes with the anchor loss


def test_emergentbridge_improves_unpaired_pair(results):
    assert results["emergentbridge"][1] > results["anchor_only"][1] + 0.03, results
