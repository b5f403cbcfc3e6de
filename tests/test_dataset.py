"""The streaming triplet dataset and the point augmentations, on real Parquet shards."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy.spatial.transform import Rotation
from torch.utils.data import DataLoader
from torchvision import transforms

from cg3d.data import shards
from cg3d.data.augment import (
    PRESETS,
    Augmentation,
    Dropout,
    Jitter,
    Perturb,
    RotateUp,
    RotateUp90,
    Scale,
    Translate,
    build_augmentation,
    euler_rotation,
    point_dropout,
)
from cg3d.data.dataset import PREFIX_POOL, TripletDataset, fixed_view, load_split
from cg3d.data.fps import farthest_point_sample
from cg3d.data.shards import ShardError

STORED = 64
VIEWS = 4
IMAGE = 8
CATEGORIES = ["chair", "table", "lamp"]


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (IMAGE, IMAGE), (value, 0, 255 - value)).save(buffer, format="PNG")
    return buffer.getvalue()


VIEW_PNGS = [png(40 * v) for v in range(VIEWS)]


def stored_cloud(object_id: str) -> np.ndarray:
    seed = int.from_bytes(object_id.encode(), "little") % 2**32
    return np.random.default_rng(seed).uniform(-1, 1, size=(STORED, 3)).astype(np.float32)


def write_triplets(folder: Path, shard_sizes: list[int], views=None, fps_ordered=False) -> list[Path]:
    """Shards of objects "s<shard>-<row>"; every third object is in the test split; view v is a
    solid image whose red channel is 40 * v. ``fps_ordered`` stores clouds in FPS order, as the
    points stage does."""
    meta = {
        "fps_ordered": fps_ordered,
        "points_per_cloud": STORED,
        "image_size": IMAGE,
        "views": VIEWS,
        "azimuths": [90.0 * v for v in range(VIEWS)],
        "elevations": [25.0] * VIEWS,
        "renderer": {"yfov": 40.0},
        "config_hash": "test",
    }
    paths = []
    for shard, size in enumerate(shard_sizes):
        rows = []
        for row in range(size):
            object_id = f"s{shard}-{row:03d}"
            rows.append(
                {
                    "object_id": object_id,
                    "dataset": "toy",
                    "category": CATEGORIES[(shard + row) % 3],
                    "name": object_id,
                    "split": "test" if row % 3 == 0 else "train",
                    "points": shards.points_to_bytes(
                        fps_order(stored_cloud(object_id)) if fps_ordered else stored_cloud(object_id)
                    ),
                    "normals": shards.points_to_bytes(np.tile([0.0, 1.0, 0.0], (STORED, 1))),
                    "views": views or VIEW_PNGS,
                    "captions": [f"a photo of {object_id}.", f"a rendering of {object_id}."],
                }
            )
        path = folder / f"shard-{shard:05d}.parquet"
        shards.write_shard(path, rows, "triplets", meta)
        paths.append(path)
    return paths


def fps_order(cloud: np.ndarray) -> np.ndarray:
    return cloud[farthest_point_sample(cloud, len(cloud), method="bucket")]


def all_ids(shard_sizes: list[int], split: str | None = None) -> set[str]:
    return {
        f"s{s}-{r:03d}"
        for s, size in enumerate(shard_sizes)
        for r in range(size)
        if split is None or (split == "test") == (r % 3 == 0)
    }


@pytest.fixture
def triplets(tmp_path):
    sizes = [7, 5, 9, 3]
    return sizes, write_triplets(tmp_path, sizes)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_have_the_promised_shapes_and_types(triplets, num_workers):
    sizes, paths = triplets
    dataset = TripletDataset(paths, num_points=16, subsample="random", class_names=CATEGORIES, seed=3)
    loader = DataLoader(dataset, batch_size=4, num_workers=num_workers)
    batches = list(loader)
    assert len(batches) == dataset.steps_per_epoch(4, num_workers)
    first = batches[0]
    assert first["points"].shape == (4, 16, 3) and first["points"].dtype == torch.float32
    assert first["image"].shape == (4, 3, IMAGE, IMAGE) and first["image"].dtype == torch.uint8
    assert first["label"].dtype == torch.int64 and first["view_index"].dtype == torch.int64
    assert all(isinstance(c, str) and c.startswith("a ") for c in first["caption"])
    ids = [i for batch in batches for i in batch["object_id"]]
    assert sorted(ids) == sorted(all_ids(sizes)) and len(dataset) == sum(sizes)
    for batch in batches:
        for object_id, category, label, caption in zip(
            batch["object_id"], batch["category"], batch["label"], batch["caption"]
        ):
            assert CATEGORIES[label] == category and object_id in caption


def test_image_transform_and_unknown_classes(triplets):
    _, paths = triplets
    preprocess = transforms.Compose(
        [transforms.Resize(16), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )
    dataset = TripletDataset(
        paths, num_points=8, subsample="random", image_transform=preprocess, class_names=["chair"]
    )
    samples = list(dataset)
    assert all(s["image"].shape == (3, 16, 16) for s in samples)
    assert all(s["image"].dtype == torch.float32 for s in samples)
    assert {s["label"] for s in samples if s["category"] != "chair"} == {-1}
    assert {s["label"] for s in samples if s["category"] == "chair"} == {0}


def test_split_filter_yields_exactly_that_split(triplets):
    sizes, paths = triplets
    for split in ("train", "test"):
        dataset = TripletDataset(paths, num_points=8, subsample="random", split=split, shuffle=False)
        ids = [s["object_id"] for s in dataset]
        assert len(ids) == len(dataset) == len(set(ids))
        assert set(ids) == all_ids(sizes, split)
    with pytest.raises(ValueError, match="0 rows with split='val'"):
        TripletDataset(paths, num_points=8, split="val")


def test_excluded_objects_are_never_read_by_any_rank_or_worker(triplets):
    sizes, paths = triplets
    excluded = {"s0-001", "s2-004", "s2-005", "s3-002", "not-in-any-shard"}
    expected = all_ids(sizes, "train") - excluded  # 11 rows: one sits out each epoch over 2 ranks
    seen = []
    for rank in range(2):
        dataset = TripletDataset(paths, num_points=8, subsample="random", split="train", exclude_ids=excluded,
                                 rank=rank, world_size=2)  # fmt: skip
        ids = collect(dataset, num_workers=2)
        assert len(ids) == len(dataset) == len(expected) // 2
        seen.extend(ids)
    assert len(set(seen)) == len(seen) and set(seen) <= expected


def collect(dataset: TripletDataset, num_workers: int) -> list[str]:
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return [sample["object_id"] for sample in loader]


def test_two_ranks_two_workers_cover_every_row_exactly_once(triplets):
    sizes, paths = triplets  # 24 rows: divisible by 2 ranks
    seen = []
    for rank in range(2):
        dataset = TripletDataset(paths, num_points=8, subsample="random", rank=rank, world_size=2)
        dataset.set_epoch(5)
        ids = collect(dataset, num_workers=2)
        assert len(ids) == len(dataset) == 12
        seen.extend(ids)
    assert Counter(seen) == Counter(all_ids(sizes))


def test_uneven_rows_give_equal_counts_and_steps_per_rank(tmp_path):
    sizes = [10, 3, 8]  # 21 rows over 2 ranks: one row sits out each epoch
    paths = write_triplets(tmp_path, sizes)
    per_rank, steps = [], []
    for rank in range(2):
        dataset = TripletDataset(paths, num_points=8, subsample="random", rank=rank, world_size=2)
        loader = DataLoader(dataset, batch_size=3, num_workers=2)
        batches = list(loader)
        steps.append(len(batches))
        assert len(batches) == dataset.steps_per_epoch(3, num_workers=2)
        per_rank.append([i for b in batches for i in b["object_id"]])
    assert steps[0] == steps[1]
    assert len(per_rank[0]) == len(per_rank[1]) == 10
    union = per_rank[0] + per_rank[1]
    assert len(set(union)) == 20 and set(union) <= all_ids(sizes)


def test_epochs_reshuffle_deterministically_from_seed(triplets):
    _, paths = triplets

    def epoch(seed, number):
        dataset = TripletDataset(paths, num_points=8, subsample="random", seed=seed)
        dataset.set_epoch(number)
        samples = list(dataset)
        return [s["object_id"] for s in samples], torch.stack([s["points"] for s in samples])

    ids_0, points_0 = epoch(seed=1, number=0)
    ids_0_again, points_0_again = epoch(seed=1, number=0)
    ids_1, _ = epoch(seed=1, number=1)
    ids_other_seed, _ = epoch(seed=2, number=0)
    assert ids_0 == ids_0_again and torch.equal(points_0, points_0_again)
    assert ids_1 != ids_0 and sorted(ids_1) == sorted(ids_0)
    assert ids_other_seed != ids_0
    unshuffled = TripletDataset(paths, num_points=8, subsample="random", shuffle=False)
    in_order = [s["object_id"] for s in unshuffled]
    assert in_order == sorted(in_order)


def test_ddp_rank_and_world_size_come_from_torch_distributed(triplets, tmp_path):
    sizes, paths = triplets
    # fork: the children inherit the imported modules instead of re-importing torch.
    mp.start_processes(_ddp_worker, args=(paths, tmp_path), nprocs=2, start_method="fork")
    seen = []
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["rank"] == rank and result["world_size"] == 2
        seen.extend(result["ids"])
    assert Counter(seen) == Counter(all_ids(sizes))


def _ddp_worker(rank: int, paths: list[Path], folder: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=2
    )
    try:
        dataset = TripletDataset(paths, num_points=8, subsample="random", with_images=False)
        ids = collect(dataset, num_workers=0)
        result = {"rank": dataset.rank, "world_size": dataset.world_size, "ids": ids}
        (folder / f"rank{rank}.json").write_text(json.dumps(result))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_only_the_chosen_view_is_decoded(triplets, monkeypatch):
    _, paths = triplets
    opened = []
    real_open = PIL.Image.open

    def counting_open(*args, **kwargs):
        opened.append(1)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    samples = list(TripletDataset(paths, num_points=8, subsample="random", seed=7))
    assert len(opened) == len(samples)
    # The decoded pixels are those of the view the sample names.
    assert all(int(s["image"][0, 0, 0]) == 40 * s["view_index"] for s in samples)
    assert len({s["view_index"] for s in samples}) == VIEWS


def test_corrupt_views_only_matter_when_chosen(tmp_path):
    paths = write_triplets(tmp_path, [6], views=[b"not a png"] * VIEWS)
    points_only = TripletDataset(paths, num_points=8, subsample="random", with_images=False)
    assert len(list(points_only)) == 6
    with pytest.raises(ShardError, match=r"shard-00000\.parquet.*view \d of 's0-0\d\d'"):
        list(TripletDataset(paths, num_points=8, subsample="random"))


def test_corrupt_shard_fails_with_its_name(triplets):
    _, paths = triplets
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 3])
    with pytest.raises(ShardError, match="shard-00002.parquet"):
        TripletDataset(paths, num_points=8)


def test_subsampling_picks_stored_points(triplets):
    _, paths = triplets
    exact = list(TripletDataset(paths, num_points=16, subsample="exact", augment=False, shuffle=False))
    for sample in exact:
        cloud = stored_cloud(sample["object_id"])
        expected = cloud[farthest_point_sample(cloud, 16, method="exact", start=0)]
        np.testing.assert_array_equal(sample["points"].numpy(), expected)
    for sample in TripletDataset(paths, num_points=16, subsample="bucket", augment=False):
        cloud = stored_cloud(sample["object_id"])
        rows = {tuple(p) for p in cloud}
        picked = [tuple(p) for p in sample["points"].numpy()]
        assert len(set(picked)) == 16 and set(picked) <= rows
    with pytest.raises(ValueError, match="num_points=100 exceeds the 64"):
        TripletDataset(paths, num_points=100)


def test_prefix_of_fps_ordered_clouds_is_their_fps_subsample(tmp_path):
    paths = write_triplets(tmp_path, [6, 4], fps_ordered=True)
    samples = list(TripletDataset(paths, num_points=16, subsample="prefix", augment=False, with_images=False))
    assert len(samples) == 10
    for sample in samples:
        cloud = fps_order(stored_cloud(sample["object_id"]))
        np.testing.assert_array_equal(sample["points"].numpy(), cloud[:16])
        np.testing.assert_array_equal(sample["points"].numpy(), cloud[farthest_point_sample(cloud, 16, "bucket")])


def test_prefix_subset_draws_fresh_points_from_the_fps_prefix_each_epoch(tmp_path):
    paths = write_triplets(tmp_path, [6, 4], fps_ordered=True)
    dataset = TripletDataset(paths, num_points=16, subsample="prefix_subset", augment=Augmentation(()), with_images=False)
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        epochs.append({s["object_id"]: s["points"].numpy() for s in dataset})
    for object_id, points in epochs[0].items():
        pool = {tuple(p) for p in fps_order(stored_cloud(object_id))[: PREFIX_POOL * 16]}
        assert len({tuple(p) for p in points}) == 16 and {tuple(p) for p in points} <= pool
        assert not np.array_equal(points, epochs[1][object_id])  # a new subset every epoch
    # Without augmentation (evaluation) it is the plain prefix: deterministic.
    plain = TripletDataset(paths, num_points=16, subsample="prefix_subset", augment=False, with_images=False)
    for sample in plain:
        np.testing.assert_array_equal(sample["points"].numpy(), fps_order(stored_cloud(sample["object_id"]))[:16])


def test_fixed_view_pairs_each_object_with_one_view_for_the_whole_run(triplets):
    _, paths = triplets
    dataset = TripletDataset(paths, num_points=16, subsample="random", view="fixed", seed=3)
    chosen: dict[str, set[int]] = {}
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for sample in dataset:
            chosen.setdefault(sample["object_id"], set()).add(sample["view_index"])
    assert all(len(views) == 1 for views in chosen.values())
    assert len({next(iter(views)) for views in chosen.values()}) > 1  # not the same view for everyone
    assert {i: fixed_view(i, 3, VIEWS) for i in chosen} == {i: next(iter(v)) for i, v in chosen.items()}
    with pytest.raises(ValueError, match="unknown view choice 'first'"):
        TripletDataset(paths, view="first")


def test_prefix_refuses_clouds_not_in_fps_order(triplets):
    _, paths = triplets
    with pytest.raises(ShardError, match="not stored in farthest-point order"):
        TripletDataset(paths, num_points=16, subsample="prefix")


def test_load_split_returns_arrays_for_evaluation(triplets):
    sizes, paths = triplets
    loaded = load_split(paths, "test", num_points=16, class_names=CATEGORIES, subsample="exact")
    assert loaded.points.shape == (len(all_ids(sizes, "test")), 16, 3)
    assert loaded.points.dtype == np.float32 and loaded.labels.dtype == np.int64
    assert set(loaded.object_ids) == all_ids(sizes, "test")
    assert [CATEGORIES[i] for i in loaded.labels] == loaded.categories
    again = load_split(paths, "test", num_points=16, class_names=CATEGORIES, subsample="exact")
    np.testing.assert_array_equal(loaded.points, again.points)


# --- augmentation -------------------------------------------------------------------------


def unit_cloud(count=512, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(count, 3)).astype(np.float32)


def only(*steps) -> Augmentation:
    return Augmentation(tuple(steps))


def test_scale_is_anisotropic_within_two_thirds_to_three_halves():
    augment = only(Scale(low=2 / 3, high=3 / 2))
    rng = np.random.default_rng(0)
    axes = np.eye(3, dtype=np.float32)
    factors = np.array([np.diag(augment(axes, rng)[0]) for _ in range(2000)])
    assert factors.min() >= 2 / 3 - 1e-6 and factors.max() <= 3 / 2 + 1e-6
    assert factors.min() < 0.7 and factors.max() > 1.45
    assert np.mean(np.ptp(factors, axis=1) > 0.1) > 0.5  # axes scale independently


def test_jitter_is_clipped_noise_of_the_right_size():
    cloud = unit_cloud(20000)
    moved = only(Jitter(sigma=0.01, clip=0.05))(cloud, np.random.default_rng(1))[0] - cloud
    assert np.abs(moved).max() <= 0.05 + 1e-6
    assert 0.009 < moved.std() < 0.011
    wide = only(Jitter(sigma=0.05, clip=0.05))
    assert np.abs(wide(cloud, np.random.default_rng(1))[0] - cloud).max() <= 0.05 + 1e-6


def test_translation_is_one_shift_within_bounds():
    augment = only(Translate(amount=0.2))
    cloud = unit_cloud()
    shifts = []
    for seed in range(200):
        moved = augment(cloud, np.random.default_rng(seed))[0] - cloud
        np.testing.assert_allclose(moved, np.broadcast_to(moved[0], moved.shape), atol=1e-6)
        shifts.append(moved[0])
    assert np.abs(shifts).max() <= 0.2 + 1e-6 and np.abs(shifts).max() > 0.18


def test_euler_rotation_matches_scipy():
    for angles in np.random.default_rng(5).uniform(-np.pi, np.pi, size=(50, 3)):
        expected = Rotation.from_euler("xyz", angles).as_matrix()
        np.testing.assert_allclose(euler_rotation(angles), expected, atol=1e-12)


def test_perturbation_is_a_small_rigid_rotation():
    rng = np.random.default_rng(2)
    axes = np.eye(3, dtype=np.float64)
    for _ in range(500):
        rotation = only(Perturb(sigma=0.06, clip=0.18))(axes, rng)[0].T
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        angle = np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))
        assert angle <= 0.18 * np.sqrt(3) + 1e-9


@pytest.mark.parametrize(("step", "quarter_turns_only"), [(RotateUp(), False), (RotateUp90(), True)])
def test_turns_about_the_up_axis_keep_y_up(step, quarter_turns_only):
    rng = np.random.default_rng(2)
    probe = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    headings = []
    for _ in range(200):
        east, up = only(step)(probe, rng)[0]
        np.testing.assert_allclose(up, [0.0, 1.0, 0.0], atol=1e-12)  # +Y stays up
        headings.append(np.degrees(np.arctan2(east[2], east[0])) % 360)
    if quarter_turns_only:
        assert sorted({round(h) % 360 for h in headings}) == [90, 180, 270]  # never the identity
    else:
        assert np.ptp(headings) > 300  # turns cover the circle


def test_each_step_fires_with_its_own_probability():
    cloud = unit_cloud(64)
    rng = np.random.default_rng(7)
    fired = [not np.array_equal(only(Translate(p=0.3))(cloud, rng)[0], cloud) for _ in range(4000)]
    assert 0.27 < np.mean(fired) < 0.33
    assert all(np.array_equal(only(Translate(p=0.0))(cloud, rng)[0], cloud) for _ in range(50))


def test_normals_stay_unit_and_perpendicular_to_the_transformed_surface():
    # Points on the plane x + 2y - z = 0, whose normal is (1, 2, -1) / sqrt(6).
    rng = np.random.default_rng(3)
    u, v = rng.uniform(-1, 1, size=(2, 256, 1))
    tangent_a, tangent_b = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 2.0])
    points = (u * tangent_a + v * tangent_b).astype(np.float32)
    normals = np.tile(np.array([1.0, 2.0, -1.0]) / np.sqrt(6), (256, 1)).astype(np.float32)
    # Everything that moves points coherently: turns, perturbation, scale, translation.
    augment = only(RotateUp90(), RotateUp(), Perturb(), Scale(), Translate())
    for seed in range(20):
        moved, turned = augment(points, np.random.default_rng(seed), normals)
        np.testing.assert_allclose(np.linalg.norm(turned, axis=1), 1.0, atol=1e-5)
        in_plane = moved[1:] - moved[0]
        assert np.abs(in_plane @ turned[0]).max() < 1e-4


def test_dropout_replaces_points_with_the_first():
    cloud = unit_cloud(1000)
    normals = unit_cloud(1000, seed=1)
    shares = []
    rng = np.random.default_rng(4)
    for _ in range(300):
        dropped_points, dropped_normals = point_dropout(cloud, rng, 0.0, 0.875, normals)
        changed = np.any(dropped_points != cloud, axis=1)
        assert np.all(dropped_points[changed] == cloud[0])
        assert np.all(dropped_normals[changed] == normals[0])
        shares.append(changed.mean())
    assert max(shares) <= 0.875 + 0.05 and 0.38 < np.mean(shares) < 0.5
    fixed = [np.any(point_dropout(cloud, rng, 0.1, 0.1)[0] != cloud, axis=1).mean() for _ in range(200)]
    assert 0.09 < np.mean(fixed) < 0.11  # the official recipe drops about 10%


def test_official_preset_is_the_official_recipe():
    steps = PRESETS["official"].steps
    assert [type(s) for s in steps] == [RotateUp90, RotateUp, Perturb, Jitter, Dropout, Scale, Translate]
    assert [s.p for s in steps] == [0.3] * 5 + [1.0, 1.0]
    jitter, dropout, scale, translate = steps[3], steps[4], steps[5], steps[6]
    assert (jitter.sigma, jitter.clip, dropout.low, dropout.high) == (0.01, 0.05, 0.1, 0.1)
    assert (scale.low, scale.high, translate.amount) == (2 / 3, 3 / 2, 0.2)


def test_recipes_from_config_and_their_mistakes():
    assert build_augmentation("official") is PRESETS["official"]
    custom = build_augmentation([{"step": "rotate_up", "p": 0.5}, {"step": "scale", "low": 0.8, "high": 1.25}])
    assert custom.steps == (RotateUp(p=0.5), Scale(low=0.8, high=1.25))
    for recipe, message in [
        ("paper", "'pretrain.augment': unknown augmentation preset 'paper'"),
        ([{"step": "spin"}], "'pretrain.augment.0': unknown step 'spin'"),
        ([{"step": "scale"}, {"step": "jitter", "amount": 1}], r"'pretrain.augment.1': step 'jitter' takes \['clip', 'p', 'sigma'\]"),
        ([{"step": "translate", "p": 1.5}], r"'pretrain.augment.0': p must be in \[0, 1\]"),
        ([{"step": "dropout", "high": 1.0}], "'pretrain.augment.0': need 0 <= low <= high < 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_augmentation(recipe)


def test_augmentation_is_seeded_and_leaves_input_alone():
    cloud = unit_cloud()
    original = cloud.copy()
    for recipe in PRESETS.values():
        first = recipe(cloud, np.random.default_rng(9))[0]
        second = recipe(cloud, np.random.default_rng(9))[0]
        np.testing.assert_array_equal(first, second)
        np.testing.assert_array_equal(cloud, original)
        assert first.dtype == np.float32 and first.shape == cloud.shape
    with pytest.raises(ValueError, match="N x 3"):
        PRESETS["cg3d"](cloud[:, :2], np.random.default_rng(0))
