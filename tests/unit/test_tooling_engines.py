"""The engine-matrix installer's pure part: the versions it records."""

from __future__ import annotations

from tests.tooling.engines import ENGINES, Packages, engine_env


def test_engine_env_records_upstream_versions_and_packages() -> None:
    text = engine_env(
        ENGINES[0],
        dockerd="Docker version 26.1.5+dfsg1, build 411e817",
        containerd="containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1",
        runc="runc version 1.1.15+ds1\ncommit: 1.1.15+ds1-2\nspec: 1.0.2-dev",
        wanted=Packages("26.1.5+dfsg1-9+deb13u1+b1", "1.7.24~ds1-6+deb13u1", "1.1.15+ds1-2"),
    )
    lines = text.splitlines()
    assert lines[0].startswith("# written by")
    assert lines[1:] == [
        "ENGINE=docker-26",
        "SUITE=trixie",
        "DOCKER_VERSION=26.1.5",
        "CONTAINERD_VERSION=1.7.24",
        "RUNC_VERSION=1.1.15+ds1",
        "DOCKER_PACKAGE=26.1.5+dfsg1-9+deb13u1+b1",
        "CONTAINERD_PACKAGE=1.7.24~ds1-6+deb13u1",
        "RUNC_PACKAGE=1.1.15+ds1-2",
    ]
