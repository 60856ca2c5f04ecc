"""Per-individual centroids of unit-norm embeddings, and query scores against them."""
from __future__ import annotations

import numpy as np


def class_centroids(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean embedding of each class, re-normalised to unit length.

    A class without any embedding gets a zero centroid (it then scores 0 against every
    query, below any real match of a unit-norm embedding with positive similarity).
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    sums = np.zeros((num_classes, emb.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, emb)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def centroid_scores(queries: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of each query to each centroid: (n_queries, n_classes)."""
    return np.asarray(queries, dtype=np.float32) @ np.asarray(centroids, dtype=np.float32).T
