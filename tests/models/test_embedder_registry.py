"""The embedding-model registry: a model is its config class in facestream/embedders.py plus its
code in models/embedders, one registry line each; everything else is derived from them.

The toy-model test adds a model the way a contributor would (a config class and one line in
``EMBEDDER_CONFIGS``, a module and one line in ``EMBEDDERS``) to a copy of the packages, and
checks in a fresh interpreter that settings, the CLI, dimensions, similarity anchors, the
config schema and load_embedder all know it without any other edit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facestream.cli.context import add_common_flags
from facestream.config import EmbedConfig
from facestream.embedders import EMBEDDER_CONFIGS, MODEL_DIMS, MODEL_NAMES
from facestream.errors import InvalidParameter
from facestream.settings import resolve_settings
from facestream.similarity import ANCHORS
from models.embedders import EMBEDDERS

ROOT = Path(__file__).resolve().parents[2]


def test_config_and_code_registries_agree() -> None:
    assert MODEL_NAMES == ("dlib-resnet", "facenet-vggface2")
    assert MODEL_DIMS == {"dlib-resnet": 128, "facenet-vggface2": 512}
    assert set(EMBEDDERS) == set(MODEL_NAMES)
    for cfg in EMBEDDER_CONFIGS:
        assert EMBEDDERS[cfg.name].name == cfg.name
        assert EMBEDDERS[cfg.name].dim == cfg.dim == MODEL_DIMS[cfg.name]
        assert EmbedConfig.model_validate({"model": {"kind": cfg.name}}).model.__class__ is cfg
    assert set(ANCHORS) == set(MODEL_NAMES)


TOY_CONFIG = """
class ToyConfig(EmbedderModelConfig):
    dim = 8
    similarity_anchors = (0.1, 0.2, 0.3)

    kind: Literal["toy-8"] = "toy-8"


"""

TOY_MODULE = """
from __future__ import annotations

import torch

from facestream.embedders import EmbedderModelConfig
from models.device import Placement
from models.embedders.base import ChipSpec, Embedder, own_config
from models.embedders.dlib_resnet import DLIB_CHIP


class ToyEmbedder(Embedder):
    name = "toy-8"
    dim = 8
    chip: ChipSpec = DLIB_CHIP

    def __init__(self, placement: Placement) -> None:
        self._placement = placement

    @classmethod
    def from_config(
        cls, config: EmbedderModelConfig, placement: Placement, *, channels_last: bool
    ) -> ToyEmbedder:
        from facestream.embedders import CONFIGS_BY_NAME

        own_config(config, CONFIGS_BY_NAME["toy-8"])
        return cls(placement)

    @property
    def device(self) -> torch.device:
        return self._placement.device

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.ones((chips.shape[0], 8)), dim=1)
"""

CHECK = """
import argparse, json, sys
import torch
from facestream.cli.context import add_common_flags
from facestream.config import AnalyzerConfig, EmbedConfig
from facestream.embedders import MODEL_DIMS, MODEL_NAMES
from facestream.settings import resolve_settings
from facestream.similarity import cosine_to_similarity
from models.device import Placement
from models.embedders import load_embedder

settings = resolve_settings(model="toy-8")
p = argparse.ArgumentParser()
add_common_flags(p)
embedder = load_embedder(settings.analyzer.embed, Placement(torch.device("cpu"), None))
chips = torch.zeros((2, 3, 150, 150), dtype=torch.uint8)
print(json.dumps({
    "names": list(MODEL_NAMES),
    "dim": MODEL_DIMS["toy-8"],
    "settings": type(settings.analyzer.embed.model).__name__,
    "cli": p.parse_args(["--model", "toy-8"]).model,
    "similarity_at_c80": float(cosine_to_similarity("toy-8", 0.2)),
    "schema": "toy-8" in json.dumps(AnalyzerConfig.model_json_schema()),
    "parsed": type(EmbedConfig.model_validate({"model": {"kind": "toy-8"}}).model).__name__,
    "embedder": [type(embedder).__name__, list(embedder.embed(chips).shape)],
}))
"""


def _insert_before(text: str, marker: str, insert: str) -> str:
    assert text.count(marker) == 1, marker
    return text.replace(marker, insert + marker)


def test_a_new_model_is_one_config_class_one_module_and_two_registry_lines(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    for pkg in ("facestream", "models"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=ignore)
    kernel = tmp_path / "facestream" / "embedders.py"
    src = kernel.read_text()
    src = _insert_before(src, "#: The registry: one line per model", TOY_CONFIG)
    src = _insert_before(src, ")\n\nDEFAULT_MODEL", "    ToyConfig,\n")  # the end of EMBEDDER_CONFIGS
    kernel.write_text(src)
    (tmp_path / "models" / "embedders" / "toy.py").write_text(TOY_MODULE)
    code = tmp_path / "models" / "embedders" / "__init__.py"
    reg = code.read_text()
    reg = _insert_before(reg, "\n#: The registry", "from models.embedders.toy import ToyEmbedder\n")
    reg = _insert_before(reg, "}\n\n\ndef load_embedder", "    ToyEmbedder.name: ToyEmbedder,\n")
    code.write_text(reg)

    env = {**os.environ, "PYTHONPATH": str(tmp_path), "FACESTREAM_HOME": str(tmp_path / "home")}
    env.pop("FACESTREAM_MODEL", None)
    run = subprocess.run(
        [sys.executable, "-c", CHECK],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got == {
        "names": ["dlib-resnet", "facenet-vggface2", "toy-8"],
        "dim": 8,
        "settings": "ToyConfig",
        "cli": "toy-8",
        "similarity_at_c80": 80.0,
        "schema": True,
        "parsed": "ToyConfig",
        "embedder": ["ToyEmbedder", [2, 8]],
    }


def test_unknown_model_is_refused_by_name() -> None:
    p = argparse.ArgumentParser()
    add_common_flags(p)
    assert p.parse_args(["--model", "facenet-vggface2"]).model == "facenet-vggface2"
    with pytest.raises(InvalidParameter, match="'toy-8': expected dlib-resnet or facenet-vggface2"):
        resolve_settings(model="toy-8")
