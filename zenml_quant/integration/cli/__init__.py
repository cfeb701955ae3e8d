"""``zenml-quant``: the command line.

``demo`` trains a small CNN on the bundled digits and compresses it; ``compress`` does the same
for the user's model and data; ``search`` runs the architecture search (``nas_pipeline``);
``retrain`` runs (or schedules) ``retrain_and_compress``; all run on the active ZenML stack (ZenML
creates its local SQLite store on first use). ``studio`` serves the local page to edit a model
layer by layer. One module per command; options shared by several are declared once in
:mod:`.options`, and every option is checked (:mod:`.checks`) before ZenML or TensorFlow loads.
"""

from .app import main
from .studio import _prepare_studio

__all__ = ["_prepare_studio", "main"]
