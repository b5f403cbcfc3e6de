#!/usr/bin/env bash
# The GPU path in one run (about 8 minutes on one GPU): a synthetic dataset built by the real
# workflow, pretrained under torchrun with NCCL and bf16 autocast; bench_schedules.py with
# ViT-B-16; bench_train.py on CUDA. Figures and logs go to $OUT (if set) or benchmarks/out/.
# Without a CUDA device it fails at once: it is a check of the GPU path, never a silent skip.
# CI never runs it.
#
#     bash benchmarks/gpu_smoke.sh            # PYTHON=/path/to/python to use another interpreter
#
# bench_schedules.py needs the SH3D triplet shards (`snakemake --cores 8 data/sh3d/summary.json`);
# without them that step fails and says so, after the other two have run.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
OUT_DIR=${OUT:-$REPO/benchmarks/out}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl} HF_HUB_OFFLINE=1
cd "$REPO"

fail() { echo "gpu_smoke.sh: $*" >&2; exit 1; }

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "torch sees no CUDA device: this script checks the GPU path and needs one GPU"
"$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())' \
    | tee "$OUT_DIR/device.txt"

# 1. Synthetic shards through the workflow's own data rules, then pretraining under torchrun.
"$PY" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import yaml

work = Path(sys.argv[1])
config = yaml.safe_load(Path("config.yaml").read_text())
config["datasets"]["smoke"] = {"source": "synthetic", "count": 320, "seed": 0}
config["build"] = ["smoke"]
config["data"]["objects_per_shard"] = 40
config["pretrain"].update(dataset="smoke", holdout={"label_map": None, "classes": []}, device="cuda",
                          epochs=3, prompt_epochs=1, batch_size=64, workers=4, nproc=1)
(work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
settings = {key: config[key] for key in ("name", "clip", "pretrain")}
settings["tracking"] = {"uri": f"sqlite:///{work / 'mlflow.db'}"}
(work / "settings.json").write_text(json.dumps(settings))
PY
"$PY" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORK" --configfile "$WORK/config.yaml" \
    --cores "$(nproc)" data/smoke/summary.json > "$OUT_DIR/smoke_data.log" 2>&1 \
    || fail "building the synthetic shards failed (see $OUT_DIR/smoke_data.log)"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m cg3d pretrain \
    --settings "$(cat "$WORK/settings.json")" --out-dir "$WORK/run" --shards "$WORK"/data/smoke/triplets/*.parquet \
    > "$OUT_DIR/pretrain.log" 2>&1 || fail "pretraining failed (see $OUT_DIR/pretrain.log)"
grep -q "joined a nccl process group" "$OUT_DIR/pretrain.log" || fail "pretraining did not run under NCCL"
cp "$WORK/run/run.json" "$OUT_DIR/pretrain_run.json"

# 2. Per-step throughput of both encoders at both sizes, bf16 on the GPU.
"$PY" benchmarks/bench_train.py --device cuda --batch 64 --rounds 10 | tee "$OUT_DIR/bench_train_cuda.md"

# 3. cached vs alternating with ViT-B-16 on the SH3D shards.
ls data/sh3d/triplets/*.parquet > /dev/null 2>&1 \
    || fail "bench_schedules.py needs data/sh3d/triplets: run \`snakemake --cores 8 data/sh3d/summary.json\` first"
"$PY" benchmarks/bench_schedules.py --clip-model ViT-B-16 --epochs 3 | tee "$OUT_DIR/bench_schedules_vitb16.md"

"$PY" -c 'import json, sys; run = json.load(open(sys.argv[1])); print(json.dumps(run["final"], indent=2))' \
    "$OUT_DIR/pretrain_run.json" > "$OUT_DIR/pretrain_final.json"
echo "gpu_smoke.sh: all three steps ran; figures in $OUT_DIR"
