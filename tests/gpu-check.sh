#!/usr/bin/env bash
# Checks and times PeftGen's 4-bit (QLoRA) path on a GPU, and checks float16 mixed precision and a generated model's
# move to the GPU (TorchSharp's Module.to) there.
# Needs an NVIDIA GPU and the CUDA torch backend (TorchSharp-cuda-linux, built with -p:TorchBackend=cuda).
# Without either it prints why and exits 0: nothing is checked then.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIP: no NVIDIA GPU visible (nvidia-smi missing or lists no device)."
  exit 0
fi
nvidia-smi -L

project=tests/PeftGen.GpuCheck/PeftGen.GpuCheck.csproj
if ! restore_log=$(dotnet restore "$project" -p:TorchBackend=cuda 2>&1); then
  echo "SKIP: the CUDA backend could not be restored (TorchSharp-cuda-linux is not served by this package feed)."
  echo "$restore_log" | grep -E "error" | head -n 5
  exit 0
fi

if ! dotnet build "$project" -c Release -p:TorchBackend=cuda --no-restore -nologo -v q; then
  echo "FAIL: the GPU check did not build with the CUDA backend."
  exit 1
fi
dotnet run --project "$project" -c Release -p:TorchBackend=cuda --no-build
