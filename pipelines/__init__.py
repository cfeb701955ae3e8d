"""Runnable pipelines of this repository's ZenML project."""
