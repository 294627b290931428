#!/usr/bin/env bash
# Rebuilds saved_models/fashion_mnist_high_low from nothing: trains the
# default main job (high-low on Fashion-MNIST, with its baselines), exports
# the trained D2NN to every format, and verifies each export against the
# Keras model on the 10,000 test images. About 10 minutes on 2 CPU cores.
#
#   bash saved_models/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=saved_models/fashion_mnist_high_low
rm -rf "$OUT"
mkdir -p "$OUT/verify"

python -m keras_d2nn train --output_dir="$OUT" --nosave_optimizer --verbose=2

MODEL="$OUT/model.keras"
export_to() {  # export_to OUTPUT FLAGS...: one export, then its verification
  local output="$1" name
  shift
  python -m keras_d2nn export --model="$MODEL" --output="$OUT/$output" "$@"
  name="$(echo "$output" | tr ./ __)"
  python -m keras_d2nn verify --model="$MODEL" --exported="$OUT/$output" \
    --dataset=fashion_mnist --n=10000 --report="$OUT/verify/$name.json"
}
export_to saved_model/1 --format=saved_model
export_to model.tflite --format=litert
export_to model_float16.tflite --format=litert --quantize=float16
export_to model_int8.tflite --format=litert --quantize=int8
export_to model.onnx --format=onnx
# The batched LiteRT model (gather/scatter) is verified but not kept: it
# repeats model.tflite's weights.
export_to batched.tflite --format=litert --export_batch_size=0
rm "$OUT/batched.tflite"
du -sh "$OUT"
