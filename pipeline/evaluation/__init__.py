"""Evaluation: exact search (FAISS), retrieval metrics, zero-shot classification, gap diagnostics."""

from pipeline.evaluation.gap import centroid_gap, effective_dim, gap_diagnostics
from pipeline.evaluation.metrics import retrieval_metrics
from pipeline.evaluation.runner import EvaluateConfig, dumps, evaluate, write_metrics
from pipeline.evaluation.search import knn, normalize
from pipeline.evaluation.zeroshot import prototypes, zeroshot_accuracy

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
