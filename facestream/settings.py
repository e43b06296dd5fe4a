"""Where facestream keeps its state, resolved from flags, environment and defaults.

Precedence: command-line flag > environment variable > default under ``./var/facestream``.

=========================  ====================================  ===============================
setting                    environment                           default
=========================  ====================================  ===============================
state directory            ``FACESTREAM_HOME``                   ``./var/facestream``
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

from facestream.config import (
    AnalyzerConfig,
    DeviceConfig,
    DlibResNetConfig,
    EmbedConfig,
    FacenetConfig,
    _Model,
)
from facestream.errors import InvalidParameter


class StatePaths:
    """Where state lives under a ``home`` directory unless a path is given explicitly.

    Mixed into every config that has ``home``, ``store_uri``, ``audit_path`` and
    ``events_path`` fields, so the CLI, the stream jobs and the API agree on one layout.
    """

    home: Path
    store_uri: str | None
    audit_path: Path | None
    events_path: Path | None

    @property
    def resolved_store_uri(self) -> str:
        return self.store_uri or str(self.home / "milvus.db")

    @property
    def resolved_audit_path(self) -> Path:
        return self.audit_path or self.home / "audit.jsonl"

    @property
    def resolved_events_path(self) -> Path:
        return self.events_path or self.home / "events.sqlite3"


class Settings(_Model):
    home: Path = Field(description="directory for the embedded store, the audit log and spools")
    store_uri: str = Field(
        min_length=1, max_length=4096, description="Milvus Lite path (*.db) or http(s)://host:port"
    )
    audit_path: Path = Field(description="append-only audit log (JSON lines)")
    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig)


def resolve_settings(
    *,
    store: str | None = None,
    home: str | None = None,
    model: str | None = None,
    device: str | None = None,
    weights: str | None = None,
) -> Settings:
    env = os.environ
    home_p = Path(home or env.get("FACESTREAM_HOME") or "var/facestream")
    store_uri = store or env.get("FACESTREAM_STORE") or str(home_p / "milvus.db")
    audit = Path(env.get("FACESTREAM_AUDIT_LOG") or home_p / "audit.jsonl")
    model_name = model or env.get("FACESTREAM_MODEL") or "dlib-resnet"
    weights_p = Path(weights) if weights else None
    if model_name == "dlib-resnet":
        model_cfg: DlibResNetConfig | FacenetConfig = DlibResNetConfig(weights_path=weights_p)
    elif model_name == "facenet-vggface2":
        model_cfg = FacenetConfig(weights_path=weights_p)
    else:
        raise InvalidParameter(f"model {model_name!r}: expected dlib-resnet or facenet-vggface2")
    analyzer = AnalyzerConfig(
        device=DeviceConfig(device=device or env.get("FACESTREAM_DEVICE") or "auto"),
        embed=EmbedConfig(model=model_cfg),
    )
    return Settings(home=home_p, store_uri=store_uri, audit_path=audit, analyzer=analyzer)
