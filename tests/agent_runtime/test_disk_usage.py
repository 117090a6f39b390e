"""Disk use as `df` computes it, on a real ext4 with reserved blocks (a loop-mounted image)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.health import disk_percent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mkfs.ext4"), reason="needs root and mkfs.ext4"
)


@pytest.fixture
def ext4_with_reserved_blocks(tmp_path: Path) -> Iterator[Path]:
    image, mountpoint = tmp_path / "disk.img", tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "5", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def _df_percent(path: Path) -> int:
    output = subprocess.run(
        ["df", "--output=pcent", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return int(output.splitlines()[1].strip().rstrip("%"))


def test_a_disk_full_for_users_reads_100_percent_as_df_shows(ext4_with_reserved_blocks):
    mountpoint = ext4_with_reserved_blocks
    stats = os.statvfs(mountpoint)
    # Everything an unprivileged user may still write: root could write into the rest.
    available = stats.f_bavail * stats.f_frsize
    subprocess.run(["fallocate", "-l", str(available), str(mountpoint / "fill")], check=True)

    stats = os.statvfs(mountpoint)
    used_of_total = 100.0 * (stats.f_blocks - stats.f_bfree) / stats.f_blocks
    assert used_of_total < 97  # the old reading: a full disk never reached 95 % + margin
    assert disk_percent(str(mountpoint)) > 99.5
    assert abs(disk_percent(str(mountpoint)) - _df_percent(mountpoint)) <= 1


def test_a_fresh_disk_reads_as_df_shows(ext4_with_reserved_blocks):
    reading = disk_percent(str(ext4_with_reserved_blocks))
    assert reading < 5
    # df rounds up to a whole percent.
    assert (
        _df_percent(ext4_with_reserved_blocks) - 1
        <= reading
        <= _df_percent(ext4_with_reserved_blocks)
    )
