"""PNG bytes for rendered views (colour) and depth maps.

Colour views are 8-bit RGB PNGs. Depth maps are 16-bit greyscale PNGs holding depth in
millimetres of scene units (the object is scaled to the unit sphere, so one unit = 1000 steps,
about 0.05% of the object's size), with 0 meaning "no surface" (background); 16 bits reach
65.535 units, far beyond any framed object. PNG is lossless, so decoding gives back exactly the
quantised values.

The default zlib level 1 comes from benchmarks/bench_render.py: on 224x224 furniture views it
encodes about twice as fast as Pillow's default level 6 for files about a fifth larger, while
level 0 saves little time and stores files about fifteen times larger.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DEFAULT_COMPRESS_LEVEL = 1
DEPTH_STEPS_PER_UNIT = 1000.0
_UINT16_MAX = np.iinfo(np.uint16).max


def encode_png(image: np.ndarray, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """Encode an HxWx3 (RGB) or HxWx4 (RGBA) or HxW (grey) uint8 image as PNG."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8 pixels, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"encode_png expects HxW, HxWx3 or HxWx4 pixels, got shape {image.shape}")
    return _save(Image.fromarray(image), compress_level)


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes to an array: uint8 HxWx3/HxWx4/HxW, or uint16 HxW for 16-bit PNGs."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"expected PNG bytes, got {image.format}")
            if image.mode in ("I;16", "I;16B", "I"):
                return np.asarray(image, dtype=np.uint16)
            return np.asarray(image)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode PNG: {exc}") from exc


def encode_depth_png(depth: np.ndarray, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """Encode a float HxW depth map (scene units, 0 = background) as a 16-bit millimetre PNG."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"encode_depth_png expects a float HxW depth map, got {depth.dtype} {depth.shape}")
    if not np.isfinite(depth).all() or depth.min() < 0.0:
        raise ValueError("depth must be finite and non-negative (0 marks background)")
    steps = np.rint(depth * DEPTH_STEPS_PER_UNIT)
    if steps.max() > _UINT16_MAX:
        raise ValueError(
            f"depth {depth.max():.3f} exceeds the 16-bit range ({_UINT16_MAX / DEPTH_STEPS_PER_UNIT} units)"
        )
    return _save(Image.fromarray(steps.astype(np.uint16)), compress_level)


def decode_depth_png(data: bytes) -> np.ndarray:
    """Decode a depth PNG from ``encode_depth_png`` to float32 scene units (0 = background)."""
    steps = decode_png(data)
    if steps.dtype != np.uint16 or steps.ndim != 2:
        raise ValueError(f"not a 16-bit depth PNG (decoded {steps.dtype} {steps.shape})")
    return steps.astype(np.float32) / np.float32(DEPTH_STEPS_PER_UNIT)


def _save(image: Image.Image, compress_level: int) -> bytes:
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must lie in 0..9, got {compress_level!r}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
