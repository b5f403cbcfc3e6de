"""Mesh source adapters, one per published dataset layout, picked by ``datasets.<name>.source``."""

from __future__ import annotations

from cg3d.data.meshes import DEFAULT_BUDGET, GeometryBudget
from cg3d.data.sources.base import DatasetMissing, MeshSource
from cg3d.data.sources.folder import FolderSource
from cg3d.data.sources.modelnet import ModelNet10Source, ModelNet40Source
from cg3d.data.sources.objaverse import ObjaverseSource
from cg3d.data.sources.sh3d import SH3DSource
from cg3d.data.sources.shapenetcore import ShapeNetCoreSource
from cg3d.data.sources.synthetic import SyntheticSource

SOURCES: dict[str, type[MeshSource]] = {
    "sh3d": SH3DSource,
    "modelnet40": ModelNet40Source,
    "modelnet10": ModelNet10Source,
    "shapenetcore": ShapeNetCoreSource,
    "objaverse": ObjaverseSource,
    "folder": FolderSource,
    "synthetic": SyntheticSource,
}

__all__ = ["SOURCES", "DatasetMissing", "MeshSource", "make_source"]


def make_source(
    dataset_name: str, options: dict, test_fraction: float = 0.2, budget: GeometryBudget = DEFAULT_BUDGET
) -> MeshSource:
    """The adapter for config block ``datasets.<dataset_name>``; ``options["source"]`` names it.

    ``budget`` (the config's ``data.max_*`` caps) bounds what ``load`` accepts for one object.
    """
    kind = options.get("source")
    if kind not in SOURCES:
        raise ValueError(
            f"datasets.{dataset_name}.source is {kind!r}; expected one of: {', '.join(SOURCES)}"
        )
    return SOURCES[kind](dataset_name, options, test_fraction, budget)
