"""cg3d: CLIP goes 3D — align a point-cloud encoder with a frozen CLIP."""

__version__ = "0.1.0"
