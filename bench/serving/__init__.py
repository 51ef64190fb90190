"""Serving benchmark: our V2 model server against ONNX Runtime's floor, MLServer, HAProxy and our gateway.

Run with ``python -m bench.serving``; ``--help`` lists the knobs (``--duration`` per wrk run, default 10 s).
"""
