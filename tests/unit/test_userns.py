"""User namespaces: the declaration, the summary's words, and checkpoint archives CRIU can
read inside a namespace (pure logic; the real restores are in tests/integration)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_criu import warm_container
from pytest_criu.engine import criu_log, podman_archive, userns
from pytest_criu.engine.doctor.rules import check_user_namespaces, subordinate_range
from pytest_criu.engine.errors import CheckpointError, HostLimitError, SpecError
from pytest_criu.engine.spec import build_spec
from pytest_criu.fixtures import declaration_of
from pytest_criu.setup.plan import Plan
from pytest_criu.setup.podman import USERADD, ensure_subordinate_ids
from pytest_criu.setup.system import Completed

ROOT = userns.NamespaceRoot(2147483647, 2147483640)


class TestDeclaration:
    def test_auto_and_host_are_accepted(self) -> None:
        assert build_spec(image="x", userns="auto").userns == "auto"
        assert build_spec(image="x", userns="host").userns == "host"
        assert build_spec(image="x").userns is None

    @pytest.mark.parametrize("value", ["keep-id", "private", "", 1, True])
    def test_other_values_are_refused_with_the_choices(self, value: object) -> None:
        with pytest.raises(SpecError, match=r"userns: .* is not one of 'auto', 'host'"):
            build_spec(image="x", userns=value)

    def test_the_fingerprint_changes_only_when_set(self) -> None:
        plain = build_spec(image="x")
        assert plain.fingerprint() != build_spec(image="x", userns="auto").fingerprint()
        assert build_spec(image="x", userns="auto").fingerprint() != (
            build_spec(image="x", userns="host").fingerprint()
        )

    def test_warm_container_passes_it_on(self) -> None:
        fixture = warm_container("x", userns="auto")
        declaration = declaration_of(getattr(fixture, "__wrapped__", fixture))
        assert declaration is not None
        assert declaration.spec.userns == "auto"


class TestNamespaceRoot:
    def test_from_podman_inspect(self) -> None:
        mappings = {"UidMap": ["0:2147483647:1024"], "GidMap": ["0:2147483640:1024"]}
        assert userns.namespace_root(mappings) == ROOT

    @pytest.mark.parametrize(
        "mappings",
        [None, {}, {"UidMap": [], "GidMap": []}, {"UidMap": ["1:5:2"], "GidMap": ["0:5:2"]}],
    )
    def test_no_namespace(self, mappings: dict[str, list[str]] | None) -> None:
        assert userns.namespace_root(mappings) is None

    def test_describe(self) -> None:
        assert userns.describe([(0, 0, 4294967295)]) is None
        assert userns.describe(None) is None
        assert userns.describe([(0, 300000, 65536)]) == (
            "user namespace (root is host uid 300000, 65536 ids)"
        )


def _archive(members: dict[str, bytes | None]) -> bytes:
    """A Podman-like export: host root's files, the images directory 0600 as Podman makes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o600
                archive.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _rewritten(members: dict[str, bytes | None]) -> dict[str, tarfile.TarInfo | bytes]:
    target = io.BytesIO()
    podman_archive.rewrite(
        io.BytesIO(_archive(members)), target, root=ROOT, directories=[], scratch=Path("/tmp")
    )
    result: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(target.getvalue())) as archive:
        for member in archive:
            result[member.name] = member
            extracted = archive.extractfile(member)
            if extracted is not None:
                result[member.name + "#content"] = extracted.read()
    return result


class TestArchive:
    CONFIG = json.dumps(
        {"id": "abc", "idMappingsOptions": {"AutoUserNs": True, "UIDMap": [{"host_id": 5}]}}
    ).encode()

    def members(self) -> dict[str, bytes | None]:
        return {
            "config.dump": self.CONFIG,
            "rootfs-diff.tar": b"files",
            "checkpoint": None,
            "checkpoint/pages-1.img": b"secret memory",
            "checkpoint/timens-0.img": b"offsets",
        }

    def test_images_belong_to_the_namespace_root_and_stay_private(self) -> None:
        out = _rewritten(self.members())
        pages = out["checkpoint/pages-1.img"]
        assert isinstance(pages, tarfile.TarInfo)
        assert (pages.uid, pages.gid, pages.mode) == (ROOT.uid, ROOT.gid, 0o600)
        assert out["checkpoint/pages-1.img#content"] == b"secret memory"

    def test_the_directory_and_early_images_let_host_root_group_in(self) -> None:
        out = _rewritten(self.members())
        directory, timens = out["checkpoint"], out["checkpoint/timens-0.img"]
        assert isinstance(directory, tarfile.TarInfo)
        assert isinstance(timens, tarfile.TarInfo)
        assert (directory.uid, directory.gid, directory.mode) == (ROOT.uid, 0, 0o750)
        assert (timens.uid, timens.gid, timens.mode) == (ROOT.uid, 0, 0o640)

    def test_other_files_are_left_as_podman_wrote_them(self) -> None:
        out = _rewritten(self.members())
        rootfs = out["rootfs-diff.tar"]
        assert isinstance(rootfs, tarfile.TarInfo)
        assert (rootfs.uid, rootfs.gid, rootfs.mode) == (0, 0, 0o644)

    def test_an_automatic_mapping_is_pinned(self) -> None:
        config = json.loads(_rewritten(self.members())["config.dump#content"])  # type: ignore[arg-type]
        assert config["idMappingsOptions"] == {"AutoUserNs": False, "UIDMap": [{"host_id": 5}]}
        assert config["id"] == "abc"

    def test_a_fixed_mapping_is_left_alone(self) -> None:
        fixed = json.dumps({"idMappingsOptions": {"AutoUserNs": False}}).encode()
        assert userns.pinned_config(fixed) == fixed


RLIMIT_LOG = (
    "(00.05) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
    "Operation not permitted\n"
    "(00.07) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted\n"
)


class TestExplanations:
    def test_a_non_root_service_without_the_capability_is_a_host_limit(self) -> None:
        error = criu_log.checkpoint_error("criu failed", RLIMIT_LOG, engine="podman")
        assert isinstance(error, HostLimitError)
        assert "userns='auto'" in error.reason
        assert "CAP_SYS_RESOURCE" in error.reason
        assert "Can't get rlimit 0" in str(error)

    def test_on_docker_the_fix_names_podman_and_a_capable_host(self) -> None:
        error = criu_log.checkpoint_error("criu failed", RLIMIT_LOG, engine="docker")
        assert isinstance(error, HostLimitError)
        assert "--criu-engine=podman --criu-userns=auto" in error.reason
        assert "GitHub's hosted runners" in error.reason

    def test_other_dump_failures_are_plain_checkpoint_errors(self) -> None:
        log = "(00.1) Error (criu/sk-inet.c:1): Connected TCP socket, consider tcp-established\n"
        error = criu_log.checkpoint_error("criu failed", log, engine="docker")
        assert type(error) is CheckpointError

    def test_unreadable_images_inside_a_namespace_are_not_blamed_on_a_tty(self) -> None:
        log = "(00.04) 1: Error (criu/image.c:635): Unable to open tty-info.img: Permission denied"
        lines = criu_log.explain(log, "docker")
        assert len(lines) == 1
        assert "user namespace" in lines[0]
        assert "containerd" in lines[0]


class TestDoctor:
    NO_RESOURCE = 0x1FFFEFFFFFF  # this machine's root: every capability but CAP_SYS_RESOURCE
    FULL = 0x1FFFFFFFFFF
    SUBIDS = "someone:100000:65536\ncontainers:2147483647:2147483648\n"

    def test_docker_without_the_capability_names_both_fixes(self) -> None:
        check = check_user_namespaces("docker", self.NO_RESOURCE)
        assert check.status == "warn"
        assert "CAP_SYS_RESOURCE" in check.detail
        assert "--criu-engine=podman --criu-userns=auto" in check.fix

    def test_a_capable_host_dumps_them(self) -> None:
        for engine in ("docker", "podman"):
            assert check_user_namespaces(engine, self.FULL).status == "ok"

    def test_podman_with_subordinate_ids_dumps_them_in_a_namespace(self) -> None:
        check = check_user_namespaces(
            "podman", self.NO_RESOURCE, subuid=self.SUBIDS, subgid=self.SUBIDS
        )
        assert check.status == "ok"
        assert "userns='auto'" in check.detail

    def test_podman_5_restores_no_namespaced_container(self) -> None:
        check = check_user_namespaces(
            "podman",
            self.NO_RESOURCE,
            subuid=self.SUBIDS,
            subgid=self.SUBIDS,
            engine_version="5.8.6",
        )
        assert check.status == "warn"
        assert "Podman 5.8.6 restores no container in a user namespace" in check.detail
        assert "Podman 4.x" in check.fix

    def test_podman_5_needs_the_user_itself(self) -> None:
        check = check_user_namespaces(
            "podman", self.NO_RESOURCE, subuid=self.SUBIDS, subgid=self.SUBIDS, passwd="root:x:0:0"
        )
        assert check.status == "warn"
        assert "not enough unused IDs" in check.detail
        assert "useradd --system" in check.fix

    def test_podman_without_subordinate_ids_says_what_to_add(self) -> None:
        check = check_user_namespaces("podman", self.NO_RESOURCE, subuid="", subgid=None)
        assert check.status == "warn"
        assert "containers:2147483647:2147483648" in check.fix

    def test_a_remapped_docker_daemon_is_named_whatever_the_capabilities(self) -> None:
        check = check_user_namespaces("docker", self.FULL, docker_remapped=True)
        assert check.status == "warn"
        assert "userns-remap" in check.detail
        assert "userns='host'" in check.fix

    def test_subordinate_range(self) -> None:
        assert subordinate_range(self.SUBIDS) == (2147483647, 2147483648)
        assert subordinate_range("containers:x:1\n") is None
        assert subordinate_range(None) is None


class Useradd:
    """Records the commands; "creates" the user in ``passwd``."""

    def __init__(self, passwd: Path) -> None:
        self.passwd = passwd
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], **_: object) -> Completed:
        self.calls.append(tuple(argv))
        with self.passwd.open("a") as file:
            file.write(f"{argv[-1]}:x:999:999::/nonexistent:/usr/sbin/nologin\n")
        return Completed(tuple(argv), 0)


class TestSetup:
    def test_adds_a_range_once_and_keeps_what_is_there(self, tmp_path: Path) -> None:
        (tmp_path / "subuid").write_text("alice:100000:65536")  # no final newline
        (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        run = Useradd(tmp_path / "passwd")
        plan = Plan(check=False, say=lambda _: None)
        assert ensure_subordinate_ids(plan, run, tmp_path)
        assert run.calls == [(*USERADD, "containers")]
        assert (tmp_path / "subuid").read_text() == (
            "alice:100000:65536\ncontainers:2147483647:2147483648\n"
        )
        assert (tmp_path / "subgid").read_text() == "containers:2147483647:2147483648\n"
        again = Plan(check=False, say=lambda _: None)
        assert not ensure_subordinate_ids(again, run, tmp_path)
        assert again.changes == []
        assert len(run.calls) == 1

    def test_check_mode_changes_nothing(self, tmp_path: Path) -> None:
        run = Useradd(tmp_path / "passwd")
        plan = Plan(check=True, say=lambda _: None)
        assert ensure_subordinate_ids(plan, run, tmp_path)
        assert not (tmp_path / "subuid").exists()
        assert run.calls == []
        assert len(plan.changes) == 3


class TestChangedDirectories:
    def _inner(self, entries: dict[str, bytes | None]) -> bytes:
        return _archive(entries)

    def test_a_directory_that_only_changed_mode_is_added_last(self, tmp_path: Path) -> None:
        data = tmp_path / "var/lib/postgresql/data"
        data.mkdir(parents=True)
        (data / "PG_VERSION").write_text("15")
        data.chmod(0o700)
        changes = [
            {"Path": "/var/lib/postgresql/data", "Kind": 0},
            {"Path": "/var/lib/postgresql/data/PG_VERSION", "Kind": 1},
            {"Path": "/gone", "Kind": 0},
            {"Path": "/var/lib/postgresql/data/PG_VERSION", "Kind": 0},
        ]
        directories = podman_archive.changed_directories(changes, tmp_path)
        assert [(d.path, d.mode) for d in directories] == [("var/lib/postgresql/data", 0o700)]
        inner = _archive({"var/lib/postgresql/data/PG_VERSION": b"15"})
        outer = _archive({"config.dump": b"{}", "rootfs-diff.tar": inner})
        target = io.BytesIO()
        podman_archive.rewrite(
            io.BytesIO(outer), target, root=None, directories=directories, scratch=tmp_path
        )
        with tarfile.open(fileobj=io.BytesIO(target.getvalue())) as archive:
            extracted = archive.extractfile("rootfs-diff.tar")
            assert extracted is not None
            with tarfile.open(fileobj=io.BytesIO(extracted.read())) as diff:
                members = diff.getmembers()
        assert [m.name for m in members] == [
            "var/lib/postgresql/data/PG_VERSION",
            "var/lib/postgresql/data",
        ]
        assert members[-1].isdir()
        assert members[-1].mode == 0o700

    def test_mount_points_are_not_part_of_the_layer(self, tmp_path: Path) -> None:
        changes = [{"Path": "/proc", "Kind": 0}]
        assert podman_archive.changed_directories(changes, Path("/")) == []
