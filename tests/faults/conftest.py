"""One stream environment for every fault test of this package (set up once, ~30 s).

A local Ray (the session's), the batched face deployment, Milvus Lite behind the store
actor, the Hamilton gallery (Lin-Manuel Miranda, Alex Lacamoire) and a stream-processor
manager: the same environment as tests/pipelines/test_streams_e2e.py, package-scoped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facestream.audit import AuditLog
from facestream.imageio import load_image_file
from pipelines.manager import StreamProcessorManager
from tests.helpers import face
from tests.pipelines.test_streams_e2e import LIN, OPERATOR, stream_runtime

APP = "faults-e2e"


@pytest.fixture(scope="package")
def clip() -> Path:
    return face("face_recognition/examples/short_hamilton_clip.mp4")


@pytest.fixture(scope="package")
def fault_env(
    serve_http_port: int, tmp_path_factory: pytest.TempPathFactory, clip: Path
) -> Iterator[dict[str, Any]]:
    import ray

    from pipelines.gallery import enrol, ensure_collection
    from pipelines.runtime import delete_face_service, ensure_face_service
    from pipelines.store_actor import store_actor

    home = tmp_path_factory.mktemp("faults-home")
    runtime = stream_runtime(home, APP, clip.parent)
    face_handle = ensure_face_service(runtime.embedding, APP)
    store = store_actor(runtime.resolved_store_uri)
    ensure_collection(store, "hamilton", "dlib-resnet", fresh=True)
    counts = enrol(
        face_handle,
        store,
        "hamilton",
        [(p, load_image_file(clip.parent / f"{p}.png")) for p in (LIN, "alex-lacamoire")],
        audit=AuditLog(runtime.resolved_audit_path),
        actor=OPERATOR,
    )
    assert counts == {LIN: 1, "alex-lacamoire": 1}
    manager = StreamProcessorManager(runtime, face_handle, store)
    try:
        yield {"runtime": runtime, "face": face_handle, "store": store, "manager": manager, "home": home}
    finally:
        manager.shutdown(OPERATOR)
        ray.kill(store)
        delete_face_service(APP)


#: run last in this package, in this order: the soak measures memory once the replica is warm
#: (after the other stream tests), and the replica kill replaces that replica.
_LAST = ("tests/faults/test_soak.py", "tests/faults/test_compute_faults.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [i for prefix in _LAST for i in items if i.nodeid.startswith(prefix)]
    if not last:
        return
    rest = [i for i in items if i not in last]
    ours = [n for n, i in enumerate(rest) if i.nodeid.startswith("tests/faults/")]
    end = ours[-1] + 1 if ours else len(rest)
    items[:] = rest[:end] + last + rest[end:]
