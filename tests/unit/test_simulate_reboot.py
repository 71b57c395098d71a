"""The reboot simulation's choices: which processes, mounts and names a reboot ends."""

from __future__ import annotations

from tests.tooling.simulate_reboot import (
    Process,
    engine_processes,
    matching,
    parse_stat,
    runtime_mounts,
    unescape_mount_path,
)


def test_stat_with_spaces_and_parentheses_in_the_name() -> None:
    process = parse_stat("4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 1 0")
    assert process == Process(pid=4242, ppid=17, comm="my (odd) name")


def test_engines_their_descendants_and_container_members_but_never_us() -> None:
    table = [
        Process(1, 0, "init"),
        Process(10, 1, "dockerd"),
        Process(11, 10, "containerd"),
        Process(12, 1, "containerd-shim-runc-v2"),
        Process(13, 12, "redis-server"),
        Process(14, 13, "redis-bgsave"),
        Process(20, 1, "bash"),  # the CI script
        Process(21, 20, "python3"),  # this tool
        Process(30, 1, "sleep"),  # an orphan left in a container cgroup
        Process(40, 1, "sshd"),
    ]
    chosen = engine_processes(table, in_container_cgroup=[30, 1], spare=[20, 21])
    assert chosen == {10, 11, 12, 13, 14, 30}


def test_an_engine_named_process_among_our_ancestors_is_spared() -> None:
    table = [Process(5, 1, "podman"), Process(6, 5, "python3")]
    assert engine_processes(table, in_container_cgroup=[], spare=[5, 6]) == set()


MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:5 / /dev/shm rw - tmpfs tmpfs rw
40 22 254:0 /var/lib/docker /var/lib/docker rw - ext4 /dev/vda rw
41 40 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
42 22 0:4 net:[4026532] /run/docker/netns/c8b5 rw - nsfs nsfs rw
43 22 254:0 /run/netns /run/netns rw - ext4 /dev/vda rw
44 43 0:4 net:[4026533] /run/netns/netns-1 rw - nsfs nsfs rw
45 22 0:60 / /var/lib/containers/storage/overlay-containers/x/userdata/shm rw - tmpfs shm rw
46 22 0:61 / /tmp/pcriu-docker-28-abc/data/overlay2/y/merged rw - overlay overlay rw
47 22 0:62 / /tmp/other/merged rw - overlay overlay rw
48 22 0:63 / /run/user/1000 rw - tmpfs tmpfs rw
49 22 0:64 / /run/systemd/inaccessible rw - tmpfs tmpfs rw
50 22 0:65 / /var/lib/dockerish rw - tmpfs tmpfs rw
51 22 0:66 / /run/docker/with\\040space rw - tmpfs tmpfs rw
"""


def test_runtime_mounts_deepest_first_and_nothing_else() -> None:
    points = runtime_mounts(MOUNTINFO)
    assert set(points) == {
        "/var/lib/docker",
        "/var/lib/docker/overlay2/abc/merged",
        "/run/docker/netns/c8b5",
        "/run/netns",
        "/run/netns/netns-1",
        "/var/lib/containers/storage/overlay-containers/x/userdata/shm",
        "/tmp/pcriu-docker-28-abc/data/overlay2/y/merged",
        "/run/user/1000",
        "/run/docker/with space",
    }
    assert points.index("/run/netns/netns-1") < points.index("/run/netns")
    assert points.index("/var/lib/docker/overlay2/abc/merged") < points.index("/var/lib/docker")


def test_octal_escapes_in_mount_paths() -> None:
    assert unescape_mount_path(r"/a\040b\011c\134d") == "/a b\tc\\d"


def test_link_names() -> None:
    links = ["lo", "eth0", "docker0", "br-1a2b", "cni-podman0", "veth12ab", "pcriu28-1f", "ifb0"]
    patterns = ("docker0", "br-*", "cni-podman*", "podman*", "pcriu*", "veth*")
    assert matching(links, patterns) == [
        "br-1a2b",
        "cni-podman0",
        "docker0",
        "pcriu28-1f",
        "veth12ab",
    ]
