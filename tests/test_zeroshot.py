"""Zero-shot classification on fixtures in the real published layouts: ModelNet40 raw OFF and
modelnet40_normal_resampled through the points pipeline, ScanObjectNN's h5 files, SH3D furniture
with the ModelNet40 label map; results validated against the schema, runs in a real MLflow store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from cg3d.data.captions import TEMPLATES, class_prompts
from cg3d.data.label_map import MODELNET40_CLASSES
from cg3d.data.scanobjectnn import ScanObjectNNMissing, scanobjectnn_file
from cg3d.evaluate import zeroshot
from cg3d.evaluate.class_lists import CLASS_LISTS, resolve_class_list
from cg3d.evaluate.eval_data import EvalClouds, clouds_from_scanobjectnn
from cg3d.io import ResultsError, read_results, write_results
from cg3d.models.trained import load_trained, prepare_cloud
from helpers.eval_fixtures import build_point_shards, eval_settings, make_pretrained_run
from helpers.layouts import (
    SCANOBJECTNN_CLASSES,
    class_mesh,
    write_modelnet_raw,
    write_modelnet_resampled,
    write_objaverse_lvis,
    write_scanobjectnn,
    write_sh3d_catalog,
)

MODELNET_FIXTURE = {"airplane": (1, 3), "chair": (1, 3), "night_stand": (1, 3), "bed": (2, 2)}


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pretrained")
    checkpoint, run_json, run_id = make_pretrained_run(directory)
    return directory, checkpoint, run_json, run_id


class BoxOracle(torch.nn.Module):
    """A perfect point encoder for the fixtures' class boxes: it recognises a box by its sorted,
    scale-free extents and answers with that class's prompt-ensemble embedding."""

    def __init__(self, labels: list[str], class_text: torch.Tensor):
        super().__init__()
        signatures = [np.sort(class_mesh(label).extents) / class_mesh(label).extents.max() for label in labels]
        self.register_buffer("signatures", torch.tensor(np.array(signatures), dtype=torch.float32))
        self.register_buffer("class_text", class_text)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        extents = (points.amax(dim=1) - points.amin(dim=1)).sort(dim=1).values
        signature = extents / extents[:, -1:]
        return self.class_text[torch.cdist(signature, self.signatures).argmin(dim=1)]


def use_oracle(monkeypatch, labels: list[str], templates=TEMPLATES) -> None:
    """Score with BoxOracle answering the ``templates`` embedding of each class."""
    real = zeroshot.load_trained

    def with_oracle(*args, **kwargs):
        pretrained = real(*args, **kwargs)
        text = pretrained.encode_classes(labels, templates)
        pretrained.model.point_encoder = BoxOracle(labels, text)
        return pretrained

    monkeypatch.setattr(zeroshot, "load_trained", with_oracle)


def run_zeroshot(pretrained_run, tmp_path, spec: dict, dataset: dict | None = None, run_json=None, **data) -> dict:
    """The zero-shot job as its rule runs it; ``dataset`` is the mesh dataset's config block,
    ``run_json`` a pretraining record other than the fixture's."""
    directory, checkpoint, fixture_run_json, _ = pretrained_run
    settings = eval_settings(directory, zeroshot=spec, **({"dataset": dataset} if dataset else {}))
    return zeroshot.evaluate_zeroshot(
        settings, checkpoint, run_json or fixture_run_json, tmp_path / "zeroshot.json", tmp_path / "confusion.png",
        **data,
    )  # fmt: skip


def modelnet_raw_with_oracle(tmp_path, monkeypatch) -> tuple[dict, dict]:
    """The ModelNet40 fixture's dataset options and point data, scored by the box oracle."""
    write_modelnet_raw(tmp_path / "ModelNet40", MODELNET_FIXTURE)
    options = {"source": "modelnet40", "root": str(tmp_path / "ModelNet40")}
    manifest, points = build_point_shards("modelnet40", options, tmp_path / "data")
    use_oracle(monkeypatch, list(MODELNET_FIXTURE))
    return options, {"points": points, "manifest": manifest}


# --- pure parts ------------------------------------------------------------------------------


def test_class_embedding_is_the_renormalised_mean_of_every_template(pretrained_run):
    _, checkpoint, run_json, _ = pretrained_run
    pretrained = load_trained(checkpoint, run_json, device="cpu")
    prompts = class_prompts("night_stand")
    assert len(prompts) == len(TEMPLATES) and all("night stand" in p and "_" not in p for p in prompts)
    embeddings = pretrained.encode_classes(["night_stand", "chair"])
    expected = F.normalize(pretrained.encode_text(prompts).mean(dim=0), dim=-1)
    assert torch.allclose(embeddings[0], expected, atol=1e-6)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_classification_scores_count_each_class_and_confusion():
    labels = np.array([0, 0, 1, 1, 2])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.2, 0.5], [0.0, 0.1, 0.9]])
    scored = zeroshot.classification_scores(scores, labels, ["chair", "table", "lamp"])
    assert scored["metrics"]["top1"] == pytest.approx(3 / 5)
    assert scored["metrics"]["top5"] == 1.0
    assert scored["metrics"]["class_mean"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert scored["per_class"] == {"chair": 0.5, "table": 0.5, "lamp": 1.0}
    assert scored["confusion"].tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_modelnet40_label_map_keeps_published_order_and_excludes_unmapped_names():
    names = ["Armchair", "Coffee table", "Bill 10\u20ac", "Night table", "Table fan"]
    clouds = EvalClouds(np.zeros((5, 4, 3), np.float32), [n.lower() for n in names], names, list("abcde"))
    labelled = zeroshot.assign_labels(clouds, "modelnet40")
    assert labelled.class_names == ("chair", "night_stand", "table")
    assert labelled.labels.tolist() == [0, 2, 1] and labelled.excluded == 2 and len(labelled.points) == 3
    with pytest.raises(ValueError, match="no evaluated object has a class"):
        zeroshot.assign_labels(replace(clouds, categories=["bill"] * 5), "modelnet40")


def test_classes_keep_the_published_order_of_the_label_set():
    categories = ["toilet", "bed", "bag", "bed", "chair"]
    clouds = EvalClouds(np.zeros((5, 4, 3), np.float32), categories, categories, list("abcde"),
                        label_set=SCANOBJECTNN_CLASSES)  # fmt: skip
    labelled = zeroshot.assign_labels(clouds, None)
    assert labelled.class_names == ("bag", "chair", "bed", "toilet")  # ScanObjectNN's order, not sorted
    assert labelled.labels.tolist() == [3, 2, 0, 2, 1] and labelled.excluded == 0


def test_prepared_cloud_is_unit_sphere_exact_fps_and_deterministic():
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(700, 3)) * [3.0, 1.0, 0.5] + 10.0
    prepared = prepare_cloud(cloud, 128)
    assert prepared.shape == (128, 3) and prepared.dtype == np.float32
    assert np.linalg.norm(prepared, axis=1).max() <= 1.0 + 1e-6
    assert np.array_equal(prepared, prepare_cloud(cloud, 128))
    with pytest.raises(ValueError, match="num_points=800 exceeds the 700 points"):
        prepare_cloud(cloud, 800)


# --- published layouts, end to end -------------------------------------------------------------


def test_modelnet40_raw_off_through_point_shards_with_a_perfect_encoder(pretrained_run, tmp_path, monkeypatch):
    _, _, _, parent_id = pretrained_run
    options, data = modelnet_raw_with_oracle(tmp_path, monkeypatch)
    spec = {"name": "modelnet40", "dataset": "modelnet40", "split": "test", "label_map": None}
    document = run_zeroshot(pretrained_run, tmp_path, spec, dataset=options, **data)

    assert document == read_results(tmp_path / "zeroshot.json")
    assert document["class_names"] == ["airplane", "bed", "chair", "night stand"]
    assert document["counts"] == {"objects": 11, "excluded": 0, "missing": 0, "classes": 4}
    assert document["metrics"] == {"top1": 1.0, "top5": 1.0, "class_mean": 1.0}
    assert document["per_class"] == dict.fromkeys(document["class_names"], 1.0)
    assert document["chance"] == 0.25 and document["templates"] == len(TEMPLATES)
    assert document["source"] == "modelnet40" and document["model"]["clip_pretrained"] is False
    assert document["mlflow"]["pretrain_run_id"] == parent_id
    with Image.open(tmp_path / "confusion.png") as image:
        assert image.size[0] > 100

    client = mlflow.MlflowClient(tracking_uri=document["mlflow"]["tracking_uri"])
    run = client.get_run(document["mlflow"]["run_id"])
    assert run.data.tags["stage"] == "zeroshot"
    assert run.data.tags["parent_run_id"] == run.data.tags["mlflow.parentRunId"] == parent_id
    assert run.info.experiment_id == client.get_run(parent_id).info.experiment_id
    assert run.data.params["zeroshot.dataset"] == "modelnet40" and run.data.params["evaluate.num_points"] == "256"
    assert run.data.params["pretrain.encoder"] == "point_transformer"
    assert run.data.metrics["top1"] == 1.0 and run.data.metrics["class_acc/night stand"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion.png", "zeroshot.json"} <= artifacts


def test_classes_held_out_of_pretraining_are_scored_apart(pretrained_run, tmp_path, monkeypatch):
    options, data = modelnet_raw_with_oracle(tmp_path, monkeypatch)
    record = json.loads(pretrained_run[2].read_text())
    holdout = {"dataset": "modelnet40", "label_map": "modelnet40", "classes": ["airplane", "bed"], "objects": 8}
    held_out_run = tmp_path / "run.json"
    held_out_run.write_text(json.dumps({**record, "holdout": holdout}))
    spec = {"name": "modelnet40", "dataset": "modelnet40", "split": "test", "label_map": None}
    document = run_zeroshot(pretrained_run, tmp_path, spec, dataset=options, run_json=held_out_run, **data)

    assert document == read_results(tmp_path / "zeroshot.json")
    held_out = document["held_out_classes"]
    # every airplane and bed (train and test split: pretraining saw neither), the test split of the rest
    assert held_out["unseen"]["objects"] == 1 + 3 + 2 + 2 and held_out["seen"]["objects"] == 3 + 3
    assert held_out["unseen"]["per_class"].keys() == {"airplane", "bed"}
    assert held_out["seen"]["per_class"].keys() == {"chair", "night_stand"}
    assert held_out["harmonic_mean"] == 1.0 and held_out["generalized"]["harmonic_mean"] == 1.0
    run = mlflow.MlflowClient(tracking_uri=document["mlflow"]["tracking_uri"]).get_run(document["mlflow"]["run_id"])
    assert run.data.metrics["unseen_top1"] == 1.0 and run.data.metrics["unseen_chance"] == 0.5


def test_modelnet40_resampled_layout_through_point_shards(pretrained_run, tmp_path):
    write_modelnet_resampled(tmp_path / "mn40", {"chair": (1, 2), "night_stand": (1, 2), "airplane": (1, 1)},
                             points=600)  # fmt: skip
    options = {"source": "modelnet40", "root": str(tmp_path / "mn40")}
    manifest, points = build_point_shards("modelnet40", options, tmp_path / "data")
    spec = {"name": "mn40", "dataset": "modelnet40", "split": "test", "label_map": "modelnet40"}
    document = run_zeroshot(pretrained_run, tmp_path, spec, points=points, manifest=manifest, dataset=options)
    assert document["class_names"] == ["airplane", "chair", "night_stand"]
    assert document["counts"] == {"objects": 5, "excluded": 0, "missing": 0, "classes": 3}
    assert document["chance"] == pytest.approx(1 / 3)
    assert all(0.0 <= v <= 1.0 for v in document["metrics"].values())
    assert document["metrics"]["top5"] == 1.0  # 3 classes: the true one is always in the top 5


@pytest.mark.parametrize("variant", ["PB_T50_RS", "OBJ_BG", "OBJ_ONLY"])
def test_scanobjectnn_h5_variants_load_in_published_class_order(tmp_path, variant):
    written = write_scanobjectnn(tmp_path / "h5_files", variant, n_train=3, n_test=17, points=512)
    clouds = clouds_from_scanobjectnn(tmp_path / "h5_files", variant, "test", num_points=128)
    assert clouds.label_set == SCANOBJECTNN_CLASSES
    with h5py.File(written["test"]) as h5:
        assert clouds.categories == [SCANOBJECTNN_CLASSES[label] for label in h5["label"][:]]
    assert clouds.points.shape == (17, 128, 3)
    radii = np.linalg.norm(clouds.points, axis=2).max(axis=1)  # FPS need not keep the farthest point
    assert np.all(radii <= 1.0 + 1e-6) and np.all(radii > 0.9)
    assert len(clouds_from_scanobjectnn(tmp_path / "h5_files", variant, "train", 128).object_ids) == 3


def test_scanobjectnn_zero_shot_with_a_perfect_encoder(pretrained_run, tmp_path, monkeypatch):
    write_scanobjectnn(tmp_path / "h5_files", "OBJ_ONLY", n_train=2, n_test=6, points=512)
    use_oracle(monkeypatch, list(SCANOBJECTNN_CLASSES))
    spec = {"name": "sonn", "source": "scanobjectnn", "root": str(tmp_path / "h5_files"), "variant": "OBJ_ONLY",
            "split": "test", "label_map": None}  # fmt: skip
    document = run_zeroshot(pretrained_run, tmp_path, spec)
    assert document == read_results(tmp_path / "zeroshot.json")
    assert document["class_names"] == list(SCANOBJECTNN_CLASSES[:6])  # labels cycle from 0
    assert document["counts"] == {"objects": 6, "excluded": 0, "missing": 0, "classes": 6}
    assert document["dataset"] == document["source"] == "scanobjectnn"
    assert document["chance"] == pytest.approx(1 / 6)
    assert document["metrics"] == {"top1": 1.0, "top5": 1.0, "class_mean": 1.0}


def test_sh3d_names_mapped_to_modelnet40_with_unmapped_objects_counted(pretrained_run, tmp_path):
    write_sh3d_catalog(tmp_path / "sh3d")
    options = {"source": "sh3d", "root": str(tmp_path / "sh3d")}
    manifest, points = build_point_shards("sh3d", options, tmp_path / "data", test_fraction=0.9999)
    spec = {"name": "sh3d", "dataset": "sh3d", "split": "test", "label_map": "modelnet40"}
    document = run_zeroshot(pretrained_run, tmp_path, spec, points=points, manifest=manifest, dataset=options)
    # Armchair -> chair, Coffee table -> table; "Bill 10€" maps to no class; Ghost has no model file.
    assert document["class_names"] == ["chair", "table"]
    assert document["counts"] == {"objects": 2, "excluded": 1, "missing": 0, "classes": 2}
    assert document["label_map"] == "modelnet40" and document["chance"] == 0.5


# --- protocols and fixed class lists ------------------------------------------------------------


def test_both_protocols_score_every_class_of_the_fixed_list(pretrained_run, tmp_path, monkeypatch):
    options, data = modelnet_raw_with_oracle(tmp_path, monkeypatch)
    use_oracle(monkeypatch, list(MODELNET_FIXTURE), templates=[zeroshot.SINGLE_PROMPT])
    spec = {"name": "modelnet40", "dataset": "modelnet40", "split": "test", "label_map": None, "classes": "modelnet40"}
    document = run_zeroshot(pretrained_run, tmp_path, spec, dataset=options, **data)

    assert document == read_results(tmp_path / "zeroshot.json")
    assert document["class_names"] == list(MODELNET40_CLASSES) and document["class_list"] == "modelnet40"
    assert document["counts"] == {"objects": 11, "excluded": 0, "missing": 0, "classes": 40}
    assert document["chance"] == 1 / 40
    single, ensemble = document["protocols"]["single"], document["protocols"]["ensemble"]
    assert single["prompts"] == ["This is a {}"] and ensemble["prompts"] == len(TEMPLATES)
    # The encoder answers with single-prompt embeddings: that protocol is perfect over all 40 names.
    assert single["metrics"] == {"top1": 1.0, "top5": 1.0, "class_mean": 1.0}
    assert single["per_class"] == {"airplane": 1.0, "bed": 1.0, "chair": 1.0, "night_stand": 1.0}
    assert document["headline_protocol"] == "ensemble" and document["metrics"] == ensemble["metrics"]
    run = mlflow.MlflowClient(tracking_uri=document["mlflow"]["tracking_uri"]).get_run(document["mlflow"]["run_id"])
    assert run.data.metrics["single/top1"] == 1.0 and run.data.metrics["ensemble/top1"] == ensemble["metrics"]["top1"]


def test_a_class_without_objects_in_the_split_still_competes(pretrained_run, tmp_path, monkeypatch):
    options, data = modelnet_raw_with_oracle(tmp_path, monkeypatch)
    use_oracle(monkeypatch, ["bathtub"] * 4)  # every cloud looks like a bathtub, which the split lacks
    spec = {"name": "mn40", "dataset": "modelnet40", "split": "test", "label_map": None, "classes": "modelnet40"}
    document = run_zeroshot(pretrained_run, tmp_path, spec, dataset=options, **data)
    assert document["metrics"]["top1"] == 0.0 and "bathtub" not in document["per_class"]
    present_only = run_zeroshot(pretrained_run, tmp_path, dict(spec, classes=None), dataset=options, **data)
    assert present_only["counts"]["classes"] == 4 and present_only["metrics"]["top1"] > 0.0


def test_a_users_class_and_template_files(pretrained_run, tmp_path, monkeypatch):
    options, data = modelnet_raw_with_oracle(tmp_path, monkeypatch)
    (tmp_path / "classes.txt").write_text("chair\nnight stand\n\nsofa\n")
    (tmp_path / "templates.txt").write_text("a {} in the dark.\nan outline of a {}.\n")
    spec = {"name": "mine", "dataset": "modelnet40", "split": "test", "label_map": None,
            "classes": str(tmp_path / "classes.txt"), "templates": str(tmp_path / "templates.txt")}  # fmt: skip
    document = run_zeroshot(pretrained_run, tmp_path, spec, dataset=options, **data)
    assert document["class_names"] == ["chair", "night stand", "sofa"]
    assert document["counts"] == {"objects": 6, "excluded": 5, "missing": 0, "classes": 3}  # airplanes, beds out
    assert document["templates"] == document["protocols"]["ensemble"]["prompts"] == 2


def test_objaverse_lvis_is_scored_on_its_annotation_list_and_counts_uids_without_a_glb(
    pretrained_run, tmp_path, monkeypatch
):
    annotations = {"aerosol_can": ["u1", "u2"], "bow_(weapon)": ["u3", "u4"], "Band_Aid": ["u5"], "yoke": []}
    write_objaverse_lvis(tmp_path / "objaverse", annotations, absent={"u5"})
    options = {"source": "objaverse", "root": str(tmp_path / "objaverse")}
    manifest, points = build_point_shards("objaverse", options, tmp_path / "data")
    use_oracle(monkeypatch, list(annotations))
    spec = {"name": "lvis", "dataset": "objaverse", "split": "all", "label_map": None, "classes": "lvis"}
    document = run_zeroshot(pretrained_run, tmp_path, spec, points=points, manifest=manifest, dataset=options)
    assert document == read_results(tmp_path / "zeroshot.json")
    assert document["class_names"] == sorted(annotations) and document["split"] == "all"
    assert document["counts"] == {"objects": 4, "excluded": 0, "missing": 0, "classes": 4, "annotated_not_on_disk": 1}
    assert document["metrics"]["top1"] == 1.0 and document["chance"] == 1 / 4


def test_class_list_names_in_the_schema_are_the_registry():
    schema = yaml.safe_load(Path("workflow/schemas/config.schema.yaml").read_text())
    assert schema["$defs"]["zeroshot_classes"]["oneOf"][1]["enum"] == list(CLASS_LISTS)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [("a photo of a thing.\n", "exactly one '{}' slot"), ("\n\n", "holds no template"), ("a {} {}\n", "exactly one")],
)
def test_a_template_file_without_one_slot_is_refused(tmp_path, text, message):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        zeroshot.zeroshot_templates({"name": "mine", "templates": str(tmp_path / "t.txt")})
    assert "evaluate.zeroshot.mine.templates" in str(error.value)


def test_empty_or_repeated_class_lists_and_lvis_without_annotations_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "twice.txt").write_text("night_stand\nnight stand\n")
    with pytest.raises(ValueError, match="evaluate.zeroshot.x.classes: the class-name file .* lists no class"):
        resolve_class_list({"name": "x", "classes": str(tmp_path / "empty.txt")})
    with pytest.raises(ValueError, match=r"names \['night stand'\] more than once"):
        resolve_class_list({"name": "x", "classes": str(tmp_path / "twice.txt")})
    with pytest.raises(ValueError, match="'lvis' needs an objaverse dataset"):
        resolve_class_list({"name": "x", "dataset": "o", "classes": "lvis"}, {"source": "objaverse", "root": str(tmp_path)})
    with pytest.raises(ValueError, match="cannot read"):
        resolve_class_list({"name": "x", "classes": str(tmp_path / "absent.txt")})




def test_missing_scanobjectnn_names_the_file_and_the_config_key(tmp_path):
    with pytest.raises(ScanObjectNNMissing) as error:
        scanobjectnn_file(tmp_path / "absent", "PB_T50_RS", "test", key="evaluate.zeroshot.sonn.root")
    message = str(error.value)
    assert "absent/main_split/test_objectdataset_augmentedrot_scale75.h5" in message
    assert "config key: evaluate.zeroshot.sonn.root" in message and "h5_files.zip" in message
    with pytest.raises(ValueError, match="unknown ScanObjectNN variant 'PB_T25'"):
        scanobjectnn_file(tmp_path, "PB_T25", "test")


def test_results_missing_a_required_field_are_refused_and_not_written(tmp_path):
    document = {"task": "zeroshot", "name": "x", "dataset": "x", "split": "test"}
    with pytest.raises(ResultsError) as error:
        write_results(tmp_path / "r.json", document)
    assert "'model' is a required property" in str(error.value)
    assert "'chance' is a required property" in str(error.value)
    assert not (tmp_path / "r.json").exists()


def test_a_cloud_that_cannot_be_prepared_is_left_out_not_fatal(tmp_path):
    """Evaluation loading isolates objects: a collapsed or NaN cloud in a downloaded h5 file is
    left out and counted as missing; the others are evaluated with the right labels."""
    written = write_scanobjectnn(tmp_path / "h5_files", "OBJ_ONLY", n_train=3, n_test=6, points=256)
    with h5py.File(written["test"], "r+") as h5:
        h5["data"][1] = 0.0  # every point in one spot
        h5["data"][4, 7] = np.nan
        labels = h5["label"][:]
    clouds = clouds_from_scanobjectnn(tmp_path / "h5_files", "OBJ_ONLY", "test", num_points=64)
    assert clouds.missing == 2 and clouds.points.shape == (4, 64, 3)
    assert clouds.object_ids == [f"scanobjectnn/OBJ_ONLY/test/{i:05d}" for i in (0, 2, 3, 5)]
    assert clouds.categories == [SCANOBJECTNN_CLASSES[labels[i]] for i in (0, 2, 3, 5)]
