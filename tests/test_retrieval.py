"""Cross-modal retrieval: metrics on constructed embeddings, the four tasks wired to a lookup
encoder that is perfect by construction, and a full run on real triplet shards (real renders)
with its results file, gallery figure and MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cg3d.data.captions import class_prompts
from cg3d.data.shards import read_table
from cg3d.evaluate import retrieval
from cg3d.evaluate.eval_data import RetrievalSplit, retrieval_split
from cg3d.io import read_results
from cg3d.models.trained import TrainedModel
from helpers.eval_fixtures import eval_settings, make_pretrained_run
from helpers.toy_shards import build_toy_shards


@pytest.fixture(scope="module")
def toy_triplets(tmp_path_factory) -> list[Path]:
    return build_toy_shards(tmp_path_factory.mktemp("toy"))


# --- metrics on constructed embeddings ---------------------------------------------------------


def test_perfect_embeddings_score_recall_and_map_of_one():
    gallery = F.normalize(torch.randn(12, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    similarity = (gallery @ gallery.T).numpy()
    scores = retrieval.retrieval_scores(similarity, np.eye(12, dtype=bool))
    assert scores == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "mAP": 1.0, "queries": 12}


def test_worst_ranking_scores_what_the_rank_says():
    # every query's one relevant item is ranked last of 12
    similarity = np.tile(np.arange(12, 0, -1, dtype=float), (3, 1))
    relevant = np.zeros((3, 12), dtype=bool)
    relevant[:, 11] = True
    scores = retrieval.retrieval_scores(similarity, relevant)
    assert scores == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "mAP": pytest.approx(1 / 12), "queries": 3}


def test_caption_queries_are_distinct_and_relevant_to_every_carrier():
    texts, relevant = retrieval.caption_queries([["a chair.", "a seat."], ["a chair.", "a stool."]])
    assert texts == ["a chair.", "a seat.", "a stool."]
    assert relevant.tolist() == [[True, True], [True, False], [False, True]]
    same = retrieval.same_label(["x", "y"], ["y", "x", "y"])
    assert same.tolist() == [[False, True, False], [True, False, True]]


# --- the four tasks with an encoder that is perfect by construction -----------------------------


class LookupEncoder:
    """Stands in for the model: embeds clouds, views and texts by looking up which object and
    category they belong to (one axis per category, one per object), so every task's ideal
    ranking is known."""

    def __init__(self, data: RetrievalSplit):
        clouds = data.clouds
        self.categories = sorted(set(clouds.categories))
        count = len(self.categories) + len(clouds.object_ids)
        self.basis = torch.eye(count)
        self.object_of = {cloud.tobytes(): i for i, cloud in enumerate(clouds.points)}
        self.object_of.update({png: i for views in data.views.values() for i, png in enumerate(views)})
        self.object_category = [self.categories.index(c) for c in clouds.categories]
        self.text_axes: dict[str, list[int]] = {}
        for c, category in enumerate(self.categories):
            for prompt in class_prompts(category):
                self.text_axes.setdefault(prompt, []).append(c)
        for i, captions in enumerate(data.captions):
            for caption in captions:
                self.text_axes.setdefault(caption, []).append(len(self.categories) + i)

    def _object(self, i: int) -> torch.Tensor:
        return F.normalize(self.basis[self.object_category[i]] + self.basis[len(self.categories) + i], dim=-1)

    def encode_prepared(self, clouds: np.ndarray) -> torch.Tensor:
        return torch.stack([self._object(self.object_of[cloud.tobytes()]) for cloud in clouds])

    encode_classes = TrainedModel.encode_classes  # the model's own prompt ensemble over encode_text

    def encode_image(self, pngs) -> torch.Tensor:
        return torch.stack([self._object(self.object_of[png]) for png in pngs])

    def encode_text(self, texts) -> torch.Tensor:
        return torch.stack([F.normalize(self.basis[self.text_axes[t]].sum(dim=0), dim=-1) for t in texts])


def test_every_task_is_perfect_for_a_perfect_encoder(toy_triplets):
    data = retrieval_split(toy_triplets, "test", num_points=256, views=[0, 2])
    scores, extra = retrieval.cross_modal_scores(LookupEncoder(data), data, views=[0, 2])
    objects = len(data.clouds.object_ids)
    for task, values in scores.items():
        assert (values["R@1"], values["mAP"]) == (1.0, 1.0), task
    assert scores["image_to_3d"]["queries"] == 2 * objects and scores["3d_to_image"]["queries"] == objects
    categories = len(set(data.clouds.categories))
    assert scores["text_to_3d_class"]["queries"] == extra["counts"]["categories"] == categories


def test_clouds_paired_with_the_wrong_objects_are_caught(toy_triplets):
    """The same encoder, but every cloud embedded as the next object: image->3D R@1 drops to 0."""
    data = retrieval_split(toy_triplets, "test", num_points=256, views=[0])
    encoder = LookupEncoder(data)
    count = len(data.clouds.object_ids)
    encoder.object_of.update({cloud.tobytes(): (i + 1) % count for i, cloud in enumerate(data.clouds.points)})
    scores, _ = retrieval.cross_modal_scores(encoder, data, views=[0])
    assert scores["image_to_3d"]["R@1"] == 0.0 and scores["3d_to_image"]["R@1"] == 0.0


# --- a full run on real triplet shards -----------------------------------------------------------


def test_retrieval_run_writes_results_gallery_and_a_nested_mlflow_run(toy_triplets, tmp_path):
    checkpoint, run_json, parent_id = make_pretrained_run(tmp_path)
    settings = eval_settings(tmp_path, retrieval={"name": "toy", "split": "test", "views": [0, 2]})
    document = retrieval.evaluate_retrieval(
        settings, checkpoint, run_json, toy_triplets, tmp_path / "retrieval.json", tmp_path / "gallery.png"
    )
    assert document == read_results(tmp_path / "retrieval.json")
    splits = [split for path in toy_triplets for split in read_table(path, ["split"]).column("split").to_pylist()]
    test_objects = splits.count("test")
    assert test_objects > 2 and document["counts"]["objects"] == test_objects
    assert document["counts"]["image_queries"] == 2 * test_objects and document["views"] == [0, 2]
    for values in document["metrics"].values():
        assert all(0.0 <= values[k] <= 1.0 for k in ("R@1", "R@5", "R@10", "mAP"))
        assert values["R@1"] <= values["R@5"] <= values["R@10"]
    with Image.open(tmp_path / "gallery.png") as image:
        assert image.size[0] > 4 * 100 and image.size[1] > 100

    client = mlflow.MlflowClient(tracking_uri=document["mlflow"]["tracking_uri"])
    run = client.get_run(document["mlflow"]["run_id"])
    assert run.data.tags["stage"] == "retrieval" and run.data.tags["mlflow.parentRunId"] == parent_id
    assert run.data.params["retrieval.views"] == "[0, 2]" and run.data.params["evaluate.gallery.hits"] == "4"
    assert run.data.metrics["image_to_3d/recall_at_1"] == document["metrics"]["image_to_3d"]["R@1"]
    assert {"gallery.png", "retrieval.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_views_that_were_not_rendered_are_refused(toy_triplets):
    refused = r"views \[5\] asked for .*evaluate\.retrieval\.<dataset>\.views.*3 views"
    with pytest.raises(ValueError, match=refused):
        retrieval_split(toy_triplets, "test", num_points=256, views=[0, 5])
