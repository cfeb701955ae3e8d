"""The studio's core and JSON API on the digits CNN: edits offered, evaluations, export, errors."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest
from _studio_client import page_client

from zenml_quant.errors import InvalidOptionError
from zenml_quant.search import trial as trial_module
from zenml_quant.search.edits import EDIT_PRECISIONS, Edit, EditPlan
from zenml_quant.search.trial import load_keras_bytes
from zenml_quant.search.types import Targets
from zenml_quant.studio import PlanSuggestion, Studio, StudioServer, create_app
from zenml_quant.studio import session as studio_module
from zenml_quant.studio.suggestions import load_suggestions

TARGETS = Targets(max_size_bytes=14_300, max_quality_drop=0.05)
EDITED = [
    {"layer": "conv1", "op": "precision", "value": "float32"},
    {"layer": "relu1", "op": "activation", "value": "relu6"},
]


@pytest.fixture()
def client(digits, digits_model):
    studio = Studio(digits_model, digits, targets=TARGETS)
    with page_client(create_app(studio)) as c:
        assert _wait(c, 0)["status"] == "done"  # the original model, evaluated at start
        yield c


def _wait(client, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_layers_show_the_edited_model_and_only_valid_edits(client):
    original = client.post("/api/layers", json={"plan": []}).json()
    rows = {r["layer"]: r for r in original["layers"]}
    assert rows["conv1"]["precision"] == "int8" and rows["conv2"]["output_shape"].endswith("32)")
    assert rows["conv1"]["macs"] > 0 and rows["conv1"]["weight_bytes_int8"] > 0
    options = original["options"]
    conv1 = options["conv1"]
    # Every per-layer precision is on the menu, after keeping the original (int8).
    offered = [c["value"] for c in conv1["precision"]]
    assert offered == [None, *(p for p in EDIT_PRECISIONS if p != "int8")]
    assert {"int4", "int16x8", "float16_weights"} <= set(offered)
    assert conv1["precision"][0]["keep"] and conv1["precision"][0]["current"]
    assert "sepconv3" in [c["value"] for c in conv1["replace"]]
    # Removing the logits (or the only Dense) would change the output: never offered.
    assert "remove" not in options.get("logits", {})
    assert "activation" in options["relu1"]

    scaled = client.post(
        "/api/layers", json={"plan": [{"layer": "conv2", "op": "scale", "value": 0.5}]}
    ).json()
    rows = {r["layer"]: r for r in scaled["layers"]}
    assert rows["conv2"]["output_shape"].endswith("16)")
    assert rows["conv2"]["edits"] == ["scale conv2's filters/units by 0.5"]
    current = [c for c in scaled["options"]["conv2"]["scale"] if c["current"]]
    assert [c["value"] for c in current] == [0.5]
    float16 = client.post("/api/layers", json={"plan": [], "mode": "float16"}).json()
    assert {r["layer"]: r["precision"] for r in float16["layers"]}["conv1"] == "float16"


def test_edits_that_would_not_build_are_not_offered(digits):
    from zenml_quant._compat import tf_keras

    layers = tf_keras.layers
    inp = layers.Input((8, 8, 3))
    stem = layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    branch = layers.Conv2D(8, 3, padding="same", name="branch")(stem)
    x = layers.Add(name="add")([stem, branch])
    out = layers.Dense(10, name="logits")(layers.Flatten(name="flatten")(x))
    studio = Studio(tf_keras.Model(inp, out), digits)
    # The residual Add needs equal channels: the stem and the branch scale together, through
    # the stem, and the branch offers no scale of its own.
    assert not any(e.op == "scale" for e in studio.space.edits_for("branch"))
    assert "scale" not in studio.options("branch", EditPlan())
    assert 0.5 in [c["value"] for c in studio.options("stem", EditPlan())["scale"]]
    # the Add can go, leaving its shortcut (the stem) alone
    assert [c["keep"] for c in studio.options("add", EditPlan())["remove"]] == [True, False]
    # Without the stem the Add would meet the 3-channel image: removing it is not offered,
    # removing the branch (the Add then adds the stem to itself) is.
    assert any(e.op == "remove" for e in studio.space.edits_for("stem"))
    assert "remove" not in studio.options("stem", EditPlan())
    assert [c["keep"] for c in studio.options("branch", EditPlan())["remove"]] == [True, False]
    with pytest.raises(InvalidOptionError, match="not in model"):
        studio.options("nope", EditPlan())


def test_evaluate_shows_new_figures_beside_the_original_and_export_rebuilds_it(
    client, digits, digits_model
):
    from zenml_quant.integration.steps.search import apply_edits

    job = client.post("/api/evaluate", json={"plan": EDITED, "fine_tune_epochs": 1}).json()
    assert _wait(client, job["id"])["result"] == {"evaluation": 1}
    shown = client.get("/api/evaluations/1").json()
    base = shown["baseline"]["figures"]
    assert shown["status"] == "ok" and shown["lines"] == [
        "keep conv1 in float32",
        "set relu1's activation to relu6",
    ]
    assert shown["figures"]["size_bytes"] > base["size_bytes"]  # conv1's weights stay float
    assert shown["figures"]["accuracy"] != base["accuracy"]  # relu6 and a fine-tuned epoch
    assert {r["layer"]: r["precision"] for r in shown["layers"]}["conv1"] == "float32"
    targets = {t["target"]: t for t in shown["targets"]}
    assert targets["size"]["met"] is False and targets["quality_drop"]["met"] is True
    assert shown["missed"] == [targets["size"]["reason"]]
    assert "> limit 14,300 B" in shown["missed"][0]
    assert shown["fine_tune_epochs"] == 1 and shown["fine_tune_seconds"] > 0
    history = client.get("/api/state").json()["history"]
    assert [h["id"] for h in history] == [0, 1] and history[0]["lines"] == []

    exported = client.get("/api/evaluations/1/plan.yaml")
    assert "attachment" in exported.headers["content-disposition"]
    rebuilt, _ = apply_edits.entrypoint(digits_model, exported.text, digits)
    studio = client.app.state.studio
    kept = load_keras_bytes(studio.evaluation(1).keras)
    assert rebuilt.to_json() == kept.to_json()
    for a, b in zip(rebuilt.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_plans_and_requests_are_refused_with_the_reason(client):
    removed = client.post("/api/evaluate", json={"plan": [{"layer": "logits", "op": "remove"}]})
    assert removed.status_code == 400 and "would change shape" in removed.json()["error"]
    unknown = client.post("/api/layers", json={"plan": [{"layer": "nope", "op": "remove"}]})
    assert unknown.status_code == 400 and "'nope' is not in model" in unknown.json()["error"]
    bad_value = client.post(
        "/api/layers", json={"plan": [{"layer": "relu1", "op": "activation", "value": "gelu"}]}
    )
    assert bad_value.status_code == 400 and "relu6" in bad_value.json()["error"]
    # The server only serves the model and data it started with: no field names a path.
    for body in (
        {"plan": [], "model": "/etc/passwd"},
        {"plan": [], "data": "../secret.npz"},
        {"plan": [{"layer": "conv1", "op": "remove", "path": "/tmp/x.keras"}]},
    ):
        refused = client.post("/api/evaluate", json=body)
        assert refused.status_code == 422 and "extra" in json.dumps(refused.json()).lower()
    assert (
        client.post("/api/evaluate", json={"plan": [], "fine_tune_epochs": 99}).status_code == 422
    )
    assert client.get("/static/..%2F..%2Fsession.py").status_code == 404
    assert client.get("/static/../session.py").status_code == 404
    assert client.get("/api/evaluations/42").status_code == 400
    assert client.get("/api/jobs/42").status_code == 400
    # ...and after all that, the server still evaluates.
    assert len(client.get("/api/state").json()["history"]) == 1


def test_a_running_evaluation_can_be_cancelled_and_a_failing_one_is_reported(client, monkeypatch):
    job = client.post("/api/evaluate", json={"plan": [], "fine_tune_epochs": 20}).json()
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job['id']}").json()["phase"] != "fine-tuning":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.post(f"/api/jobs/{job['id']}/cancel", json={})
    assert _wait(client, job["id"])["status"] == "cancelled"

    def refuse(*args, **kwargs):
        raise RuntimeError("converter refused the model")

    monkeypatch.setattr(trial_module, "_convert", refuse)
    job = client.post("/api/evaluate", json={"plan": EDITED}).json()
    assert _wait(client, job["id"])["status"] == "done"  # a failed trial is still a result
    failed = client.get("/api/evaluations/1").json()
    assert failed["status"] == "failed" and "converter refused" in failed["error"]
    assert client.get("/api/evaluations/1/plan.yaml").status_code == 200  # the plan survives


def test_suggestions_from_a_search_summary_and_plan_files(tmp_path, digits, digits_model):
    plan = EditPlan((Edit("conv2", "scale", 0.5),), model="demo_cnn")
    summary = {
        "candidates": [
            {"trial": 3, "pareto": True, "plan": plan.to_dict(), "accuracy": 0.9},
            {"trial": 4, "pareto": False, "plan": EditPlan(()).to_dict()},
        ]
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "mine.yaml").write_text(plan.to_yaml())
    from_json = load_suggestions(tmp_path / "summary.json")
    assert [(s.label, s.plan.edits) for s in from_json] == [("trial 3", plan.edits)]
    assert [s.label for s in load_suggestions(tmp_path / "plans")] == ["mine"]
    with pytest.raises(InvalidOptionError, match="no edit-plan"):
        load_suggestions(tmp_path)
    with pytest.raises(InvalidOptionError, match="not a search summary"):
        (tmp_path / "other.json").write_text("[1, 2]")
        load_suggestions(tmp_path / "other.json")

    studio = Studio(digits_model, digits, suggestions=from_json)
    state = page_client(create_app(studio, baseline=False)).get("/api/state").json()
    assert state["suggestions"][0]["lines"] == ["scale conv2's filters/units by 0.5"]
    wrong = PlanSuggestion("other model", EditPlan((Edit("dense_9", "remove"),)))
    with pytest.raises(InvalidOptionError, match="does not fit this model"):
        Studio(digits_model, digits, suggestions=[wrong])


def test_server_binds_localhost_on_a_free_port_and_refuses_a_taken_one(digits, digits_model):
    studio = Studio(digits_model, digits)
    with StudioServer(studio, baseline=False) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        with urllib.request.urlopen(server.url, timeout=10) as page:
            assert b"zenml-quant studio" in page.read()
        with urllib.request.urlopen(server.url + "static/app.js", timeout=10) as script:
            assert b"/api/evaluate" in script.read()
        with pytest.raises(InvalidOptionError, match="Cannot listen"):
            StudioServer(studio, port=server.port, baseline=False)


def test_sensitivity_fills_the_table_and_float_modes_convert_the_whole_model(client):
    job = client.post("/api/sensitivity", json={}).json()
    assert _wait(client, job["id"])["status"] == "done"
    rows = client.post("/api/layers", json={"plan": []}).json()["layers"]
    profiled = {r["layer"]: r["sensitivity_pts"] for r in rows if r["sensitivity_pts"] is not None}
    assert profiled and set(profiled) <= {"conv1", "conv2", "logits"}
    assert client.get("/api/state").json()["sensitivity"] is True

    sizes = {}
    for mode in ("float16", "float32"):
        job = client.post("/api/evaluate", json={"plan": [], "mode": mode}).json()
        evaluation = _wait(client, job["id"])["result"]["evaluation"]
        shown = client.get(f"/api/evaluations/{evaluation}").json()
        assert shown["mode"] == mode
        assert {r["layer"]: r["precision"] for r in shown["layers"]}["conv2"] == mode
        sizes[mode] = shown["figures"]["size_bytes"]
    int8 = client.get("/api/evaluations/0").json()["figures"]["size_bytes"]
    assert int8 < sizes["float16"] < sizes["float32"]


def test_an_int4_layer_from_the_menu_shrinks_the_file_and_shows_in_the_table(client):
    plan = [{"layer": "conv2", "op": "precision", "value": "int4"}]
    job = client.post("/api/evaluate", json={"plan": plan}).json()
    assert _wait(client, job["id"])["result"] == {"evaluation": 1}
    shown = client.get("/api/evaluations/1").json()
    assert shown["status"] == "ok" and shown["lines"] == ["keep conv2 in int4"]
    precisions = {r["layer"]: r["precision"] for r in shown["layers"]}
    assert precisions["conv2"] == "int4" and precisions["conv1"] == "int8"
    # conv2 holds most of the weights: int4 there takes thousands of bytes off.
    assert shown["figures"]["size_bytes"] < shown["baseline"]["figures"]["size_bytes"] - 1000


def test_met_means_what_the_gate_means_in_the_history_the_table_and_the_gate(digits, digits_model):
    """The original is judged too (it was once "all met" in the history because it was
    evaluated before there was a baseline), and an edit is fine-tuned by default."""
    from zenml_quant.gate import CandidateMeasurements, check_candidate

    targets = Targets(max_size_bytes=1_000, max_quality_drop=0.05)
    studio = Studio(digits_model, digits, targets=targets)
    with page_client(create_app(studio)) as client:
        assert _wait(client, 0)["status"] == "done"
        edit = [{"layer": "conv2", "op": "scale", "value": 0.5}]
        job = client.post("/api/evaluate", json={"plan": edit}).json()
        assert _wait(client, job["id"])["status"] == "done"
        history = client.get("/api/state").json()["history"]
        for row in history:
            shown = client.get(f"/api/evaluations/{row['id']}").json()
            failed = [t["reason"] for t in shown["targets"] if not t["met"]]
            assert row["missed"] == failed and any("limit 1,000 B" in m for m in failed)
            figures = shown["figures"]
            gate = check_candidate(
                targets,
                CandidateMeasurements(
                    "x",
                    figures["accuracy"],
                    history[0]["figures"]["accuracy"],
                    figures["size_bytes"],
                    n_examples=len(digits.y_val),
                ),
            )
            assert [c.reason for c in gate if not c.passed] == failed
        original, edited = history
        assert original["fine_tune_epochs"] == 0 and original["fine_tune_seconds"] is None
        assert edited["fine_tune_epochs"] == studio_module.DEFAULT_FINE_TUNE_EPOCHS > 0
        assert edited["fine_tune_seconds"] > 0
        state = client.get("/api/state").json()
        assert state["default_fine_tune_epochs"] == studio_module.DEFAULT_FINE_TUNE_EPOCHS
