#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md ("On a GPU") and the 224-px transfer result of docs/RESULTS.md, in one
# run on a machine with a CUDA GPU, each part under its own time limit so that one slow part leaves the others:
#   1. the CUDA tests (the fused step against the autograd path and the per-layer reference; features on CUDA);
#   2. the fused step against the autograd path on CUDA;
#   3. frozen EfficientNet-Lite0 at the paper's 224 px: compare fc, linear, mlp, mlp2, spinal, 10 seeds; then
#      fc, mlp, spinal with --tune lr=0.003,0.01,0.03,0.1 from the same cache;
#   4. SpinalLinear against the per-layer formulation on CUDA;
#   5. training throughput of the default CNN and VGG-5 from scratch (one epoch each).
#
#   benchmarks/gpu_run.sh DATA_DIR LITE0_WEIGHTS OUT
#
# DATA_DIR holds fashion-mnist/*.gz; LITE0_WEIGHTS is the converted lite0.pth (README, "Transfer learning").
set -uo pipefail
data=$1 weights=$2 out=$3
py=${PYTHON:-python3}
mkdir -p "$out"
part() { echo; echo "== $* ($(date +%T))"; }

part machine
nvidia-smi -L
$py -c "import torch, lightning, timm; print('torch', torch.__version__, 'lightning', lightning.__version__,
'timm', timm.__version__, torch.cuda.get_device_name(0), torch.get_num_threads(), 'threads')"

part "CUDA tests, and the fused step's tests on this torch"
timeout 150 $py -m pytest -q -p no:cacheprovider tests/test_layer_cuda.py tests/test_layer_fused.py \
    tests/test_fused_switch.py "tests/test_feature_cache.py::test_features_extracted_on_cuda_equal_the_cpu_ones_augmented_views_too" 2>&1 | tail -8

part "the fused step against the autograd path, CUDA"
timeout 120 $py benchmarks/layer_speed.py --device cuda --against autograd --batches 64,512,4096

part "frozen EfficientNet-Lite0 at 224 px on Fashion-MNIST, five arms, 10 seeds"
timeout 300 $py -m spinalnet compare --config configs/transfer-fashion-mnist-lite0.yaml --pretrained "$weights" \
    --data-dir "$data" --image-size 224 --heads fc,linear,mlp,mlp2,spinal --feature-cache /tmp/gpu-cache \
    --output /tmp/lite0-224 --no-progress 2>&1 | tee "$out/compare-224.log" | tail -30
tar czf "$out/lite0-224.tgz" --exclude checkpoints -C /tmp lite0-224

part "the same with an equal tuning budget, from the cache just filled"
timeout 300 $py -m spinalnet compare --config configs/transfer-fashion-mnist-lite0.yaml --pretrained "$weights" \
    --data-dir "$data" --image-size 224 --feature-cache /tmp/gpu-cache --tune lr=0.003,0.01,0.03,0.1 \
    --output /tmp/lite0-224-tune --no-progress 2>&1 | tee "$out/compare-224-tune.log" | tail -12
tar czf "$out/lite0-224-tune.tgz" --exclude checkpoints -C /tmp lite0-224-tune

part "SpinalLinear (automatic mode) against the per-layer formulation, CUDA"
timeout 90 $py benchmarks/layer_speed.py --device cuda --batches 64,512,4096 --no-compile

part "training throughput from scratch, one epoch, batch 64 (the paper's)"
for model in default-cnn vgg5; do
    timeout 60 $py -m spinalnet train --dataset fashion-mnist --data-dir "$data" --model "$model" --epochs 1 \
        --batch-size 64 --output "/tmp/throughput-$model" --no-progress 2>&1 | tail -4
done
part done
