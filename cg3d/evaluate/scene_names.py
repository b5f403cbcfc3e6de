"""The names of the scenes a scene-query run scores, known from its settings alone.

Each scene's files are named after it, so the workflow declares them before the run from these
names, and :mod:`cg3d.evaluate.scenes` names the scenes it builds with the same functions.
Torch-free: the workflow imports it while it builds the DAG.
"""

from __future__ import annotations

import os
from pathlib import Path


def composed_scene_name(index: int) -> str:
    return f"composed_{index}"


def s3dis_scene_name(room_dir: str | os.PathLike) -> str:
    """``Area_5_office_1`` for the room folder ``.../Area_5/office_1``."""
    room_dir = Path(room_dir)
    return f"{room_dir.parent.name}_{room_dir.name}"


def scene_names(settings: dict) -> list[str]:
    """The scenes of ``scene_query.settings`` (defaults filled in), in the order they are scored."""
    if settings["source"] == "s3dis":
        return [s3dis_scene_name(Path(settings["s3dis_root"]) / room) for room in settings["s3dis_rooms"]]
    return [composed_scene_name(index) for index in range(settings["scenes"])]
