"""Approach 3: a small classifier on PCA-reduced embeddings from the trained models.

The embeddings of every trained model (any family) are concatenated per image,
reduced with PCA fitted on the training images only (so validation and test never
leak into the projection), standardised, and fed to a two-layer head
(Linear → ReLU → Dropout → Linear) that predicts the individual. It outputs softmax
class scores of shape (n, C), the same form as the other models' class scores, so the
ensemble blends it as one more model. Training is seeded end to end (PCA, weight
init, dropout, shuffling) so a seed gives the same scores every time on CPU.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ClassifierConfig
from ..io import atomic_path

__all__ = ["EmbeddingClassifier", "build_classifier"]

_FORMAT = "whaleflow.embedding_classifier/1"
_PREDICT_CHUNK = 8192


def _head(in_dim: int, hidden: int, dropout: float, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )


class EmbeddingClassifier:
    """PCA (+ optional whitening) → standardise → Linear/ReLU/Dropout/Linear → softmax.

    Args:
        pca_dim: PCA components; clipped to min(n_train, D). ``None`` skips PCA.
        whiten: scale PCA components to unit variance (scikit-learn's ``whiten``).
        hidden: width of the hidden layer.
        dropout: dropout probability between the two dense layers.
        epochs: passes over the training set.
        lr, weight_decay: Adam settings.
        batch_size: minibatch size; ``None`` or ≥ n_train means full-batch steps.
        seed: seeds PCA, initialisation, dropout and shuffling.
        device: torch device for the head ("cpu", "cuda", ...).
    """

    def __init__(
        self,
        pca_dim: int | None = 64,
        whiten: bool = False,
        hidden: int = 256,
        dropout: float = 0.3,
        epochs: int = 200,
        lr: float = 1e-3,
        batch_size: int | None = 256,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ):
        if pca_dim is not None and int(pca_dim) < 1:
            raise ValueError(f"pca_dim must be >= 1 or None, got {pca_dim}")
        if int(hidden) < 1 or int(epochs) < 0 or not 0.0 <= dropout < 1.0 or not lr > 0:
            raise ValueError(f"bad classifier settings: hidden={hidden}, epochs={epochs}, dropout={dropout}, lr={lr}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.pca_dim = None if pca_dim is None else int(pca_dim)
        self.whiten = bool(whiten)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.num_classes: int | None = None
        self.input_dim: int | None = None
        self._pca_mean: np.ndarray | None = None        # (D,)
        self._pca_components: np.ndarray | None = None  # (k, D)
        self._pca_scale: np.ndarray | None = None       # (k,) divisor when whitening
        self._feat_mean: np.ndarray | None = None
        self._feat_std: np.ndarray | None = None
        self._head: nn.Sequential | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, embeddings, labels, num_classes: int | None = None) -> "EmbeddingClassifier":
        """Fit on training embeddings (n, D) and integer labels (n,) in [0, C).

        ``num_classes`` defaults to ``max(labels) + 1``; pass it when some classes
        have no training image but must still get a (near-zero) score column.
        """
        x = self._as_matrix(embeddings, check_dim=False)
        y = np.asarray(labels)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
        if x.shape[0] == 0:
            raise ValueError("cannot fit a classifier on zero training embeddings")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
        c = int(num_classes) if num_classes is not None else int(y.max()) + 1
        if y.min() < 0 or y.max() >= c:
            raise ValueError(f"labels must lie in [0, {c}), got range [{y.min()}, {y.max()}]")
        self.num_classes, self.input_dim = c, x.shape[1]
        self._fit_pca(x)
        feats = self._project(x)
        self._feat_mean = feats.mean(axis=0)
        std = feats.std(axis=0)
        self._feat_std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        feats = (feats - self._feat_mean) / self._feat_std

        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(self.seed)
            self._head = _head(feats.shape[1], self.hidden, self.dropout, c).to(self.device)
            self._train(feats, y.astype(np.int64))
        self._head.eval()
        return self

    def _fit_pca(self, x: np.ndarray) -> None:
        from sklearn.decomposition import PCA

        if self.pca_dim is None:
            self._pca_mean = self._pca_components = self._pca_scale = None
            return
        k = min(self.pca_dim, x.shape[0], x.shape[1])
        pca = PCA(n_components=k, whiten=self.whiten, random_state=self.seed).fit(x)
        self._pca_mean = pca.mean_.astype(np.float32)
        self._pca_components = pca.components_.astype(np.float32)
        scale = np.sqrt(pca.explained_variance_) if self.whiten else np.ones(k)
        self._pca_scale = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)

    def _train(self, feats: np.ndarray, y: np.ndarray) -> None:
        head = self._head
        opt = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt = torch.from_numpy(feats).to(self.device)
        yt = torch.from_numpy(y).to(self.device)
        n = xt.shape[0]
        bs = n if self.batch_size is None else min(self.batch_size, n)
        shuffle = torch.Generator().manual_seed(self.seed)
        head.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=shuffle).to(self.device) if bs < n else None
            for start in range(0, n, bs):
                idx = None if order is None else order[start:start + bs]
                xb = xt if idx is None else xt[idx]
                yb = yt if idx is None else yt[idx]
                loss = F.cross_entropy(head(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    # --------------------------------------------------------------- inference
    def transform(self, embeddings) -> np.ndarray:
        """The head's input features: PCA projection, then standardisation (float32)."""
        self._check_fitted()
        x = self._as_matrix(embeddings, check_dim=True)
        return ((self._project(x) - self._feat_mean) / self._feat_std).astype(np.float32)

    @torch.no_grad()
    def predict_scores(self, embeddings) -> np.ndarray:
        """Softmax class probabilities, shape (n, C), float32; rows sum to 1."""
        feats = self.transform(embeddings)
        self._head.eval()
        out = np.empty((feats.shape[0], self.num_classes), dtype=np.float32)
        for start in range(0, feats.shape[0], _PREDICT_CHUNK):
            xb = torch.from_numpy(feats[start:start + _PREDICT_CHUNK]).to(self.device)
            out[start:start + xb.shape[0]] = F.softmax(self._head(xb).float(), dim=1).cpu().numpy()
        return out

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write hyper-parameters, PCA, scaler and head weights atomically (one torch file)."""
        self._check_fitted()
        t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        state = {
            "format": _FORMAT,
            "params": {
                "pca_dim": self.pca_dim, "whiten": self.whiten, "hidden": self.hidden,
                "dropout": self.dropout, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "weight_decay": self.weight_decay, "seed": self.seed,
            },
            "num_classes": self.num_classes,
            "input_dim": self.input_dim,
            "pca_mean": t(self._pca_mean),
            "pca_components": t(self._pca_components),
            "pca_scale": t(self._pca_scale),
            "feat_mean": t(self._feat_mean),
            "feat_std": t(self._feat_std),
            "head": {k: v.detach().cpu() for k, v in self._head.state_dict().items()},
        }
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "EmbeddingClassifier":
        """Rebuild a fitted classifier written by :meth:`save`."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a whaleflow embedding classifier file")
        obj = cls(**state["params"], device=device)
        a = lambda t: None if t is None else t.numpy()  # noqa: E731
        obj.num_classes, obj.input_dim = int(state["num_classes"]), int(state["input_dim"])
        obj._pca_mean, obj._pca_components = a(state["pca_mean"]), a(state["pca_components"])
        obj._pca_scale, obj._feat_mean, obj._feat_std = a(state["pca_scale"]), a(state["feat_mean"]), a(state["feat_std"])
        in_dim = obj._feat_mean.shape[0]
        obj._head = _head(in_dim, obj.hidden, obj.dropout, obj.num_classes)
        obj._head.load_state_dict(state["head"])
        obj._head.to(obj.device).eval()
        return obj

    # ----------------------------------------------------------------- helpers
    def _project(self, x: np.ndarray) -> np.ndarray:
        """PCA transform as scikit-learn computes it: (x − mean) Wᵀ, divided by √λ if whitening."""
        if self._pca_components is None:
            return x
        return ((x - self._pca_mean) @ self._pca_components.T / self._pca_scale).astype(np.float32)

    def _as_matrix(self, embeddings, check_dim: bool) -> np.ndarray:
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().cpu().numpy()
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (n, D), got shape {x.shape}")
        if check_dim and x.shape[1] != self.input_dim:
            raise ValueError(f"embeddings have {x.shape[1]} columns; the classifier was fitted on {self.input_dim}")
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN or infinite values")
        return x

    def _check_fitted(self) -> None:
        if self._head is None:
            raise RuntimeError("EmbeddingClassifier is not fitted: call fit() or load() first")

    def _cuda_devices(self) -> list[int]:
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]


def build_classifier(cfg: ClassifierConfig, seed: int = 0, device: str = "cpu") -> EmbeddingClassifier:
    """Build an :class:`EmbeddingClassifier` from the ensemble's ``ClassifierConfig``.

    ``batch_size`` and ``weight_decay`` are read from the config when it has them.
    """
    return EmbeddingClassifier(
        pca_dim=cfg.pca_dim,
        whiten=cfg.whiten,
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=getattr(cfg, "batch_size", 256),
        weight_decay=getattr(cfg, "weight_decay", 0.0),
        seed=seed,
        device=device,
    )
