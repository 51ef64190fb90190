"""The Flower app folder that ``flwr run`` bundles: ``pyproject.toml`` plus the ``stratus_fl`` package."""
