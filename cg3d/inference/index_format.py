"""What an index row holds besides its embedding, and what the file records of its model.

Shared by ``cg3d embed`` (a user's files) and the pipeline's index rule (a dataset's shards), so
both write files that search, the page and the API read alike.
"""

from __future__ import annotations

from cg3d.models.trained import TrainedModel

PREVIEW_POINTS = 512
"""Points kept per shape for a 3D preview: the first of the model's farthest-point order, so they
cover the shape evenly."""
THUMBNAIL_SIZE = 128
"""Pixels of a thumbnail's side: big enough to recognise a shape in a gallery, small enough that
an index of a few thousand shapes stays a few megabytes."""


def index_metadata(model: TrainedModel, up_axis: str = "y") -> dict:
    """The model that made the embeddings (so a query from another is refused) and how shapes
    were read."""
    record = model.record
    return {
        "checkpoint": str(record.checkpoint),
        "checkpoint_sha256": record.checkpoint_sha256,
        "clip_model": record.clip_info["clip_model"],
        "clip_pretrained": str(record.clip_info["pretrained_source"]),
        "settings": {"model": record.provenance(), "num_points": record.num_points, "up_axis": up_axis},
    }
