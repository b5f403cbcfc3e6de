"""The workflow as the snakemake-workflows standard has it: `snakemake --lint` finds nothing, the
DAG is built without the heavy libraries the jobs use, and `snakemake --report` builds an HTML
report of the synthetic run with every figure and its caption."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

from helpers.layouts import write_scanobjectnn
from helpers.workflow_config import REPO, small_config, snakemake, snakemake_command, write_config

# What the jobs import and the process building the DAG must not: a dry run of a big config
# would pay seconds of imports, and GPU-less login nodes may not even hold them.
HEAVY = ("torch", "matplotlib", "open_clip", "mlflow")

# Runs Snakemake's own __main__ and, at exit, writes the names of every module it imported to
# the file named by the first argument.
RECORD_IMPORTS = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "runpy.run_module('snakemake', run_name='__main__', alter_sys=True)\n"
)


def test_lint_finds_nothing(tmp_path):
    write_config(tmp_path, small_config())
    command = [*snakemake_command(tmp_path), "--lint"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in output, output[-4000:]
    assert "your workflow is in a good condition" in output


def test_rules_call_named_functions_only():
    rules = sorted((REPO / "workflow/rules").glob("*.smk")) + [REPO / "Snakefile"]
    assert [path.name for path in rules if re.search(r"\blambda\b", path.read_text())] == []


def test_building_the_dag_imports_none_of_the_jobs_heavy_libraries(tmp_path):
    """A dry run of `all` once the manifests exist, so every input function runs to its end:
    shard lists, a ScanObjectNN entry's h5 file, a class-name file, the scenes' names."""
    config = small_config()
    write_scanobjectnn(tmp_path / "resources/h5_files", "PB_T50_RS", n_train=2, n_test=3)
    (tmp_path / "classes.txt").write_text("box\ncone\n")
    config["evaluate"]["zeroshot"].update(
        sonn={"source": "scanobjectnn", "root": "resources/h5_files", "variant": "PB_T50_RS", "split": "test",
              "label_map": None, "classes": "scanobjectnn"},
        listed={"dataset": "toy", "split": "test", "label_map": None, "classes": "classes.txt"},
    )  # fmt: skip
    config["evaluate"]["targets"] += ["zeroshot_sonn", "zeroshot_listed"]
    write_config(tmp_path, config)
    made = snakemake(tmp_path, "data/toy/manifest.parquet")
    assert made.returncode == 0, made.stderr[-3000:]

    modules = tmp_path / "modules.txt"
    command = [sys.executable, "-c", RECORD_IMPORTS, str(modules), *snakemake_command(tmp_path)[3:],
               "--cores", "2", "--dry-run", "all"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = set(re.findall(r"^\s+wildcards: (.*)$", result.stdout, flags=re.M))
    assert {"name=sonn", "name=listed", "dataset=toy, shard=shard-00002"} <= planned
    imported = {name.split(".")[0] for name in modules.read_text().split()}
    assert "cg3d" in imported and "snakemake" in imported
    assert sorted(imported & set(HEAVY)) == []


def test_report_holds_every_figure_with_its_caption(synthetic_run):
    """`snakemake --report report.html` (what `make report` runs) embeds each report() output
    whole, as base64, and each caption rendered with its wildcards."""
    result = snakemake(synthetic_run, "all", extra=("--report", "report.html"))
    assert result.returncode == 0, result.stderr[-4000:]
    report = (synthetic_run / "report.html").read_text()
    captions = {
        "runs/test-run/pretrain/loss_curves.png": "Pretraining: the mean loss per epoch",
        "results/zeroshot_modelnet40_confusion.png": "Zero-shot confusion matrix of the modelnet40 evaluation",
        "results/retrieval_toy_gallery.png": "Text-to-3D retrieval on the held-out objects of toy:",
        "results/finetune_toy_curves.png": "Fine-tuning on toy: training loss per epoch",
        "results/finetune_toy_confusion.png": "fine-tuned from CG3D on toy,",
        "results/scene_query/scene_query_composed_0.png": "Language queries over one scene, seen from above",
        "results/results_table.html": "Every number of the run",
    }
    for path, caption in captions.items():
        assert f'"{path}": {{' in report, path
        assert base64.b64encode((synthetic_run / path).read_bytes()).decode() in report, path
        assert caption in report, caption


def test_results_table_holds_every_results_file(synthetic_run):
    table = (synthetic_run / "results/results_table.html").read_text()
    for stem in ("zeroshot_modelnet40", "retrieval_toy", "finetune_toy", "scene_query"):
        assert f"<td>{stem}</td>" in table, stem
    assert "<td>metrics.top1</td>" in table and "<td>metrics.difference.top1_vote</td>" in table
    assert "<td>metrics.ap</td>" in table and "per_class" not in table
