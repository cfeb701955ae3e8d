"""zenml-quant."""
