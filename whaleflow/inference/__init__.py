"""Inference: features → similarity → class scores → top-5 with new_whale."""
from .centroids import centroid_scores, class_centroids
from .class_scores import ClassScores, aggregate_by_class
from .topk_scores import TopKScores, load_class_scores, store_class_scores
from .topk import insert_new_whale, predict_labels, threshold_curve, tune_threshold

__all__ = [
    "ClassScores",
    "TopKScores",
    "load_class_scores",
    "store_class_scores",
    "aggregate_by_class",
    "centroid_scores",
    "class_centroids",
    "insert_new_whale",
    "predict_labels",
    "threshold_curve",
    "tune_threshold",
]
