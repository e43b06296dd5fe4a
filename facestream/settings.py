"""Where facestream keeps its state, resolved from flags, environment and defaults.

Precedence: command-line flag > environment variable > default under the state home, which
never depends on the working directory (:func:`facestream.paths.default_home`).

=========================  ====================================  ===============================
setting                    environment                           default
=========================  ====================================  ===============================
state directory            ``FACESTREAM_HOME``                   ``$XDG_DATA_HOME/facestream``
                                                                 (``~/.local/share/facestream``)
vector store               ``FACESTREAM_STORE``                  ``<home>/milvus.db`` (Milvus Lite)
audit log                  ``FACESTREAM_AUDIT_LOG``              ``<home>/audit.jsonl``
embedding model            ``FACESTREAM_MODEL``                  ``dlib-resnet``
device                     ``FACESTREAM_DEVICE``                 ``auto``
=========================  ====================================  ===============================
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from facestream.config import AnalyzerConfig, DeviceConfig, EmbedConfig, _Model
from facestream.embedders import DEFAULT_MODEL, embedder_config
from facestream.paths import StateHome, default_home

__all__ = ["Settings", "resolve_settings"]


class Settings(_Model):
    home: Path = Field(description="directory for the embedded store, the audit log and spools")
    store_uri: str = Field(
        min_length=1, max_length=4096, description="Milvus Lite path (*.db) or http(s)://host:port"
    )
    audit_path: Path = Field(description="append-only audit log (JSON lines)")
    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig)

    @property
    def state(self) -> StateHome:
        """the files and folders under :attr:`home`"""
        return StateHome(self.home)


def resolve_settings(
    *,
    store: str | None = None,
    home: str | None = None,
    model: str | None = None,
    device: str | None = None,
    weights: str | None = None,
) -> Settings:
    env = os.environ
    home_p = Path(home) if home else default_home()
    state = StateHome(home_p)
    store_uri = store or env.get("FACESTREAM_STORE") or str(state.milvus_db)
    audit = Path(env.get("FACESTREAM_AUDIT_LOG") or state.audit_log)
    model_name = model or env.get("FACESTREAM_MODEL") or DEFAULT_MODEL
    model_cfg = embedder_config(model_name, Path(weights) if weights else None)
    analyzer = AnalyzerConfig(
        device=DeviceConfig(device=device or env.get("FACESTREAM_DEVICE") or "auto"),
        embed=EmbedConfig(model=model_cfg),
    )
    return Settings(home=home_p, store_uri=store_uri, audit_path=audit, analyzer=analyzer)
