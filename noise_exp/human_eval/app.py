"""The FastAPI application behind the human preference page (paper Figure 10, appendix A.3).

Routes: `/` (the page), `/app.js`, `/style.css`, and under `/api`: `info`, `next` (the annotator's next unvoted
pair and progress), `image` (one side of a pair, addressed by pair id and side, never by a path) and `votes`.
Every error is answered as `{"error": "<one line>"}` with a 4xx status. When a token is set, every `/api` call
must carry it (header `X-Token` or query `token`); the page takes it from its own URL.
"""
from __future__ import annotations

import hmac
import ipaddress
import re
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from noise_exp.human_eval import page
from noise_exp.human_eval.page import CRITERIA
from noise_exp.human_eval.pairs import PairSet, annotator_sequence, image_for_side, served_image, shown_order
from noise_exp.rundir.votes import DB_NAME, TIE, DuplicateVote, Vote, VoteStore, utc_now

# No leading/trailing space, so "alice" and "alice " cannot become two annotators.
_ANNOTATOR_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.@-]{0,62}[A-Za-z0-9_.@-])?")
MAX_BODY_BYTES = 16 * 1024
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: str = Field(min_length=1, max_length=64)
    pair_id: str = Field(min_length=1, max_length=1000)
    choice: Literal["left", "right", "tie"]


def _check_annotator(annotator: str) -> str:
    if not _ANNOTATOR_RE.fullmatch(annotator):
        raise ApiError(
            422,
            "annotator name must be 1-64 characters: letters, digits, space, '_', '.', '@', '-', "
            "starting with a letter or digit and not ending with a space",
        )
    return annotator


def _validation_message(err: RequestValidationError) -> str:
    first = err.errors()[0] if err.errors() else {}
    if first.get("type") == "json_invalid":
        return "malformed JSON body"
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
    return f"{where or 'request'}: {first.get('msg', 'invalid value')}"


def create_app(pair_set: PairSet, store: VoteStore, token: str | None = None) -> FastAPI:
    pairs = pair_set.by_id()
    total = len(pair_set.pairs)
    app = FastAPI(title="noise-exp human evaluation", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(err)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        message = "not found" if err.status_code == 404 else str(err.detail)
        return JSONResponse({"error": message}, status_code=err.status_code)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.method == "POST":  # a vote is ~200 bytes: refuse a body before reading it, by its declared size
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                return JSONResponse({"error": "a request body needs a Content-Length"}, status_code=411,
                                    headers=_SECURITY_HEADERS)
            if int(length) > MAX_BODY_BYTES:
                return JSONResponse({"error": f"request body of {length} bytes is over the limit of "
                                              f"{MAX_BODY_BYTES}"}, status_code=413, headers=_SECURITY_HEADERS)
        if token is not None and request.url.path.startswith("/api/"):
            given = request.headers.get("x-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "missing or wrong token"}, status_code=401, headers=_SECURITY_HEADERS)
        response = await call_next(request)
        response.headers.update(_SECURITY_HEADERS)
        if request.url.path.startswith("/api/") and request.url.path != "/api/image":
            response.headers["Cache-Control"] = "no-store"
        return response

    def pair_or_404(pair_id: str):
        pair = pairs.get(pair_id)
        if pair is None:
            raise ApiError(404, f"unknown pair_id {pair_id[:200]!r}")
        return pair

    def progress(annotator: str) -> dict:
        voted = store.voted_pair_ids(annotator) & pairs.keys()
        return {"done": len(voted), "total": total}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page.INDEX_HTML)

    @app.get("/app.js")
    def script() -> Response:
        return Response(page.APP_JS, media_type="text/javascript")

    @app.get("/style.css")
    def style() -> Response:
        return Response(page.STYLE_CSS, media_type="text/css")

    @app.get("/api/info")
    def info() -> dict:
        comparisons = sorted({pair.comparison for pair in pair_set.pairs})
        return {"total_pairs": total, "criteria": list(CRITERIA), "comparisons": comparisons}

    @app.get("/api/next")
    def next_pair(annotator: str = Query(min_length=1, max_length=64)) -> dict:
        annotator = _check_annotator(annotator)
        voted = store.voted_pair_ids(annotator)
        status = {"done": len(voted & pairs.keys()), "total": total}
        for pair in annotator_sequence(annotator, pair_set.pairs):
            if pair.pair_id not in voted:
                return {
                    "finished": False,
                    "progress": status,
                    "pair": {"pair_id": pair.pair_id, "prompt": pair.prompt, "number": status["done"] + 1},
                }
        return {"finished": True, "progress": status, "pair": None}

    @app.get("/api/image")
    def image(
        pair_id: str = Query(min_length=1, max_length=1000),
        side: Literal["left", "right"] = Query(),
        annotator: str = Query(min_length=1, max_length=64),
    ) -> FileResponse:
        pair = pair_or_404(pair_id)
        path = served_image(pair_set.root, image_for_side(_check_annotator(annotator), pair, side))
        if path is None:  # checked at start too, but the file may have been replaced since (e.g. by a symlink)
            raise ApiError(404, f"the image of pair {pair_id[:200]!r} is gone or no longer inside the served folder")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/votes", status_code=201)
    def vote(body: VoteIn) -> dict:
        annotator = _check_annotator(body.annotator)
        pair = pair_or_404(body.pair_id)
        left, right = shown_order(annotator, pair)
        winner = {"left": left, "right": right, "tie": TIE}[body.choice]
        try:
            store.record(
                Vote(
                    annotator=annotator,
                    pair_id=pair.pair_id,
                    run=pair.run,
                    dataset=pair.dataset,
                    prompt_id=pair.prompt_id,
                    comparison=pair.comparison,
                    variant_a=pair.variant_a,
                    variant_b=pair.variant_b,
                    left_variant=left,
                    right_variant=right,
                    choice=body.choice,
                    winner=winner,
                    created_at=utc_now(),
                )
            )
        except DuplicateVote as err:
            raise ApiError(409, str(err)) from err
        # The winner is not echoed: the annotator stays blind to which variant was where.
        return {"status": "recorded", "progress": progress(annotator)}

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def db_path(folder: Path) -> Path:
    return Path(folder).resolve() / DB_NAME
