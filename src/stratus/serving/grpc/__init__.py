"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``) for the server and gateway.

Modules, one job each: :mod:`.service` (names, error codes, options), :mod:`.tensors` (request tensors
to numpy and back, validated by the REST parser's checks), :mod:`.server` (the model server's listener),
:mod:`.gateway` (the gateway's front, which passes request bytes through to a site), :mod:`.wire` (the
one protobuf field the gateway reads: the model name). ``grpc_predict_v2_pb2`` is generated from the
vendored ``grpc_predict_v2.proto`` by ``regenerate.sh``, in a descriptor pool of its own so that it loads
beside tritonclient.grpc or kserve, which register the same names in protobuf's default pool.

Nothing is imported here, so that ``import stratus.serving`` never needs grpcio.
"""
