"""`output.store.kind: s3` against a local S3-compatible server (moto's server mode, a dev dependency)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acceptance.conftest import FIXTURES

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_result_stored_on_s3_is_read_back_lazily(noetl: Any, s3_endpoint: str, noetl_home: Path) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="noetl-results")
    env = {**CREDENTIALS, "NOETL_RESULTS_S3_BUCKET": "noetl-results", "NOETL_RESULTS_S3_ENDPOINT": s3_endpoint}
    run = noetl("run", str(FIXTURES / "results" / "s3_store.yaml"), "--json", env=env)
    assert run.code == 0, run.stderr
    doc = run.json()
    uri = doc["steps"]["start"]["result"]["_ref"]["uri"]
    assert uri.startswith(f"s3://noetl-results/noetl/results/{doc['execution_id']}/")
    assert doc["result"] == {"second": 1, "n": 3, "uri": uri}
    key = uri.removeprefix("s3://noetl-results/")
    assert b'"pad"' in client.get_object(Bucket="noetl-results", Key=key)["Body"].read()
    whole = noetl("result", doc["execution_id"], "start", env=env)
    assert whole.code == 0 and whole.json()["rows"][2]["i"] == 2


def test_s3_without_a_bucket_is_a_clear_step_error(noetl: Any) -> None:
    run = noetl("run", str(FIXTURES / "results" / "s3_store.yaml"), "--json", env={"NOETL_RESULTS_S3_BUCKET": ""})
    assert run.code == 1
    assert "output.store.kind s3 needs NOETL_RESULTS_S3_BUCKET" in run.json()["error"]
