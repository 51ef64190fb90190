#!/usr/bin/env bash
# Regenerate grpc_predict_v2_pb2.py (and its .pyi) from grpc_predict_v2.proto with grpcio-tools:
#   .venv/bin/pip install grpcio-tools && src/stratus/serving/grpc/regenerate.sh
# The messages are registered in a descriptor pool of their own rather than protobuf's default pool:
# tritonclient.grpc and kserve register the same names (package "inference") in the default pool, and
# two files defining one symbol there cannot be loaded in one process. With a private pool, stratus's
# gRPC code runs beside either client (the wire format does not depend on the pool).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../../../../.venv/bin/python}"
cd "$here"
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. grpc_predict_v2.proto
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile(/' \
    grpc_predict_v2_pb2.py
grep -q '_descriptor_pool.DescriptorPool().AddSerializedFile' grpc_predict_v2_pb2.py
