"""The studio: a local web page to edit a model layer by layer and see what each edit costs.

:class:`Studio` holds the model, the data and the evaluated plans (no web, no ZenML);
:func:`create_app` is the FastAPI app over it and :class:`StudioServer` serves it on
127.0.0.1. ``zenml-quant studio`` starts it from the command line.
"""

from .app import create_app
from .server import StudioServer, serve
from .session import STUDIO_MODES, PlanEvaluation, PlanSuggestion, Studio

__all__ = [
    "STUDIO_MODES",
    "PlanEvaluation",
    "Studio",
    "StudioServer",
    "PlanSuggestion",
    "create_app",
    "serve",
]
