"""An :class:`facestream.operations.Analyzer` that calls the batched Serve deployment.

Every image of one call is sent before any answer is awaited, so the two images of a
CompareFaces (and concurrent API requests, and stream frames) share batches.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from ray.exceptions import RayError

from facestream.types import FaceBatch
from serve.errors import AnalysisUnavailable, ServiceTimeout

log = logging.getLogger(__name__)


class HandleAnalyzer:
    def __init__(self, handle: Any, timeout_s: float) -> None:
        self._handle = handle
        self._timeout_s = timeout_s
        self._model: str | None = None

    @property
    def model_name(self) -> str:
        if self._model is None:
            self._model = str(self._handle.model_name.remote().result(timeout_s=self._timeout_s))
        return self._model

    def _call(self, method: str, images: list[np.ndarray]) -> list[FaceBatch]:
        fn = getattr(self._handle, method)
        return self._results([fn.remote(img) for img in images], "face analysis")

    def _results(self, pending: list[Any], what: str) -> list[Any]:
        """The answers of ``pending`` deployment calls, or one clear service error for all."""
        try:
            return [p.result(timeout_s=self._timeout_s) for p in pending]
        except TimeoutError:
            for p in pending:
                p.cancel()
            raise ServiceTimeout(f"{what} took longer than {self._timeout_s:.0f} s; retry later") from None
        except RayError as exc:
            # A replica crashed or raised: the caller's input was fine, the service was not.
            log.error("face analysis deployment failed: %s", exc)
            raise AnalysisUnavailable(
                f"the face analysis service failed ({type(exc).__name__}); retry later"
            ) from None

    def detect(self, images: list[np.ndarray]) -> list[FaceBatch]:
        return self._call("detect", images)

    def analyze(self, images: list[np.ndarray]) -> list[FaceBatch]:
        return self._call("analyze", images)

    def landmarks_all(self, image: np.ndarray, batch: FaceBatch) -> np.ndarray:
        pending = self._handle.landmarks_all.remote(image, batch)
        return np.asarray(self._results([pending], "face landmarks")[0])
