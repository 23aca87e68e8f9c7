#!/usr/bin/env bash
# Fine-tuning runs through the installed CLI: single-view source -> multi-view codec (--init) vs the same codec from scratch.
# Usage: bash benchmarks/finetune_runs.sh [WORKDIR]   (default ./finetune-runs; S/F env: source/fine-tune steps)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-finetune-runs}
mkdir -p "$WORK" && cd "$WORK"
export MVARCHIVE_HOME=$PWD/home
MV=$ROOT/.venv/bin/mvarchive
PY=$ROOT/.venv/bin/python
$PY -c "from mvarchive.datasets import build_sample_datasets; build_sample_datasets('data')"
COMMON="--preset tiny --crop 128 --batch-size 4 --lmbda 1024 --learning-rate 5e-4 --lr-schedule constant --eval-baselines none"
S=${S:-300}; F=${F:-150}
time $MV train data/stereo --codec single-view-mlicpp $COMMON --steps $S --out runs/mlicpp
time $MV train data/stereo --codec vemic $COMMON --steps $F --init runs/mlicpp/single-view-mlicpp-tiny.pt --out runs/vemic-ft
time $MV train data/stereo --codec vemic $COMMON --steps $F --out runs/vemic-scratch
time $MV train data/stereo --codec single-view-elic2022-chandelier $COMMON --steps $S --out runs/elic
time $MV train data/stereo --codec camsic $COMMON --steps $F --init runs/elic/single-view-elic2022-chandelier-tiny.pt --out runs/camsic-ft
time $MV train data/stereo --codec camsic $COMMON --steps $F --out runs/camsic-scratch
$PY - <<'P'
import os
import mlflow
c = mlflow.MlflowClient(f"sqlite:///{os.environ['MVARCHIVE_HOME']}/mlflow.db")
exp = c.get_experiment_by_name("mvarchive")
rows = []
for r in sorted(c.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time):
    p, m = r.data.params, r.data.metrics
    rows.append(f"| {r.info.run_name} | {p.get('init', 'none')} | {p.get('steps')} | {m.get('eval/bpp', float('nan')):.4f} | {m.get('eval/psnr', float('nan')):.2f} | {m.get('eval/ms_ssim', float('nan')):.4f} | {m.get('eval/rd_cost', float('nan')):.4f} | {m.get('train_s', float('nan')):.0f} |")
print("| run | init | steps | bpp | PSNR dB | MS-SSIM | J = bpp + λ·MSE | train s |\n|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
P
