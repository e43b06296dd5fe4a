"""Derive the facenet-vggface2 chip template: where MTCNN's five landmarks fall, on average,
inside MTCNN's own square box crop resized to 160 px (the crop facenet-pytorch trains and
embeds on). Prints the (5, 2) array that models/embedders/facenet.py pins.

Usage: python scripts/derive_chip_templates.py [DATA_DIR]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from facestream.imageio import load_image_file
from models.detector import MtcnnDetector

log = logging.getLogger("derive_chip_templates")


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "faces"
    paths = sorted(data.glob("deepface/tests/unit/dataset/img*.jpg")) + sorted(
        data.glob("facenet-pytorch/data/test_images/*/*.jpg")
    )
    det = MtcnnDetector()
    rel = []
    for p in paths:
        d = det.detect([load_image_file(p).rgb])[0]
        for box, lm, score in zip(d.boxes, d.landmarks, d.scores, strict=True):
            if score < 0.99:
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            rel.append((lm - box[:2]) / np.array([w, h]) * 160.0)
    arr = np.median(np.stack(rel), axis=0)
    # Mirror-symmetrise: the template should not prefer a head turn.
    sym = arr.copy()
    pairs = [(0, 1), (3, 4)]
    for a, b in pairs:
        ya = (arr[a, 1] + arr[b, 1]) / 2
        dx = (arr[b, 0] - arr[a, 0]) / 2
        sym[a] = (80 - dx, ya)
        sym[b] = (80 + dx, ya)
    sym[2, 0] = 80.0
    log.info("faces used: %d", len(rel))
    sys.stdout.write(np.array2string(np.round(sym, 1), separator=", ") + "\n")


if __name__ == "__main__":
    main()
