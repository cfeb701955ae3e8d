"""The studio's web app: a JSON API over :class:`~.session.Studio` and one local page.

Requests never carry paths: the app serves the model and data it was started with, every body
is checked against a schema that forbids unknown fields, and the page's assets are a fixed list
of files shipped in the package (no network at run time).
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ZenmlQuantError
from ..search.edits import Edit, EditPlan
from ..summary import RunSummary
from .guard import Guard, allowed_hosts, new_token
from .jobs import JobQueueFull, JobRunner
from .session import (
    DEFAULT_FINE_TUNE_EPOCHS,
    MAX_FINE_TUNE_EPOCHS,
    STUDIO_MODES,
    PlanEvaluation,
    Studio,
)

__all__ = ["create_app"]

#: The page's assets: name -> media type. Nothing else is served from the package.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EditIn(_Strict):
    layer: str = Field(min_length=1, max_length=200)
    op: str = Field(min_length=1, max_length=20)
    value: str | float | None = None


class PlanIn(_Strict):
    plan: list[EditIn] = Field(default_factory=list, max_length=500)
    mode: Literal["int8", "float16", "float32"] = "int8"


class EvaluateIn(PlanIn):
    #: None: the studio's default (a few epochs after an edit, none for the original).
    fine_tune_epochs: int | None = Field(default=None, ge=0, le=MAX_FINE_TUNE_EPOCHS)
    label: str | None = Field(default=None, max_length=100)


#: Stands in index.html for the session token the page sends back on every POST.
TOKEN_SLOT = "__STUDIO_TOKEN__"


def create_app(
    studio: Studio,
    *,
    runner: JobRunner | None = None,
    baseline: bool = True,
    port: int | None = None,
    token: str | None = None,
) -> Any:
    """The FastAPI app for ``studio``; with ``baseline`` the original model is evaluated first.

    Only requests for 127.0.0.1 or localhost on ``port`` (any port when None) are answered, and
    every POST must carry ``token`` (fresh when None; ``app.state.token``), which the page gets
    embedded in its HTML: see :mod:`.guard`.
    """
    app = FastAPI(title="zenml-quant studio", docs_url=None, redoc_url=None, openapi_url=None)
    jobs = runner or JobRunner()
    token = token or new_token()
    app.state.studio, app.state.jobs, app.state.token = studio, jobs, token
    app.add_middleware(Guard, token=token, hosts=allowed_hosts(port))

    @app.exception_handler(ZenmlQuantError)
    async def _our_error(request: Request, exc: ZenmlQuantError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(JobQueueFull)
    async def _queue_full(request: Request, exc: JobQueueFull) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=429)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer repeats the input; say where and what only.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:5]
        )
        return JSONResponse({"error": f"Invalid request: {problems}."}, status_code=422)

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    def plan_of(body: PlanIn) -> EditPlan:
        # The schema checked the shape; Edit checks each op and value (InvalidOptionError: 400).
        edits = tuple(Edit(e.layer, e.op, e.value) for e in body.plan)
        return EditPlan(edits, model=studio.space.model_name)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _asset("index.html").replace(TOKEN_SLOT, token)

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"No asset {name!r}.")
        return Response(_asset(name), media_type=ASSETS[name])

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        base = studio.baseline()
        return {
            "model": studio.space.model_name,
            "data": {
                "train": int(len(studio.dataset.y_train)),
                "validation": int(len(studio.dataset.y_val)),
            },
            "threads": studio.threads,
            "modes": list(STUDIO_MODES),
            "max_fine_tune_epochs": MAX_FINE_TUNE_EPOCHS,
            "default_fine_tune_epochs": DEFAULT_FINE_TUNE_EPOCHS,
            "targets": _clean(
                {k: v for k, v in vars(studio.targets).items() if v not in (None, False)}
            ),
            "baseline": None if base is None else base.id,
            "suggestions": [
                {
                    "index": i,
                    "label": s.label,
                    "edits": [e.to_dict() for e in s.plan.edits],
                    "lines": [e.describe() for e in s.plan.edits],
                    "figures": _clean(s.figures),
                }
                for i, s in enumerate(studio.suggestions)
            ],
            "history": [_summary(studio, e) for e in studio.history],
            "active_job": jobs.active(),
            "sensitivity": bool(studio.sensitivity),
            "run": _run(studio.run_summary),
        }

    @app.post("/api/layers")
    def layers(body: PlanIn) -> dict[str, Any]:
        plan = plan_of(body)
        rows = studio.layers(plan, body.mode)
        options = {r["layer"]: studio.options(r["layer"], plan) for r in rows if r["editable"]}
        return {"layers": _clean(rows), "options": _clean(options)}

    @app.post("/api/evaluate")
    def evaluate(body: EvaluateIn) -> dict[str, Any]:
        plan = plan_of(body)
        studio.space.validate(plan)  # refuse a bad plan now, not in the job

        def work(progress: Any) -> dict[str, Any]:
            evaluation = studio.evaluate(
                plan,
                mode=body.mode,
                fine_tune_epochs=body.fine_tune_epochs,
                label=body.label,
                progress=progress,
            )
            return {"evaluation": evaluation.id}

        return jobs.submit("evaluate", work).to_dict()

    @app.post("/api/sensitivity")
    def sensitivity() -> dict[str, Any]:
        def work(progress: Any) -> dict[str, Any]:
            from ..sensitivity import profile_sensitivity

            report = profile_sensitivity(
                studio.model,
                studio.dataset,
                mode="fast",
                progress=lambda done, total, message: progress("profiling", done / total),
            )
            table = report.table
            studio.sensitivity = {
                str(r["layer"]): float(r["sensitivity_pts"])
                for r in table.to_dict("records")
                if r["sensitivity_pts"] == r["sensitivity_pts"]  # measured layers only (not NaN)
            }
            return {"layers": len(studio.sensitivity)}

        return jobs.submit("sensitivity", work).to_dict()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: int) -> dict[str, Any]:
        return _clean(jobs.get(job_id).to_dict())

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: int) -> dict[str, Any]:
        return _clean(jobs.cancel(job_id).to_dict())

    @app.get("/api/evaluations/{evaluation_id}")
    def evaluation(evaluation_id: int) -> dict[str, Any]:
        e = studio.evaluation(evaluation_id)
        base = studio.baseline()
        return _clean(
            {
                **_summary(studio, e),
                "layers": e.layers,
                "targets": studio.check_targets(e.figures) if e.ok else [],
                "baseline": None if base is None else _summary(studio, base),
            }
        )

    @app.get("/api/evaluations/{evaluation_id}/plan.yaml")
    def export(evaluation_id: int) -> Response:
        text = studio.export(evaluation_id)
        name = f"{studio.space.model_name}_plan_{evaluation_id}.yaml"
        return Response(
            text,
            media_type="application/x-yaml",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    if baseline:
        jobs.submit(
            "evaluate",
            lambda progress: {
                "evaluation": studio.evaluate(
                    EditPlan(model=studio.space.model_name), progress=progress
                ).id
            },
        )
    return app


def _asset(name: str) -> str:
    return resources.files("zenml_quant.studio").joinpath("static", name).read_text("utf-8")


def _run(summary: RunSummary | None) -> dict[str, Any] | None:
    """The pipeline run's candidates and gate decision, as the run's summary has them."""
    if summary is None:
        return None
    payload = summary.to_dict()
    gate = payload.get("gate")
    return _clean(
        {
            "candidates": [
                {k: c[k] for k in ("name", "status", "reason", "accuracy", "size_bytes")}
                for c in payload["candidates"]
            ],
            "gate": None
            if gate is None
            else {k: gate[k] for k in ("passed", "selected", "promotion", "reasons")},
        }
    )


def _summary(studio: Studio, e: PlanEvaluation) -> dict[str, Any]:
    """An evaluation for the page; ``missed`` is judged now, by the gate's checks (so an
    evaluation made before the baseline existed is judged against it once it does)."""
    return _clean(
        {
            "id": e.id,
            "label": e.label,
            "status": e.status,
            "error": e.error,
            "mode": e.mode,
            "fine_tune_epochs": e.fine_tune_epochs,
            "fine_tune_seconds": e.fine_tune_seconds,
            "edits": [x.to_dict() for x in e.plan.edits],
            "lines": [x.describe() for x in e.plan.edits],
            "figures": e.figures,
            "missed": studio.missed(e) if e.ok else [],
            "seconds": e.seconds,
        }
    )


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
