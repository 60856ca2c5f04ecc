"""Approach 3: a classifier on concatenated, PCA-reduced embeddings of the trained models."""
from .embedding_classifier import EmbeddingClassifier, build_classifier

__all__ = ["EmbeddingClassifier", "build_classifier"]
