"""Policy-as-code benchmark: µs per decision for regorus and regopy, and the fraud plan with the library."""
