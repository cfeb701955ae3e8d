"""Names the steps share."""

from __future__ import annotations

#: Each candidate's ``.tflite`` output carries its name (``zq_tflite_int8``, ``zq_tflite_qat``,
#: ...): the pipeline sets the ``candidate`` substitution per call. ZenML's cache key ignores
#: substitutions, so every call of one step must also differ in a parameter (the mode, name or
#: rank), or a cached output would come back under another candidate's name.
TFLITE_OUTPUT = "zq_tflite_{candidate}"

#: The prefix of every step and artifact name, so the plugin's steps are recognisable inside a
#: user's larger pipeline.
PREFIX = "zq_"
