"""The botocore output-shape validator finds what it must (so a passing walk means something)."""

from __future__ import annotations

from tests.api.botocore_shapes import problems

GOOD_FACE = {
    "FaceId": "0b6e2a4c-2f7e-4c1e-9a3e-6e2b0f9d1c2a",
    "ImageId": "1c4e8a3b-5d2f-5a6b-8c9d-0e1f2a3b4c5d",
    "BoundingBox": {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1},
    "Confidence": 99.9,
    "IndexFacesModelVersion": "1.0",
}


def test_a_rekognition_shaped_answer_passes() -> None:
    assert problems("ListFaces", {"Faces": [GOOD_FACE], "FaceModelVersion": "1.0"}) == []
    assert problems("DescribeCollection", {"FaceCount": 1, "CreationTimestamp": 1.7e9}) == []


def test_departures_are_named() -> None:
    bad = {
        "Faces": [
            {
                **GOOD_FACE,
                "ImageId": "a" * 64,  # a sha256, not a UUID
                "IndexFacesModelVersion": "dlib-resnet",  # not numeric
                "Confidence": 120.0,  # over the Percent maximum
                "Extra": 1,  # not a member
            }
        ],
        "FaceModelVersion": 7,  # not a string
        "NextToken": None,  # null instead of absent
    }
    found = "\n".join(problems("ListFaces", bad))
    for needle in (
        "Faces[0].ImageId",
        "Faces[0].IndexFacesModelVersion",
        "Faces[0].Confidence: 120.0 is outside",
        "Faces[0].Extra: not a member of Face",
        "FaceModelVersion: expected a string",
        "NextToken: null",
    ):
        assert needle in found, found
    assert "not a member of CompareFacesResponse" in "\n".join(
        problems("CompareFaces", {"FaceMatches": [], "FaceModelVersion": "1.0"})
    )
    assert "CreationTimestamp: expected epoch seconds" in "\n".join(
        problems("DescribeCollection", {"CreationTimestamp": "yesterday"})
    )
