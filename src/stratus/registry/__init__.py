"""The model registry (MLflow): exported models with their lineage, aliases, and a way back to the file.

    registry = Registry.open(platform_tracking_uri, state_dir(platform_file))   # None: embedded SQLite
    lineage = Lineage(run_id, "train", sites=("gcp-eu-west",), inputs={"features": sha256},
                      metrics={"auc": 0.93}, cost_usd=Decimal("1.27"), pipeline="fraud")
    registry.register("fraud", Path("model.onnx"), lineage, aliases=["challenger"])
    registry.promote("fraud", 3, "champion")
    path = fetch_model("models:/fraud@champion", cache_dir, tracking_uri=None, state_dir=...)
    got = download_model(registry, info, cache_dir, holders=["aws-eu"], open_store=stores.get)
    got.origin   # "the registry's artifact store (...)", or "site aws-eu's store, ..." when it was lost

MLflow itself is imported only when a registry is first used (see :mod:`stratus.registry.backend`).
"""

from stratus.errors import RegistryError
from stratus.registry.info import ModelDetails, ModelVersionInfo, Promotion, RegisteredModelInfo
from stratus.registry.lineage import Lineage
from stratus.registry.refs import ModelRef, check_alias, display_uri, embedded_uri
from stratus.registry.replicas import Downloaded, SiteOpener, download_model
from stratus.registry.store import Registry, fetch_model

__all__ = [
    "Downloaded",
    "Lineage",
    "ModelDetails",
    "ModelRef",
    "ModelVersionInfo",
    "Promotion",
    "RegisteredModelInfo",
    "Registry",
    "RegistryError",
    "SiteOpener",
    "check_alias",
    "display_uri",
    "download_model",
    "embedded_uri",
    "fetch_model",
]
