"""Shared fixtures: tiny synthetic data sets, generated once per session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A small synthetic Kaggle-layout folder shared by the pipeline tests."""
    from whaleflow.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("tiny_data")
    generate_synthetic(root, individuals=24, seed=1, width=96, height=64)
    return root


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A larger synthetic set (60 individuals) where learning shows above the noise of tiny sets."""
    from whaleflow.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("small_data")
    generate_synthetic(root, individuals=60, seed=3, width=128, height=96)
    return root
