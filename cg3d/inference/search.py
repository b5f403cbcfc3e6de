"""Search an embeddings index with a text, an image or a shape, through the model that built it.

A query is embedded by the model's own encoders (text: CLIP's text tower, as given; image:
CLIP's preprocessing and the prompted image tower; shape: read and prepared as ``cg3d embed``
reads the index's files, with the index's up axis), then ranked by cosine similarity over the
index (``cg3d.search``: exact, or ANN for a large one). An index made by another checkpoint or
CLIP is refused, naming both: its vectors live in another space.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cg3d.data.shape_files import SHAPE_SUFFIXES
from cg3d.inference.embed import read_prepared
from cg3d.inference.index_format import index_metadata
from cg3d.io import decode_rgb
from cg3d.models.trained import TrainedModel
from cg3d.plots import plot_gallery
from cg3d.search.embeddings_file import require_same_model
from cg3d.search.saved_index import open_index

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
QUERY_KINDS = ("text", "image", "shape")


@dataclass(frozen=True)
class Hit:
    """One ranked row of the index."""

    rank: int
    row: int
    id: str
    path: str
    score: float
    label: str | None

    def as_json(self) -> dict:
        return dict(self.__dict__)


def file_kind(name: str | Path) -> str:
    """``image`` or ``shape`` by the file's extension; a file of any other kind is refused."""
    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in SHAPE_SUFFIXES:
        return "shape"
    raise ValueError(f"{name}: neither an image ({' '.join(IMAGE_SUFFIXES)}) nor a shape file "
                     f"({' '.join(SHAPE_SUFFIXES)})")


def query_kind(query: str) -> str:
    """The kind of a command-line query: a file's (``file_kind``), or ``text`` for anything that
    names no file; a missing file with an image or shape extension is refused, not read as text."""
    path = Path(query)
    if path.is_file():
        return file_kind(path)
    if "\n" not in query and path.suffix.lower() in (*IMAGE_SUFFIXES, *SHAPE_SUFFIXES):
        raise FileNotFoundError(f"{query}: no such file (a query naming a {path.suffix} file must exist)")
    return "text"


def read_image(data: bytes, where: str) -> Image.Image:
    """An uploaded or read image file as RGB; a ValueError naming ``where`` if it is none."""
    try:
        with Image.open(BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"{where}: not an image Pillow can read ({error})") from None


class ShapeSearch:
    """An index opened once for a model: what ``cg3d search`` runs and the page queries."""

    def __init__(self, model: TrainedModel, index_path: str | Path, method: str = "auto"):
        self.model = model
        self.index, self.table, metadata = open_index(index_path, method=method)
        require_same_model(metadata, index_metadata(model))
        self.up_axis = metadata["settings"].get("up_axis", "y")
        self.columns = set(self.table.column_names)
        self._labels = self.table.column("label").to_pylist() if "label" in self.columns else None

    def embed_text(self, text: str) -> np.ndarray:
        if not text.strip():
            raise ValueError("the text query is empty")
        return self.model.encode_text([text]).numpy()

    def embed_image(self, data: bytes, where: str = "the image") -> np.ndarray:
        return self.model.encode_image([read_image(data, where)]).numpy()

    def embed_shape(self, path: str | Path) -> np.ndarray:
        _, prepared = read_prepared(self.model, path, self.up_axis)
        return self.model.encode_prepared(prepared[None]).numpy()

    def embed_query(self, query: str) -> np.ndarray:
        """The embedding [1, D] of a command-line query: text, or an image or shape file."""
        kind = query_kind(query)
        if kind == "image":
            return self.embed_image(Path(query).read_bytes(), query)
        if kind == "shape":
            return self.embed_shape(query)
        return self.embed_text(query)

    def search(self, query_embedding: np.ndarray, k: int = 10) -> list[Hit]:
        scores, rows = self.index.search(query_embedding, k)
        return [
            Hit(rank + 1, row, self.index.ids[row], self.table.column("path")[row].as_py(), float(score),
                self._labels[row] if self._labels else None)
            for rank, (score, row) in enumerate(zip(scores[0].tolist(), rows[0].tolist()))
        ]

    def thumbnail(self, row: int) -> bytes | None:
        return self.table.column("thumbnail")[row].as_py() if "thumbnail" in self.columns else None

    def preview(self, row: int) -> list[float] | None:
        """The row's preview points, flat x, y, z, for a 3D view."""
        return self.table.column("preview")[row].as_py() if "preview" in self.columns else None


def write_search_gallery(searcher: ShapeSearch, query: str, hits: list[Hit], path: str | Path) -> Path:
    """A PNG: the query (its text, its image, or a shape file's name) and the hits' thumbnails,
    each titled with its score."""
    kind = query_kind(query)
    if kind == "image":
        shown = np.asarray(read_image(Path(query).read_bytes(), query))
    else:
        shown = f"shape: {Path(query).name}" if kind == "shape" else query
    thumbnails = [np.asarray(decode_rgb(searcher.thumbnail(hit.row))) for hit in hits]
    titles = [f"{hit.score:.3f} {hit.label or Path(hit.id).stem}"[:24] for hit in hits]
    return plot_gallery([shown], [thumbnails], path, hit_titles=[titles])
