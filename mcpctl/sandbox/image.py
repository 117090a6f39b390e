"""The node image: a minbase Debian rootfs from mmdebstrap, imported into Podman.

Built locally (no registry is reachable) and tagged with a hash of its recipe, so it is
rebuilt only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import resources

from mcpctl.errors import McpError
from mcpctl.sandbox.engine import Podman

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What a freshly provisioned cloud VM offers Ansible: systemd, sshd, sudo, python3 (+apt bindings).
PACKAGES = (
    "ca-certificates",
    "dbus",
    "iproute2",
    "netbase",
    "openssh-server",
    "procps",
    "python3",
    "python3-apt",
    "sudo",
    "systemd",
    "systemd-sysv",
)
IMAGE_REPOSITORY = "localhost/mcp-node"
# Molecule scenarios name the image statically; this tag follows the newest recipe.
IMAGE_LATEST = f"{IMAGE_REPOSITORY}:latest"


def _customize_script() -> str:
    return resources.files("mcpctl.sandbox").joinpath("node-image.sh").read_text()


def image_tag() -> str:
    recipe = "\n".join([SUITE, *MIRRORS, *PACKAGES, _customize_script()])
    return f"{IMAGE_REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_image(podman: Podman) -> str:
    """Return the image tag, building the image first if this recipe was never built."""
    tag = image_tag()
    if podman.exists("image", tag):
        podman.run(["tag", tag, IMAGE_LATEST])
        return tag
    if shutil.which("mmdebstrap") is None:
        raise McpError("mmdebstrap is not installed: run `make system-deps`")
    print(f"building node image {tag} (once per recipe, about a minute)", file=sys.stderr)
    script = resources.files("mcpctl.sandbox").joinpath("node-image.sh")
    with resources.as_file(script) as script_path:
        build = subprocess.Popen(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f'--customize-hook=sh {script_path} "$1"',
                "--format=tar",
                SUITE,
                "-",
                *MIRRORS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        imported = podman.run(
            [
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                "-",
                tag,
            ],
            check=False,
            stdin=build.stdout,
        )
        build.stdout.close()
        build_errors = build.stderr.read().decode(errors="replace")
        if build.wait() != 0:
            raise McpError(f"mmdebstrap failed building the node image:\n{build_errors.strip()}")
    if imported.returncode != 0:
        raise McpError(f"podman import failed: {imported.stderr.strip()}")
    podman.run(["tag", tag, IMAGE_LATEST])
    _remove_stale_images(podman, keep=tag)
    return tag


def _remove_stale_images(podman: Podman, keep: str) -> None:
    listed = podman.run(["images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY])
    for tag in listed.stdout.split():
        if tag not in (keep, IMAGE_LATEST):
            podman.run(["rmi", tag], check=False)
