"""Point-cloud augmentations used for CG3D pre-training (train split only).

NumPy, one cloud at a time: the dataset calls them per sample inside DataLoader workers, where
small per-sample arrays are cheaper in NumPy than in torch. Every random draw comes from the
``numpy.random.Generator`` passed in, so a run is reproducible from its seed.

Axes: the pipeline normalises meshes with **+Y up** (as trimesh and glTF do), so the optional
full rotation spins clouds about Y, never tipping them over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UP_AXIS = 1  # +Y


def euler_rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation by ``angles[0]`` about x, then ``angles[1]`` about y, then ``angles[2]`` about z
    (fixed axes): Rz @ Ry @ Rx. Written out because scipy's ``Rotation.from_euler`` costs about
    50 µs a call, a tenth of the per-sample budget of the training loader."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    return np.array(
        [
            [cy * cz, sx * sy * cz - cx * sz, cx * sy * cz + sx * sz],
            [cy * sz, sx * sy * sz + cx * cz, cx * sy * sz - sx * cz],
            [-sy, sx * cy, cx * cy],
        ]
    )


def perturbation_rotation(
    rng: np.random.Generator, sigma: float, clip: float, up_rotation: bool = False
) -> np.ndarray:
    """A small random rotation about all three axes (angles ~ N(0, sigma) clipped to ±clip),
    optionally followed by a uniform random rotation about the up axis. Returns a 3 x 3 matrix."""
    rotation = euler_rotation(np.clip(sigma * rng.standard_normal(3), -clip, clip))
    if up_rotation:
        spin = np.zeros(3)
        spin[UP_AXIS] = rng.uniform(0.0, 2.0 * np.pi)
        rotation = euler_rotation(spin) @ rotation
    return rotation


def anisotropic_scale(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Independent scale factors for x, y, z drawn uniformly from [low, high]."""
    return rng.uniform(low, high, size=3)


def translation(rng: np.random.Generator, amount: float) -> np.ndarray:
    """A random shift, uniform in [-amount, amount] per axis."""
    return rng.uniform(-amount, amount, size=3)


def jitter(points: np.ndarray, rng: np.random.Generator, sigma: float, clip: float) -> np.ndarray:
    """Add per-point Gaussian noise clipped to ±clip (returns a new array)."""
    noise = rng.standard_normal(points.shape, dtype=np.float32)
    noise *= sigma
    np.clip(noise, -clip, clip, out=noise)
    return points + noise


def point_dropout(
    points: np.ndarray,
    rng: np.random.Generator,
    max_ratio: float,
    normals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop a random share (up to ``max_ratio``) of points, keeping the count fixed.

    Dropped points are replaced by the first point, as PointNet++ does, so batches keep one
    shape and the duplicates add nothing new to max-pooled features.
    """
    ratio = rng.uniform(0.0, max_ratio)
    dropped = rng.random(len(points)) < ratio
    points = points.copy()
    points[dropped] = points[0]
    if normals is not None:
        normals = normals.copy()
        normals[dropped] = normals[0]
    return points, normals


@dataclass(frozen=True)
class PointAugment:
    """The paper's training augmentations, applied in order: rotation perturbation (plus an
    optional spin about +Y), anisotropic scale, translation, jitter, point dropout.

    Normals follow the linear part of the transform (inverse-transpose, re-normalised), so they
    stay unit length and perpendicular to the scaled surface.
    """

    rotation_sigma: float = 0.06
    rotation_clip: float = 0.18
    up_rotation: bool = False
    scale_low: float = 2.0 / 3.0
    scale_high: float = 3.0 / 2.0
    translate: float = 0.2
    jitter_sigma: float = 0.01
    jitter_clip: float = 0.05
    dropout_max_ratio: float = 0.875

    def __post_init__(self):
        if not 0.0 < self.scale_low <= self.scale_high:
            raise ValueError(
                f"need 0 < scale_low <= scale_high, got {self.scale_low}, {self.scale_high}"
            )
        if not 0.0 <= self.dropout_max_ratio < 1.0:
            raise ValueError(f"dropout_max_ratio must be in [0, 1), got {self.dropout_max_ratio}")

    def __call__(
        self,
        points: np.ndarray,
        rng: np.random.Generator,
        normals: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment an N x 3 cloud (and its normals); inputs are left unchanged."""
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"expected an N x 3 cloud, got shape {points.shape}")
        if normals is not None and normals.shape != points.shape:
            raise ValueError(f"normals shape {normals.shape} differs from points {points.shape}")
        rotation = perturbation_rotation(
            rng, self.rotation_sigma, self.rotation_clip, self.up_rotation
        )
        scale = anisotropic_scale(rng, self.scale_low, self.scale_high)
        # Row vectors: p' = diag(scale) @ rotation @ p  <=>  p' = p @ (rotation.T * scale).
        linear = (rotation.T * scale).astype(points.dtype)
        shift = translation(rng, self.translate).astype(points.dtype)
        points = jitter(points @ linear + shift, rng, self.jitter_sigma, self.jitter_clip)
        if normals is not None:
            normals = normals @ (rotation.T / scale).astype(normals.dtype)
            normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
        return point_dropout(points, rng, self.dropout_max_ratio, normals)
