"""The serving bench's own parts that decide its figures: the binary request and the profile's frames."""

from __future__ import annotations

import numpy as np
import orjson

from bench.serving.model import FEATURES, ROW, binary_request_body
from bench.serving.profile import top_frames
from stratus.serving.binary import decode_tensor, split_body


def test_the_binary_request_is_the_json_rows_bytes_as_the_server_splits_them() -> None:
    body, header_len = binary_request_body()
    header, raw = split_body(body, str(header_len).encode())
    assert raw is not None
    doc = orjson.loads(header)
    (tensor,) = doc["inputs"]
    assert tensor["parameters"] == {"binary_data_size": FEATURES * 4}
    decoded = decode_tensor("x", "FP32", (1, FEATURES), raw)
    np.testing.assert_array_equal(decoded, ROW)


def test_top_frames_counts_own_and_inclusive_samples_and_drops_the_launch_frames() -> None:
    raw = "\n".join(
        [
            "<module> (a.py:1);Runner.run (runners.py:118) 6",
            "<module> (a.py:1);Runner.run (runners.py:118);handle (app.py:10);write (up.py:5) 3",
            "<module> (a.py:1);Runner.run (runners.py:118);handle (app.py:10) 1",
        ]
    )
    own, inclusive = top_frames(raw, count=3)
    assert own == [
        (0.6, "Runner.run (runners.py:118)"),
        (0.3, "write (up.py:5)"),
        (0.1, "handle (app.py:10)"),
    ]
    assert inclusive[0] == (1.0, "Runner.run (runners.py:118)")
    assert inclusive[1] == (0.4, "handle (app.py:10)")
    assert all("<module>" not in frame for _, frame in inclusive)
