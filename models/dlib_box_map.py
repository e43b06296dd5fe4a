"""Where dlib's face detector would box an MTCNN face: the fitted coefficients of
:func:`models.landmarks.dlib_start_boxes` (used when ``embed.predictor_start`` is "dlib_box").

Written by hand from the output of ``python -m bench.alignment_fit`` (a least-squares fit on
the shared images outside PAIRS.tsv); rows follow :func:`models.landmarks.mtcnn_face_features`,
columns are the dlib box's centre dx, dy, width and height in MTCNN box widths.
"""

from __future__ import annotations

import numpy as np

#: fitted on 240 faces in 87 images; 5-fold cross-validated, the 5-point predictor's points
#: from these boxes lie 0.011 inter-ocular distances (mean; median 0.0067) from its points on
#: dlib's own HOG box, against 0.037 (median 0.021) when started from the MTCNN box as is.
DLIB_BOX_FROM_MTCNN = np.array(
    [
        [-0.110281, -0.089166, 0.751551, 0.725998],
        [0.077410, -0.019899, -0.170934, -0.154602],
        [-0.077273, -0.367605, 1.118729, 1.042567],
        [0.008103, 0.073964, -0.207612, -0.177718],
        [0.234931, 0.605190, -0.340202, -0.389472],
        [0.240118, 0.193590, -0.869002, -0.881250],
        [0.422742, -0.175503, -0.213086, -0.129867],
        [-0.074235, 0.182765, 0.107171, 0.093670],
        [0.015877, 0.144988, -1.093241, -1.118753],
        [0.097637, 0.066442, 0.852372, 0.803728],
        [-0.032925, 0.021858, 0.766858, 0.745879],
        [-0.195263, -0.066812, 0.246482, 0.299957],
    ],
    dtype=np.float64,
)
