"""Model serving over the Open Inference Protocol (KServe V2): see :mod:`stratus.serving.server`."""
