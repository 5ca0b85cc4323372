"""Step 4 of the base image (:mod:`runbook.stack.baseimage`): a minimal Debian made with
``debootstrap`` (python3 + python3-coverage, no apt lists), imported as an image labelled
with where it came from and its recipe; the Debian mirror this machine's apt uses."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

from runbook.errors import TransientError
from runbook.settings import StackSettings
from runbook.stack.images import explain, require_local, split_reference
from runbook.stack.packages import ensure_programs, find_program, run_logged
from runbook.stack.records import ProgressCallback

DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, like python:3.11-slim
# python3-coverage: services measure their own test coverage (the image has no pip).
DEBOOTSTRAP_PACKAGES = ("python3", "python3-coverage")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCE_LABEL = "org.runbook.base-image.source"
RECIPE_LABEL = "org.runbook.base-image.recipe"
# What a built image contains; an image of ours built to another recipe is rebuilt. Bump the
# revision when the build changes in a way the package list does not show.
RECIPE = f"{DEBIAN_SUITE} {' '.join(DEBOOTSTRAP_PACKAGES)} no-apt-lists"
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

DEBOOTSTRAP_DEADLINE_S = 900.0
TAR_EXIT_DEADLINE_S = 60.0
UMOUNT_DEADLINE_S = 30.0
TAR_CHUNK_BYTES = 1 << 20


def build_with_debootstrap(
    settings: StackSettings, client: docker.DockerClient, report: ProgressCallback
) -> tuple[str, str]:
    """Build the base image from a minimal Debian; return its id and where it came from."""
    ensure_programs(["debootstrap"], settings, report)
    mirror = debian_mirror()
    built_from = f"built with debootstrap {DEBIAN_SUITE} from {mirror}"
    parent = settings.state_dir / "base-image"
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="build-", dir=parent))
    rootfs = workdir / "rootfs"
    try:
        report(f"building {settings.base_image}: debootstrap {DEBIAN_SUITE} (about a minute)…")
        debootstrap = find_program("debootstrap") or "debootstrap"
        _debootstrap(debootstrap, rootfs, mirror, settings.path("logs", "debootstrap.log"))
        _add_python_alias(rootfs)
        _drop_package_caches(rootfs)
        report(f"importing {settings.base_image}…")
        image_id = _import_rootfs(
            client, rootfs, settings.base_image, built_from, settings.path("logs", "tar.log")
        )
    finally:
        _remove_build_directory(workdir, report)
    return image_id, built_from


def _debootstrap(program: str, rootfs: Path, mirror: str, log_path: Path) -> None:
    command = [
        program,
        "--variant=minbase",
        f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
        DEBIAN_SUITE,
        str(rootfs),
        mirror,
    ]
    code = run_logged(command, log_path, DEBOOTSTRAP_DEADLINE_S)
    if code != 0:
        raise TransientError(
            f"debootstrap {DEBIAN_SUITE} from {mirror} failed with code {code}; "
            f"log: {log_path}"
        )


def _add_python_alias(rootfs: Path) -> None:
    """``python`` as in the official images, for Dockerfiles and scripts that call it."""
    alias = rootfs / "usr" / "local" / "bin" / "python"
    alias.parent.mkdir(parents=True, exist_ok=True)
    if not alias.is_symlink():
        alias.symlink_to("/usr/bin/python3")


def _drop_package_caches(rootfs: Path) -> None:
    """Downloaded .deb files and package lists only make the image larger (as in the
    official images: ~50 MB of apt lists, which every image scan would read for secrets)."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin",
                    "var/lib/apt/lists/*_Packages", "var/lib/apt/lists/*Release*"):
        for path in rootfs.glob(pattern):
            path.unlink(missing_ok=True)


def _import_rootfs(
    client: docker.DockerClient, rootfs: Path, name: str, built_from: str, log_path: Path
) -> str:
    repository, tag = split_reference(name)
    changes = [*IMAGE_CHANGES, f"LABEL {SOURCE_LABEL}={json.dumps(built_from)}",
               f"LABEL {RECIPE_LABEL}={json.dumps(RECIPE)}"]
    with open(log_path, "ab") as log:
        # --one-file-system: never archive something still mounted inside the root (/proc).
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--one-file-system", "-C", str(rootfs), "-c", "."],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        )
        try:
            assert tar.stdout is not None
            client.api.import_image(
                src=_chunks(tar.stdout), repository=repository, tag=tag, changes=changes,
                stream_src=True,
            )
        except DockerException as exc:
            raise TransientError(f"docker import of {rootfs}: {explain(exc)}") from exc
        finally:
            _close_tar(tar)
    if tar.returncode != 0:
        raise TransientError(f"tar of {rootfs} failed with code {tar.returncode}; log: {log_path}")
    return require_local(client, name)


def _chunks(stream: Any) -> Iterator[bytes]:
    while block := stream.read(TAR_CHUNK_BYTES):
        yield block


def _close_tar(tar: subprocess.Popen[bytes]) -> None:
    if tar.stdout is not None:
        tar.stdout.close()
    try:
        tar.wait(timeout=TAR_EXIT_DEADLINE_S)
    except subprocess.TimeoutExpired:
        tar.kill()
        tar.wait(timeout=TAR_EXIT_DEADLINE_S)


def _remove_build_directory(workdir: Path, report: ProgressCallback) -> None:
    # debootstrap mounts /proc and /sys inside the root while it works; if it was interrupted
    # they may still be mounted, and deleting through a mount would reach the host's files.
    for mount_point in _mount_points_under(workdir):
        subprocess.run(
            ["umount", "--lazy", str(mount_point)], stdin=subprocess.DEVNULL,
            capture_output=True, timeout=UMOUNT_DEADLINE_S, check=False,
        )
    if _mount_points_under(workdir):
        report(f"left {workdir} in place: something is still mounted inside it")
        return
    try:
        shutil.rmtree(workdir)
    except OSError as exc:
        report(f"could not remove {workdir}: {exc}")


def _mount_points_under(directory: Path) -> list[Path]:
    """Mount points inside ``directory``, deepest first."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    resolved = directory.resolve()
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = Path(_unescape_mount_field(fields[1]))
        if point == resolved or resolved in point.parents:
            points.append(point)
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _unescape_mount_field(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


# --------------------------------------------------------------------------------------------
# The machine's Debian mirror
# --------------------------------------------------------------------------------------------


def debian_mirror(apt_directory: Path = Path("/etc/apt"), suite: str = DEBIAN_SUITE) -> str:
    """The Debian mirror this machine's apt uses for ``suite``, or the public default.

    A machine without internet reaches Debian only through the mirror its apt is set up with.
    """
    for path in _apt_source_files(apt_directory):
        try:
            text = path.read_text()
        except OSError:
            continue
        parse = parse_deb822_sources if path.suffix == ".sources" else parse_one_line_sources
        mirrors = parse(text, suite)
        if mirrors:
            return mirrors[0]
    return DEFAULT_MIRROR


def _apt_source_files(apt_directory: Path) -> list[Path]:
    parts = apt_directory / "sources.list.d"
    listed = sorted(parts.glob("*.list")) + sorted(parts.glob("*.sources"))
    return [apt_directory / "sources.list", *listed]


def parse_one_line_sources(text: str, suite: str) -> list[str]:
    """HTTP(S) URIs of ``deb`` lines for exactly ``suite`` (not ``suite-security``)."""
    mirrors = []
    for line in text.splitlines():
        words = _strip_options(line.split("#", 1)[0].split())
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite and _is_http(words[1]):
            mirrors.append(words[1].rstrip("/"))
    return mirrors


def _strip_options(words: list[str]) -> list[str]:
    """Drop the ``[arch=amd64 signed-by=...]`` options of a one-line source entry."""
    if len(words) < 2 or not words[1].startswith("["):
        return words
    for index, word in enumerate(words[1:], start=1):
        if word.endswith("]"):
            return [words[0], *words[index + 1 :]]
    return words


def parse_deb822_sources(text: str, suite: str) -> list[str]:
    """HTTP(S) URIs of enabled deb822 (``.sources``) stanzas that list exactly ``suite``."""
    mirrors = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        if suite not in stanza.get("suites", "").split():
            continue
        mirrors += [uri.rstrip("/") for uri in stanza.get("uris", "").split() if _is_http(uri)]
    return mirrors


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last_key = {}, None
        elif line[0] in " \t" and last_key is not None:  # continuation of a multi-line field
            current[last_key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            last_key = key.strip().lower()
            current[last_key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))
