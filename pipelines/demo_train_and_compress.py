"""Train the demo CNN and compress it, all inside one ZenML pipeline.

``python -m pipelines.demo_train_and_compress`` — shows the plugin's steps taking a model
produced by an upstream step instead of a file.
"""

from zenml import pipeline

from steps import (
    compare_candidates,
    convert_to_tflite,
    evaluate_baseline,
    evaluate_tflite_model,
    load_labeled_dataset,
    train_demo_model_step,
)


@pipeline
def demo_train_and_compress(epochs: int = 15) -> None:
    """digits -> train -> baseline -> float32 and int8 -> comparison."""
    raw = load_labeled_dataset("digits", id="load_raw_digits")
    model = train_demo_model_step(raw, epochs=epochs)
    data = load_labeled_dataset("digits", model=model)
    baseline, _, _ = evaluate_baseline(model, data)
    candidates = []
    for mode in ("float32", "int8"):
        tflite = convert_to_tflite(model, data, mode=mode, id=f"convert_{mode}")
        candidates.append(evaluate_tflite_model(tflite, data, name=mode, id=f"evaluate_{mode}"))
    compare_candidates(baseline, candidates)


if __name__ == "__main__":
    demo_train_and_compress()
