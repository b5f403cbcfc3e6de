"""Opacity of converted materials.

pyrender 0.1.45 gives every material it builds from trimesh ``alphaMode='BLEND'``, so opaque
furniture goes through the blending path and transparent parts lose their draw order. Here each
primitive is marked OPAQUE unless something in it is really see-through: an alpha factor below
one, a texture with alpha below 255, vertex colours with alpha, or an OBJ/MTL dissolve (``d``,
or ``Tr`` = 1 - d) below one, which trimesh keeps in the material's kwargs but does not apply.
"""

from __future__ import annotations

import numpy as np


def mtl_opacity(trimesh_material) -> float:
    """Opacity in [0, 1] that an OBJ/MTL material declares with ``d`` or ``Tr`` (1 when neither)."""
    kwargs = getattr(trimesh_material, "kwargs", None) or {}
    if "d" in kwargs:
        return _clamped_first_float(kwargs["d"], "d")
    if "tr" in kwargs:
        return 1.0 - _clamped_first_float(kwargs["tr"], "Tr")
    return 1.0


def _clamped_first_float(value, key: str) -> float:
    first = value[0] if isinstance(value, (list, tuple)) else value
    try:
        number = float(first)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"MTL {key} must be a number, got {value!r}") from exc
    return min(max(number, 0.0), 1.0)


def settle_alpha_mode(primitive, opacity: float = 1.0) -> None:
    """Apply ``opacity`` to the primitive's material and mark it OPAQUE or BLEND by its content."""
    material = primitive.material
    if opacity < 1.0:
        factor = np.array(material.baseColorFactor, dtype=np.float32)
        factor[3] *= opacity
        material.baseColorFactor = factor
    material.alphaMode = "BLEND" if _is_see_through(primitive) else "OPAQUE"


def _is_see_through(primitive) -> bool:
    material = primitive.material
    if material.baseColorFactor[3] < 1.0:
        return True
    texture = material.baseColorTexture
    if texture is not None and texture.source is not None:
        source = np.asarray(texture.source)
        if source.ndim == 3 and source.shape[2] == 4 and source[:, :, 3].min() < 255:
            return True
    colors = primitive.color_0
    return colors is not None and colors.shape[1] == 4 and bool(colors[:, 3].min() < 1.0)
