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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on localhost (moto's server mode, in a thread of this process) and the
    environment pyarrow reads it from (``AWS_ENDPOINT_URL``, test credentials). Ray started after
    this fixture hands the environment to its workers. Yields ``make_bucket(name) → "s3://name"``."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])

    def make_bucket(name: str) -> str:
        client.create_bucket(Bucket=name)
        return f"s3://{name}"

    make_bucket.client = client
    try:
        yield make_bucket
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
