"""Plots write real PNGs, atomically, whose pixels show what was asked for."""

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from PIL import Image

from cg3d.data.label_map import MODELNET40_CLASSES
from cg3d.plots import plot_confusion, plot_gallery, plot_loss_curves


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(int)


def _count_colour(pixels: np.ndarray, rgb, tolerance: int = 6) -> int:
    target = np.round(np.array(rgb[:3]) * 255).astype(int)
    return int(np.all(np.abs(pixels - target) <= tolerance, axis=-1).sum())


def test_confusion_png_for_40_classes(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 3, size=(40, 40)) + np.diag(np.full(40, 20))
    path = plot_confusion(matrix, list(MODELNET40_CLASSES), tmp_path / "cm.png", "ModelNet40")
    pixels = _pixels(path)
    height, width, _ = pixels.shape
    assert 600 <= width <= 2500 and 600 <= height <= 2500
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temp file left behind


def test_confusion_rows_are_normalised(tmp_path):
    # row 0 splits 2/2 -> two cells at 0.5; row 1 is 0/4 -> one cell at 1.0 and one at 0
    path = plot_confusion(np.array([[2, 2], [0, 4]]), ["bed", "sofa"], tmp_path / "cm.png")
    pixels = _pixels(path)
    blues = colormaps["Blues"]
    half_cells = _count_colour(pixels, blues(0.5))
    full_cells = _count_colour(pixels, blues(1.0))
    assert half_cells > 500  # raw counts (2, 2) would saturate instead of showing 0.5
    assert 0.4 < full_cells / half_cells < 0.6  # one full cell for two half cells


def _thumbnail(value: float) -> np.ndarray:
    rng = np.random.default_rng(int(value * 100))
    return np.clip(value + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)


def test_gallery_frames_hits_by_correctness(tmp_path):
    queries = ["a photo of a chair", (np.ones((32, 32, 3)) * [0.2, 0.2, 0.8]).astype(np.float32)]
    hits = [[_thumbnail(0.3), _thumbnail(0.5), _thumbnail(0.7)], [_thumbnail(0.4)]]
    correct = [[True, False, True], [False]]
    path = plot_gallery(queries, hits, tmp_path / "gallery.png", hit_correct=correct)
    pixels = _pixels(path)
    height, width, _ = pixels.shape
    assert 200 <= height <= 800 and 400 <= width <= 1400 and width > height
    green = _count_colour(pixels, to_rgb("#1a9641"))
    red = _count_colour(pixels, to_rgb("#d7191c"))
    assert green > 100 and red > 100
    assert _count_colour(pixels, (0.2, 0.2, 0.8)) > 500  # the image query is drawn


def test_gallery_without_correctness_has_no_frames(tmp_path):
    hits = [[(np.ones((16, 16, 3)) * 128).astype(np.uint8)] * 2]
    path = plot_gallery(["a lamp"], hits, tmp_path / "gallery.png")
    pixels = _pixels(path)
    assert _count_colour(pixels, to_rgb("#1a9641")) == 0
    assert _count_colour(pixels, to_rgb("#d7191c")) == 0
    assert _count_colour(pixels, (128 / 255,) * 3, tolerance=1) > 500


def test_loss_curves_draw_each_series(tmp_path):
    steps = np.arange(1, 51)
    history = {"loss/3d-text": list(3.0 / steps), "loss/3d-image": list(2.0 / np.sqrt(steps))}
    path = plot_loss_curves(history, tmp_path / "curves" / "loss.png")
    pixels = _pixels(path)
    assert 400 <= pixels.shape[1] <= 1200
    assert _count_colour(pixels, to_rgb("C0"), tolerance=20) > 50
    assert _count_colour(pixels, to_rgb("C1"), tolerance=20) > 50


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plot_confusion(np.ones((2, 3)), ["a", "b"], p), "square"),
        (lambda p: plot_confusion(np.ones((2, 2)), ["a"], p), "1 class names"),
        (lambda p: plot_gallery(["q"], [], p), "0 hit lists"),
        (lambda p: plot_gallery(["q"], [[np.ones((4, 4, 2))]], p), "HxWx3"),
        (lambda p: plot_gallery(["q"], [[np.ones((4, 4))]], p, [[True, False]]), "one flag"),
        (lambda p: plot_loss_curves({}, p), "at least one series"),
        (lambda p: plot_loss_curves({"loss": []}, p), "empty loss series: loss"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
