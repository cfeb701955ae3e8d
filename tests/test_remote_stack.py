"""A run on a remote artifact store: ``compress`` on a ZenML stack whose artifact store is S3.

The S3 is moto's server on loopback (a real HTTP endpoint speaking the S3 protocol, so s3fs,
botocore and ZenML's S3 flavor run exactly as against AWS). Each ZenML call runs in its own
process with its own ``ZENML_CONFIG_PATH``, as a user's would, so the suite's store is untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BUCKET = "zq-artifacts"

SETUP = """
from zenml.client import Client
from zenml.enums import StackComponentType

client = Client()
client.create_stack_component(
    name="s3-store",
    flavor="s3",
    component_type=StackComponentType.ARTIFACT_STORE,
    configuration={{"path": "s3://{bucket}/zenml", "client_kwargs": {{"endpoint_url": "{endpoint}"}}}},
)
client.create_stack(
    name="remote",
    components={{
        StackComponentType.ORCHESTRATOR: "default",
        StackComponentType.ARTIFACT_STORE: "s3-store",
    }},
)
client.activate_stack("remote")
"""

# Reload every output of the last run from the artifact store and report where each lives.
RELOAD = """
import json, warnings
from zenml.client import Client

warnings.simplefilter("ignore")
run = Client().list_pipeline_runs(sort_by="desc:created", size=1)[0]
report = {"status": str(run.status), "artifacts": {}}
for step_name, step_run in run.steps.items():
    for name, versions in step_run.outputs.items():
        for version in versions:
            value = version.load()
            report["artifacts"][f"{step_name}/{name}"] = {
                "uri": version.uri,
                "type": type(value).__name__,
            }
print("REPORT " + json.dumps(report))
"""


@pytest.fixture()
def s3_endpoint():
    """moto's S3 server on a free loopback port, with the bucket the stack writes to."""
    boto3 = pytest.importorskip("boto3", reason="boto3 comes with the dev extra")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        server.stop()


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # A file, not ``-c``: ZenML resolves sources from the main module's file.
    script = cwd / f"script_{len(list(cwd.glob('script_*.py')))}.py"
    script.write_text(textwrap.dedent(code))
    return _run([sys.executable, str(script)], env, cwd)


def test_compress_on_an_s3_artifact_store_reloads_every_artifact(
    digits_model_path, tmp_path, s3_endpoint
):
    endpoint, s3 = s3_endpoint
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    _python(SETUP.format(bucket=BUCKET, endpoint=endpoint), env, tmp_path)
    out = tmp_path / "out"
    compress = [
        str(Path(sys.executable).parent / "zenml-quant"),
        "compress",
        "--model",
        str(digits_model_path),
        "--data",
        "digits",
        "--mode",
        "int8",
        "--output-dir",
        str(out),
    ]
    printed = _run(compress, env, tmp_path).stdout
    assert "Deployment gate" in printed

    done = _python(RELOAD, env, tmp_path)
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report["status"] == "completed"
    artifacts = report["artifacts"]
    # Every step's outputs, the models, the dataset and the reports among them.
    assert len(artifacts) >= 25, sorted(artifacts)
    elsewhere = {k: v["uri"] for k, v in artifacts.items() if not v["uri"].startswith("s3://")}
    assert not elsewhere, elsewhere
    types = {k.split("/")[-1]: v["type"] for k, v in artifacts.items()}
    assert types["zq_tflite_int8"] == "TFLiteModel"
    assert types["zq_dataset"] == "LabeledDataset"
    assert types["zq_run_summary"] == "RunSummary"
    assert types["zq_gate_decision"] == "GateDecision"
    # The bytes are in the bucket, not in a local folder that happens to be named s3.
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith(".tflite") for key in keys), keys[:20]
    assert not list((tmp_path / "zenml").rglob("*.tflite")), "artifacts written to a local store"
    # The CLI wrote the candidate it read back from the store.
    assert (out / "demo_cnn_int8.tflite").stat().st_size > 1000
