"""The skeleton every downstream job shares: one tracked run, one provenance record.

Zero-shot, retrieval, fine-tuning and scene queries each load a :class:`TrainedModel`, score it
inside :func:`evaluation_run` (an MLflow run nested under the pretraining run, carrying the
settings the compare view lines up), and write a results file whose common part is
:func:`provenance_fields`, validated by ``workflow/schemas/results.schema.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cg3d.models.trained import ModelRecord
from cg3d.settings import settings_hash
from cg3d.tracking import Tracker, tracked_run, tracking_uri_from


@contextmanager
def evaluation_run(settings: dict, stage: str, run_name: str, record: ModelRecord) -> Iterator[Tracker]:
    """An MLflow run in the config's experiment (``name``) at its ``tracking.uri``, nested under the
    pretraining run, tagged with the settings' hash, with the job's settings (which include the
    pretraining and CLIP settings) as params."""
    with tracked_run(
        tracking_uri=tracking_uri_from(settings.get("tracking", {}).get("uri")),
        experiment=settings.get("name", "cg3d"),
        stage=stage,
        run_name=run_name,
        config_hash=settings_hash(settings),
        parent_run_id=record.pretrain_run_id,
    ) as tracker:
        tracker.log_params({key: value for key, value in settings.items() if key != "tracking"})
        provenance = record.provenance()
        tracker.set_tags({
            "checkpoint": provenance["checkpoint"],
            "clip_pretrained": str(provenance["clip_pretrained"]).lower(),
        })
        yield tracker


def provenance_fields(settings: dict, tracker: Tracker, record: ModelRecord, num_points: int) -> dict:
    """The fields every results file shares: the model scored, both MLflow runs, the settings."""
    return {
        "model": record.provenance(),
        "mlflow": {
            "tracking_uri": tracking_uri_from(settings["tracking"]["uri"]),
            "experiment": settings["name"],
            "run_id": tracker.run_id,
            "pretrain_run_id": record.pretrain_run_id,
        },
        "num_points": num_points,
        "settings_hash": settings_hash(settings),
    }
