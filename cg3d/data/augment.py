"""Point-cloud augmentation as a list of steps, each applied with its own probability (train only).

A recipe is a list of steps; two are named (``PRESETS``):

* ``official``: the official CG3D ShapeNet recipe. Each with probability 0.3: a random quarter
  turn about the up axis, a uniform turn about it, a small rotation perturbation, jitter, and
  dropping 10% of the points; then always a per-axis scale in [2/3, 3/2] and a shift of up to 0.2.
* ``cg3d``: the pipeline's earlier recipe, every step always on: rotation perturbation, scale,
  shift, jitter, and dropping a uniform share of up to 87.5% of the points (the PointNet++
  habit). It never turns clouds about the up axis.

``pretrain.augment`` names a preset or lists its own steps, e.g.
``[{step: rotate_up, p: 0.5}, {step: scale, low: 0.8, high: 1.25}]``.

NumPy, one cloud at a time: the dataset calls a recipe per sample inside DataLoader workers,
where small arrays are cheaper in NumPy than in torch. Every random draw comes from the
``numpy.random.Generator`` passed in, so a run is reproducible from its seed. The pipeline
stores clouds with **+Y up** (as trimesh and glTF do), so turns about the up axis spin about Y.
Normals follow each linear step (inverse-transpose, renormalised).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields

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


def up_rotation(angle: float) -> np.ndarray:
    """A turn by ``angle`` radians about the up axis."""
    angles = np.zeros(3)
    angles[UP_AXIS] = angle
    return euler_rotation(angles)


def point_dropout(
    points: np.ndarray, rng: np.random.Generator, low: float, high: float, normals: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop a share of points drawn uniformly from [low, high], keeping the count fixed.

    Dropped points are replaced by the first point, as PointNet++ does, so batches keep one
    shape and the duplicates add nothing new to max-pooled features.
    """
    dropped = rng.random(len(points)) < rng.uniform(low, high)
    points = points.copy()
    points[dropped] = points[0]
    if normals is not None:
        normals = normals.copy()
        normals[dropped] = normals[0]
    return points, normals


def _linear(points: np.ndarray, normals: np.ndarray | None, matrix: np.ndarray):
    """Points mapped by ``matrix`` (column-vector convention); normals by its inverse transpose."""
    moved = points @ matrix.T.astype(points.dtype)
    if normals is None:
        return moved, None
    turned = normals @ np.linalg.inv(matrix).astype(normals.dtype)
    turned /= np.linalg.norm(turned, axis=1, keepdims=True).clip(min=1e-12)
    return moved, turned


@dataclass(frozen=True)
class Step(ABC):
    """One augmentation, applied with probability ``p``."""

    p: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    @abstractmethod
    def apply(self, points: np.ndarray, normals: np.ndarray | None, rng: np.random.Generator):
        """The augmented (points, normals)."""


@dataclass(frozen=True)
class RotateUp90(Step):
    """A quarter, half or three-quarter turn about the up axis."""

    def apply(self, points, normals, rng):
        return _linear(points, normals, up_rotation(np.pi / 2 * rng.integers(1, 4)))


@dataclass(frozen=True)
class RotateUp(Step):
    """A uniform turn about the up axis."""

    def apply(self, points, normals, rng):
        return _linear(points, normals, up_rotation(rng.uniform(0.0, 2.0 * np.pi)))


@dataclass(frozen=True)
class Perturb(Step):
    """A small rotation about all three axes: angles ~ N(0, sigma) clipped to ±clip radians."""

    sigma: float = 0.06
    clip: float = 0.18

    def apply(self, points, normals, rng):
        angles = np.clip(self.sigma * rng.standard_normal(3), -self.clip, self.clip)
        return _linear(points, normals, euler_rotation(angles))


@dataclass(frozen=True)
class Scale(Step):
    """Independent scale factors for x, y, z, uniform in [low, high]."""

    low: float = 2.0 / 3.0
    high: float = 3.0 / 2.0

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.low <= self.high:
            raise ValueError(f"need 0 < low <= high, got {self.low}, {self.high}")

    def apply(self, points, normals, rng):
        return _linear(points, normals, np.diag(rng.uniform(self.low, self.high, size=3)))


@dataclass(frozen=True)
class Translate(Step):
    """One shift for the whole cloud, uniform in [-amount, amount] per axis."""

    amount: float = 0.2

    def apply(self, points, normals, rng):
        return points + rng.uniform(-self.amount, self.amount, size=3).astype(points.dtype), normals


@dataclass(frozen=True)
class Jitter(Step):
    """Per-point Gaussian noise of ``sigma``, clipped to ±clip."""

    sigma: float = 0.01
    clip: float = 0.05

    def apply(self, points, normals, rng):
        noise = rng.standard_normal(points.shape, dtype=np.float32)
        noise *= self.sigma
        np.clip(noise, -self.clip, self.clip, out=noise)
        return points + noise, normals


@dataclass(frozen=True)
class Dropout(Step):
    """Replace a share of points, uniform in [low, high], by the first point."""

    low: float = 0.0
    high: float = 0.875

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.low <= self.high < 1.0:
            raise ValueError(f"need 0 <= low <= high < 1, got {self.low}, {self.high}")

    def apply(self, points, normals, rng):
        return point_dropout(points, rng, self.low, self.high, normals)


STEPS: dict[str, type[Step]] = {
    "rotate_up_90": RotateUp90,
    "rotate_up": RotateUp,
    "perturb": Perturb,
    "scale": Scale,
    "translate": Translate,
    "jitter": Jitter,
    "dropout": Dropout,
}


@dataclass(frozen=True)
class Augmentation:
    """A recipe: its steps in order, each drawn against its probability."""

    steps: tuple[Step, ...]

    def __call__(
        self, points: np.ndarray, rng: np.random.Generator, normals: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment an N x 3 cloud (and its normals); inputs are left unchanged."""
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"expected an N x 3 cloud, got shape {points.shape}")
        if normals is not None and normals.shape != points.shape:
            raise ValueError(f"normals shape {normals.shape} differs from points {points.shape}")
        for step in self.steps:
            # A step that always applies draws nothing for its coin, so recipes stay comparable.
            if step.p >= 1.0 or rng.random() < step.p:
                points, normals = step.apply(points, normals, rng)
        return points, normals


PRESETS: dict[str, Augmentation] = {
    "official": Augmentation((
        RotateUp90(p=0.3), RotateUp(p=0.3), Perturb(p=0.3), Jitter(p=0.3), Dropout(p=0.3, low=0.1, high=0.1),
        Scale(), Translate(),
    )),
    "cg3d": Augmentation((Perturb(), Scale(), Translate(), Jitter(), Dropout())),
}  # fmt: skip


def build_augmentation(recipe: str | Sequence[dict], key: str = "pretrain.augment") -> Augmentation:
    """A preset by name, or steps from ``[{step: name, p: ..., <its parameters>}, ...]``; a
    mistake is refused naming ``key``, the step and the reason."""
    if isinstance(recipe, str):
        if recipe not in PRESETS:
            raise ValueError(f"config key '{key}': unknown augmentation preset {recipe!r}; one of {sorted(PRESETS)}")
        return PRESETS[recipe]
    steps = []
    for index, spec in enumerate(recipe):
        where = f"config key '{key}.{index}'"
        options = dict(spec)
        name = options.pop("step", None)
        if name not in STEPS:
            raise ValueError(f"{where}: unknown step {name!r}; one of {sorted(STEPS)}")
        allowed = {f.name for f in fields(STEPS[name])}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"{where}: step {name!r} takes {sorted(allowed)}, not {unknown}")
        try:
            steps.append(STEPS[name](**options))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from error
    return Augmentation(tuple(steps))
