"""The web app behind ``cg3d serve``: one page and a small JSON API over a ShapeSearch.

The model is not thread-safe, so the app is meant for Werkzeug's single-threaded server on
127.0.0.1 (``app.run(threaded=False)``), one person's search page rather than a public service.
A bad request (empty text, a file of another kind, a file that cannot be read) answers 400 with
``{"error": "<one line>"}``, which the page shows as it is.
"""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
from flask import Flask, Response, abort, jsonify, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from cg3d.inference.search import ShapeSearch, file_kind

DEFAULT_HITS = 12
MAX_HITS = 100
MAX_UPLOAD_BYTES = 512 * 2**20  # a dense lidar scan or a detailed mesh, not an accidental disk image


def create_app(searcher: ShapeSearch) -> Flask:
    """The page at ``/`` and the API under ``/api``, all answered by ``searcher``."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    page = files("cg3d.serve").joinpath("page.html").read_text(encoding="utf-8")
    rows = searcher.table.num_rows

    @app.get("/")
    def index() -> Response:
        return Response(page, mimetype="text/html")

    @app.post("/api/search")
    def search():
        try:
            k = hit_count(request.form.get("k"))
            kind, embedding = embed_request(searcher)
        except (ValueError, OSError) as error:
            return jsonify(error=one_line(error)), 400
        has_thumbnails = "thumbnail" in searcher.columns
        hits = [dict(hit.as_json(), thumbnail=url_for("thumbnail", row=hit.row) if has_thumbnails else None)
                for hit in searcher.search(embedding, k)]
        return jsonify(kind=kind, hits=hits)

    @app.get("/api/thumbnail/<int:row>")
    def thumbnail(row: int) -> Response:
        png = searcher.thumbnail(row) if row < rows else None
        if png is None:
            abort(404)
        return Response(png, mimetype="image/png")  # not cached: another index may be served on this port next

    @app.get("/api/preview/<int:row>")
    def preview(row: int):
        points = searcher.preview(row) if row < rows else None
        if points is None:
            abort(404)
        return jsonify(points=points)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        return jsonify(error=f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MiB"), 413

    return app


def hit_count(value: str | None) -> int:
    """The form's ``k``: how many hits to return (default DEFAULT_HITS)."""
    if value is None or not value.strip():
        return DEFAULT_HITS
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_HITS:
        raise ValueError(f"k must be a whole number from 1 to {MAX_HITS}, got {value!r}")
    return int(value)


def embed_request(searcher: ShapeSearch) -> tuple[str, np.ndarray]:
    """The query's kind and embedding [1, D]: the uploaded file if there is one, else the text."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return embed_upload(searcher, upload)
    return "text", searcher.embed_text(request.form.get("text", ""))


def embed_upload(searcher: ShapeSearch, upload: FileStorage) -> tuple[str, np.ndarray]:
    name = Path(upload.filename).name
    kind = file_kind(name)
    if kind == "image":
        return kind, searcher.embed_image(upload.read(), name)
    return kind, embed_uploaded_shape(searcher, upload, name)


def embed_uploaded_shape(searcher: ShapeSearch, upload: FileStorage, name: str) -> np.ndarray:
    """The shape readers take a path and go by its suffix: the upload is saved with its suffix in a
    temporary folder, deleted after. Errors name the upload, not the temporary file."""
    with tempfile.TemporaryDirectory(prefix="cg3d-serve-") as folder:
        saved = Path(folder) / f"upload{Path(name).suffix.lower()}"
        upload.save(saved)
        try:
            return searcher.embed_shape(saved)
        except (ValueError, OSError) as error:
            raise ValueError(str(error).replace(str(saved), name)) from None


def one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
