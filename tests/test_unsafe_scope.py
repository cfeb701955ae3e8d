"""``allow_unsafe`` is a permission for one load, never for the rest of the process.

Each Lambda below touches a marker file when its code runs, so a test sees not only that a
load was refused, but that no code from the file ran.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from zenml import pipeline, step

from zenml_quant._compat import keras3, tf_keras
from zenml_quant.errors import InvalidModelError
from zenml_quant.integration.materializers import KerasModelMaterializer
from zenml_quant.models import allow_unsafe_loading, load_model, unsafe_loading_allowed

FLAVOURS = {"tf_keras": tf_keras, "keras3": keras3}
CASES = [("tf_keras", "m.keras"), ("tf_keras", "m.h5"), ("keras3", "m.keras")]


def _lambda_model(keras: Any, marker: Path, name: str) -> Any:
    """A Functional model whose Lambda touches ``marker`` whenever its code runs."""
    # Built from source so the marker's path is a constant in the serialised bytecode.
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x * 2.0)[1]")
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(fn, name=name)(inputs)
    marker.unlink(missing_ok=True)  # building the model ran the code once
    return keras.Model(inputs, outputs, name=name)


def _save(model: Any, path: Path) -> Path:
    with warnings.catch_warnings():  # .h5 is a legacy format
        warnings.simplefilter("ignore")
        model.save(str(path))
    return path


def _safe_modes() -> tuple[Any, Any]:
    """Both flavours' global "safe mode" (None: never set)."""
    from keras.src.saving import serialization_lib as k3
    from tf_keras.src.saving import serialization_lib as tk

    return tk.in_safe_mode(), k3.in_safe_mode()


@pytest.fixture()
def markers(tmp_path):
    return tmp_path / "ran-a", tmp_path / "ran-b"


@pytest.mark.parametrize(("flavour", "fmt"), CASES)
def test_permission_ends_with_the_call(tmp_path, markers, flavour, fmt):
    keras = FLAVOURS[flavour]
    ran_a, ran_b = markers
    a = _save(_lambda_model(keras, ran_a, "model_a"), tmp_path / f"a_{fmt}")
    b = _save(_lambda_model(keras, ran_b, "model_b"), tmp_path / f"b_{fmt}")
    before = _safe_modes()

    loaded = load_model(a, allow_unsafe=True)
    assert ran_a.exists()  # the permitted load did run A's code
    np.testing.assert_allclose(np.asarray(loaded(np.ones((1, 3), np.float32))), 2.0)
    assert _safe_modes() == before

    with pytest.raises(InvalidModelError, match="Lambda layer.*'model_b'.*allow_unsafe=True"):
        load_model(b)
    assert not ran_b.exists()
    assert _safe_modes() == before


@pytest.mark.parametrize("previous", [None, True, False])
def test_keras_safe_mode_is_put_back_after_every_load(tmp_path, markers, previous):
    from keras.src.saving import serialization_lib as k3
    from tf_keras.src.saving import serialization_lib as tk

    path = _save(_lambda_model(tf_keras, markers[0], "model_a"), tmp_path / "a.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    with tk.SafeModeScope(previous), k3.SafeModeScope(previous):
        load_model(path, allow_unsafe=True)
        assert _safe_modes() == (previous, previous)
        with pytest.raises(InvalidModelError):
            load_model(broken, allow_unsafe=True)
        assert _safe_modes() == (previous, previous)


def test_a_global_unsafe_switch_does_not_open_the_door(tmp_path, markers):
    # keras.config.enable_unsafe_deserialization() flips the global for good; our loads still
    # refuse Lambda layers unless their own call allows them.
    from keras.src.saving import serialization_lib as k3
    from tf_keras.src.saving import serialization_lib as tk

    paths = [
        _save(_lambda_model(tf_keras, markers[0], "tf_model"), tmp_path / "tf.h5"),
        _save(_lambda_model(keras3, markers[1], "k3_model"), tmp_path / "k3.keras"),
    ]
    with tk.SafeModeScope(True), k3.SafeModeScope(True):  # put back whatever the switch did
        tk.enable_unsafe_deserialization()
        keras3.config.enable_unsafe_deserialization()
        for path in paths:
            with pytest.raises(InvalidModelError, match="Lambda"):
                load_model(path)
        assert _safe_modes() == (False, False)  # our load left the user's switch as it was
    assert not markers[0].exists() and not markers[1].exists()


def test_allow_unsafe_loading_covers_its_block_and_thread_only(tmp_path, markers):
    path = _save(_lambda_model(tf_keras, markers[0], "model_a"), tmp_path / "a.keras")
    seen_in_thread = []
    with allow_unsafe_loading():
        assert unsafe_loading_allowed()
        load_model(path)
        thread = threading.Thread(target=lambda: seen_in_thread.append(unsafe_loading_allowed()))
        thread.start()
        thread.join()
    assert seen_in_thread == [False]
    assert not unsafe_loading_allowed()
    with pytest.raises(RuntimeError, match="inside"):
        with allow_unsafe_loading():
            raise RuntimeError("inside")
    assert not unsafe_loading_allowed()
    markers[0].unlink()
    with pytest.raises(InvalidModelError, match="Lambda"):
        load_model(path)
    assert not markers[0].exists()


# --- through ZenML: the Keras materializer and the studio's sources ----------------------------


@pytest.fixture()
def store_folder():
    """A fresh folder inside the active (throwaway) artifact store."""
    from zenml.client import Client

    root = Path(Client().active_stack.artifact_store.path) / "zq-unsafe-tests" / uuid.uuid4().hex
    root.mkdir(parents=True)
    return root


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_materializer_needs_a_permission_for_each_load(store_folder, markers, flavour):
    ran, _ = markers
    model = _lambda_model(FLAVOURS[flavour], ran, "lambda_model")
    KerasModelMaterializer(uri=str(store_folder)).save(model)
    ran.unlink(missing_ok=True)

    with pytest.raises(InvalidModelError, match="allow_unsafe_loading"):
        KerasModelMaterializer(uri=str(store_folder)).load(type(model))
    assert not ran.exists()

    with allow_unsafe_loading():
        loaded = KerasModelMaterializer(uri=str(store_folder)).load(type(model))
    assert ran.exists() and loaded.name == "lambda_model"
    ran.unlink()

    with pytest.raises(InvalidModelError, match="allow_unsafe_loading"):
        KerasModelMaterializer(uri=str(store_folder)).load(type(model))
    assert not ran.exists()


def test_studio_artifact_source_after_an_unsafe_load(tmp_path, markers):
    # The reported sequence: a model loaded with allow_unsafe=True, then the studio's
    # --artifact without --allow-unsafe. The second must not run the artifact's code.
    from zenml.artifacts.utils import save_artifact

    from zenml_quant.integration.studio_sources import from_artifact

    ran_a, ran_b = markers
    load_model(_save(_lambda_model(tf_keras, ran_a, "a"), tmp_path / "a.keras"), allow_unsafe=True)
    name = f"zq_test_lambda_{uuid.uuid4().hex[:8]}"
    save_artifact(
        _lambda_model(tf_keras, ran_b, "b"), name=name, materializer=KerasModelMaterializer
    )
    ran_b.unlink(missing_ok=True)

    with pytest.raises(InvalidModelError, match="Lambda"):
        from_artifact(name)
    assert not ran_b.exists()

    found = from_artifact(name, allow_unsafe=True)
    assert found.model.name == "b" and ran_b.exists()
    ran_b.unlink()

    with pytest.raises(InvalidModelError, match="Lambda"):
        from_artifact(name)
    assert not ran_b.exists() and not unsafe_loading_allowed()


@step(output_materializers=KerasModelMaterializer)
def make_lambda_model() -> Annotated[Any, "zq_test_lambda_model"]:
    inputs = tf_keras.Input((3,))
    outputs = tf_keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    return tf_keras.Model(inputs, outputs, name="in_run_lambda")


@step(enable_cache=False)
def use_model(model: Any) -> int:
    return len(model.layers)


@pipeline
def lambda_pipeline() -> None:
    use_model(make_lambda_model())


def test_a_run_may_load_the_lambda_model_it_made_but_nobody_else_may():
    from zenml.client import Client

    first = lambda_pipeline.with_options(enable_cache=False)()
    second = lambda_pipeline.with_options(enable_cache=True)()  # the maker may be a cache hit
    third = lambda_pipeline.with_options(enable_cache=True)()
    for run in (first, second, third):
        run = Client().get_pipeline_run(run.id)
        assert str(run.status) == "completed"
        assert run.steps["use_model"].outputs["output"][0].load() == 2
    assert str(Client().get_pipeline_run(third.id).steps["make_lambda_model"].status) == "cached"

    artifact = Client().get_pipeline_run(first.id).steps["make_lambda_model"].outputs
    with pytest.raises(InvalidModelError, match="allow_unsafe_loading"):
        artifact["zq_test_lambda_model"][0].load()
