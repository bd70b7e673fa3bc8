"""Build the Docker images the test suite runs, locally (no registry can be reached).

`hotswap-test/base:latest` is a rootfs imported with `docker import`: Debian's
static busybox (sh, wget for the healthcheck) plus a copy of the host's CPython
(the running interpreter, its shared libraries, the dynamic loader and a trimmed
stdlib), all at their host paths so the interpreter finds its prefix unchanged.
Every app image is a classic-builder `docker build` FROM that base which adds
images/app/server.py, ENV, labels and the healthcheck.

Each image carries a label with the hash of its inputs; an image whose label
matches is not rebuilt, so a repeated test session costs a few inspect calls.
A file lock serialises builds between test sessions running at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

logger = logging.getLogger(__name__)

APP_DIR = Path(__file__).parent / "images" / "app"
APP_PORT = 8000
HASH_LABEL = "hotswap-test.hash"
BUILDER_VERSION = "1"  # bump to force a rebuild when this module's output changes
LOCK_PATH = Path(tempfile.gettempdir()) / "hotswap-test-images.lock"

BASE_REPO, BASE_TAG_NAME = "hotswap-test/base", "latest"
BASE_TAG = f"{BASE_REPO}:{BASE_TAG_NAME}"

# Top-level stdlib entries the app never needs (keeps the base image small).
STDLIB_SKIP = {
    "test",
    "site-packages",
    "dist-packages",
    "idlelib",
    "tkinter",
    "ensurepip",
    "turtledemo",
    "lib2to3",
    "pydoc_data",
    "unittest",
    "distutils",
}
# Extension modules are copied only if every shared library they need is one of these.
ALLOWED_SONAMES = (
    "libc.",
    "libm.",
    "libz.",
    "libcrypto.",
    "libssl.",
    "libffi.",
    "libexpat.",
    "libbz2.",
    "liblzma.",
    "libuuid.",
    "libpthread.",
    "libdl.",
    "libutil.",
    "librt.",
    "libcrypt.",
)
DYNLOAD_SKIP_PREFIXES = ("_test", "_xx", "xx", "_ctypes_test", "_tkinter", "_curses", "readline")

HEALTHCHECK_OPTIONS = "--interval=1s --timeout=2s --retries=3"
HEALTHCHECK_CMD = "CMD wget -q -O /dev/null http://127.0.0.1:${PORT:-8000}/up || exit 1"


@dataclass(frozen=True)
class AppImage:
    """One variant of the test app image."""

    tag: str
    env: Mapping[str, str] = field(default_factory=dict)
    healthcheck: bool = True
    port_label: bool = True  # LABEL hotswap.port and EXPOSE
    start_period: str = ""  # HEALTHCHECK --start-period: failures before it don't count


# The tags are a contract the other Docker tests code against: keep them.
TEST_IMAGES: dict[str, AppImage] = {
    "app_v1": AppImage("hotswap-test/app:v1", {"VERSION": "v1"}),
    "app_v2": AppImage("hotswap-test/app:v2", {"VERSION": "v2"}),
    "nohealth": AppImage("hotswap-test/nohealth:latest", healthcheck=False),
    # Without a start period the probes at 1, 2 and 3 s would fail and Docker would report
    # it unhealthy before it listens; with it, the first passing probe makes it healthy.
    "slowstart": AppImage(
        "hotswap-test/slowstart:latest", {"START_DELAY": "3"}, start_period="30s"
    ),
    "unhealthy": AppImage("hotswap-test/unhealthy:latest", {"UNHEALTHY": "1"}),
    "crash": AppImage("hotswap-test/crash:latest", {"CRASH": "1"}),
    "noport": AppImage("hotswap-test/noport:latest", port_label=False),
}


# -- base image ------------------------------------------------------------------------


def shared_libs(path: str) -> list[str]:
    """Absolute paths of the shared libraries (and loader) `path` needs; [] if static."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
    libs = []
    for line in out.splitlines():
        for token in line.split():
            if token.startswith("/"):
                libs.append(token)
    return libs


def _busybox() -> str:
    found = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(found):
        raise RuntimeError("busybox not found: install busybox-static (see scripts/ensure-docker)")
    return os.path.realpath(found)


def _stdlib_dirs() -> tuple[str, str | None]:
    stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
    spec = importlib.util.find_spec("_asyncio")
    dynload = None
    if spec is not None and spec.origin and spec.origin.startswith("/"):
        dynload = os.path.dirname(os.path.realpath(spec.origin))
    return stdlib, dynload


def _stdlib_files(stdlib: str, dynload: str | None) -> Iterator[str]:
    """The trimmed stdlib: sources, plain (non-optimised) .pyc for fast start-up."""
    tag = sys.implementation.cache_tag  # e.g. cpython-311
    for root, dirs, files in os.walk(stdlib):
        rel = os.path.relpath(root, stdlib)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in STDLIB_SKIP and not d.startswith("config-")]
        if dynload is not None and os.path.realpath(root) == dynload:
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            if root.endswith("__pycache__"):
                if name.endswith(f".{tag}.pyc"):
                    yield os.path.join(root, name)
            elif not name.endswith((".pyc", ".pyo", ".exe")):
                yield os.path.join(root, name)


def _dynload_files(dynload: str) -> Iterator[tuple[str, list[str]]]:
    for name in sorted(os.listdir(dynload)):
        if not name.endswith(".so") or name.startswith(DYNLOAD_SKIP_PREFIXES):
            continue
        path = os.path.join(dynload, name)
        libs = shared_libs(path)
        needed = [lib for lib in libs if "ld-linux" not in os.path.basename(lib)]
        if all(os.path.basename(lib).startswith(ALLOWED_SONAMES) for lib in needed):
            yield path, libs


def _base_inputs() -> tuple[str, str, str, str | None]:
    python = os.path.realpath(sys.executable)
    stdlib, dynload = _stdlib_dirs()
    return _busybox(), python, stdlib, dynload


def base_hash() -> str:
    """Hash of what goes into the base image (cheap: names, sizes and mtimes)."""
    busybox, python, stdlib, dynload = _base_inputs()
    h = hashlib.sha256(f"{BUILDER_VERSION}\n{sys.version}\n".encode())
    # .pyc files are left out: Python rewrites them whenever it likes, and a stale or
    # missing one in the image only costs a compile at start-up.
    files = (p for p in _stdlib_files(stdlib, dynload) if not p.endswith(".pyc"))
    paths = [busybox, python, *files]
    if dynload is not None:
        paths += [os.path.join(dynload, n) for n in sorted(os.listdir(dynload))]
    for path in paths:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class _RootfsTar:
    """A tar of a root filesystem; files keep their host path (symlinks dereferenced)."""

    def __init__(self, fileobj: Any) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="w")
        self.seen: set[str] = set()

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        if not path or path in self.seen:
            return
        self.dir(os.path.dirname(path))
        info = tarfile.TarInfo(path)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)
        self.seen.add(path)

    def file(self, host_path: str, dest: str | None = None) -> None:
        dest = (dest or host_path).strip("/")
        if dest in self.seen:
            return
        self.dir(os.path.dirname(dest))
        info = self.tar.gettarinfo(os.path.realpath(host_path), arcname=dest)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        with open(host_path, "rb") as f:
            self.tar.addfile(info, f)
        self.seen.add(dest)

    def symlink(self, dest: str, target: str) -> None:
        dest = dest.strip("/")
        if dest in self.seen:
            return
        self.dir(os.path.dirname(dest))
        info = tarfile.TarInfo(dest)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tar.addfile(info)
        self.seen.add(dest)

    def text(self, dest: str, content: str, mode: int = 0o644) -> None:
        dest = dest.strip("/")
        self.dir(os.path.dirname(dest))
        data = content.encode()
        info = tarfile.TarInfo(dest)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))
        self.seen.add(dest)

    def close(self) -> None:
        self.tar.close()


def write_base_rootfs(fileobj: Any) -> list[str]:
    """Write the base rootfs tar to `fileobj`; return the library dirs it holds."""
    busybox, python, stdlib, dynload = _base_inputs()
    root = _RootfsTar(fileobj)
    for d in ("bin", "dev", "etc", "proc", "sys", "root", "usr/bin", "usr/local/bin", "app"):
        root.dir(d)
    root.dir("tmp", 0o1777)
    root.text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    root.text("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    libs: set[str] = set()
    root.file(busybox, "/bin/busybox")
    libs.update(shared_libs(busybox))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            root.symlink(f"/bin/{applet}", "busybox")
    root.symlink("/usr/bin/env", "/bin/busybox")

    root.file(python)
    libs.update(shared_libs(python))
    for link in ("/usr/local/bin/python3", "/usr/local/bin/python"):
        root.symlink(link, python)
    for path in _stdlib_files(stdlib, dynload):
        root.file(path)
    if dynload is not None:
        root.dir(dynload)
        for path, needed in _dynload_files(dynload):
            root.file(path)
            libs.update(needed)
    for lib in sorted(libs):
        root.file(lib)
    root.close()
    return sorted({os.path.dirname(lib) for lib in libs if "ld-linux" not in lib})


def ensure_base(client: docker.DockerClient) -> str:
    """Import hotswap-test/base:latest unless an image with the same input hash exists."""
    digest = base_hash()
    if _label_of(client, BASE_TAG) == digest:
        return digest
    logger.info("building base image tag=%s hash=%s", BASE_TAG, digest)
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        lib_dirs = write_base_rootfs(tmp)
        tmp.flush()
        changes = [
            f"LABEL {HASH_LABEL}={digest}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV LD_LIBRARY_PATH={':'.join(lib_dirs)}",
            "ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1",
            'CMD ["/bin/sh"]',
        ]
        client.api.import_image_from_file(
            tmp.name, repository=BASE_REPO, tag=BASE_TAG_NAME, changes=changes
        )
    if _label_of(client, BASE_TAG) != digest:
        raise RuntimeError(f"docker import of {BASE_TAG} did not produce the expected image")
    return digest


# -- app images ------------------------------------------------------------------------


def dockerfile(image: AppImage) -> str:
    env = {"PORT": str(APP_PORT), "VERSION": "v1", **image.env}
    lines = [
        f"FROM {BASE_TAG}",
        "COPY server.py /app/server.py",
        "ENV " + " ".join(f"{k}={v}" for k, v in env.items()),
    ]
    if image.port_label:
        lines += [f"LABEL hotswap.port={APP_PORT}", f"EXPOSE {APP_PORT}"]
    if image.healthcheck:
        options = HEALTHCHECK_OPTIONS
        if image.start_period:
            options += f" --start-period={image.start_period}"
        lines.append(f"HEALTHCHECK {options} {HEALTHCHECK_CMD}")
    lines.append('CMD ["python3", "/app/server.py"]')
    return "\n".join(lines) + "\n"


def build_app_image(client: docker.DockerClient, image: AppImage, base_digest: str) -> bool:
    """Build one app image unless it is up to date; return whether it was built."""
    text = dockerfile(image)
    server = (APP_DIR / "server.py").read_bytes()
    digest = hashlib.sha256(f"{BUILDER_VERSION}\n{base_digest}\n{text}".encode() + server)
    label = digest.hexdigest()[:16]
    if _label_of(client, image.tag) == label:
        return False
    logger.info("building image tag=%s hash=%s", image.tag, label)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", text.encode()), ("server.py", server)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(
        fileobj=context,
        custom_context=True,
        tag=image.tag,
        rm=True,
        forcerm=True,
        labels={HASH_LABEL: label},
    )
    return True


@contextmanager
def _build_lock() -> Iterator[None]:
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_test_images(
    client: docker.DockerClient, images: Mapping[str, AppImage] = TEST_IMAGES
) -> dict[str, str]:
    """Make sure the base and every test image exist and are current; return name -> tag."""
    tags = [*(image.tag for image in images.values()), BASE_TAG]  # children before base
    with _build_lock():
        before = {tag: _image_id(client, tag) for tag in tags}
        base_digest = ensure_base(client)
        for image in images.values():
            build_app_image(client, image, base_digest)
        _remove_replaced(client, before)
    return {"base": BASE_TAG, **{name: image.tag for name, image in images.items()}}


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def _remove_replaced(client: docker.DockerClient, before: Mapping[str, str | None]) -> None:
    """Delete the images a rebuild untagged, so rebuilds leave no dangling images behind.

    One still used by a container (another test session's, say) stays; that is fine.
    """
    for tag, old_id in before.items():
        if old_id is None or _image_id(client, tag) == old_id:
            continue
        try:
            client.images.remove(old_id)
        except docker.errors.APIError as exc:
            logger.debug("old image kept image=%s tag=%s reason=%s", old_id, tag, exc)


def _label_of(client: docker.DockerClient, tag: str) -> str | None:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    value = labels.get(HASH_LABEL)
    return str(value) if value is not None else None


if __name__ == "__main__":  # python tests/docker/imagebuilder.py: build them by hand
    logging.basicConfig(level=logging.INFO)
    for name, tag in ensure_test_images(docker.from_env()).items():
        print(f"{name:10} {tag}")
