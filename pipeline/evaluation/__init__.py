"""Evaluation: exact search (FAISS), retrieval metrics, zero-shot classification, gap diagnostics."""

from embridge.evaluation.gap import centroid_gap, effective_dim, gap_diagnostics
from embridge.evaluation.metrics import retrieval_metrics
from embridge.evaluation.runner import EvaluateConfig, dumps, evaluate, write_metrics
from embridge.evaluation.search import knn, normalize
from embridge.evaluation.zeroshot import prototypes, zeroshot_accuracy

__all__ = [
    "EvaluateConfig",
    "centroid_gap",
    "dumps",
    "effective_dim",
    "evaluate",
    "gap_diagnostics",
    "knn",
    "normalize",
    "prototypes",
    "retrieval_metrics",
    "write_metrics",
    "zeroshot_accuracy",
]
