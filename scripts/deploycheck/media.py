"""What a process needs beyond its own binary, read from its Settings: the programs it runs as
child processes (video-service's processing.ffprobe and processing.ffmpeg, from Debian's
`ffmpeg` package) and the scratch space it writes under the system temp dir (each processing
worker downloads a whole video there, up to uploads.max_size_bytes, via the tempfile crate:
$TMPDIR, else /tmp). Used by the Dockerfile, compose and chart checks."""

from __future__ import annotations

import re

# Settings naming a program the binary runs -> the Debian package that puts it in /usr/bin.
CHILD_TOOLS = {("processing", "ffprobe"): "ffmpeg", ("processing", "ffmpeg"): "ffmpeg"}
# Room beyond the videos themselves: the thumbnail and anything else an attempt writes.
SCRATCH_MARGIN = 64 << 20
# A tmpfs (or a Memory emptyDir) is RAM charged to the container: its memory limit must hold
# the scratch space and this much besides (the process, ffprobe and ffmpeg).
PROCESS_MEMORY = 128 << 20
DEFAULT_TMPDIR = "/tmp"

_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T|m|g|b|B)?[bB]?")
_FACTORS = {None: 1, "b": 1, "B": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def quantity_bytes(text, docker: bool = False) -> int | None:
    """A Kubernetes quantity ("2560Mi", "3G") or, with docker=True, a Docker size ("512m",
    "2g": binary units) in bytes; None when it is not one."""
    m = _QUANTITY.fullmatch(str(text).strip())
    if not m:
        return None
    unit = m.group(2)
    if docker and unit:
        factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(unit.lower()[0], 1)
    elif unit not in _FACTORS:
        return None  # "m" is millibytes in Kubernetes: not a size anyone means
    else:
        factor = _FACTORS[unit]
    return int(float(m.group(1)) * factor)


def child_tools(settings, binary: str) -> dict[str, str]:
    """"section.key" -> Debian package, for each program `binary` runs (by its Settings)."""
    return {f"{sec}.{key}": pkg for (sec, key), pkg in CHILD_TOOLS.items()
            if key in settings.schema[binary].get(sec, {})}


def tool_problems(settings, binary: str, eff: dict) -> list[str]:
    """The programs a deployment names must be the ones the image has: the default name (found
    on PATH) or /usr/bin/<it>, where the Debian package puts it."""
    p = []
    for setting in child_tools(settings, binary):
        sec, key = setting.split(".")
        default = str(settings.defaults[binary][sec][key])
        value = str(eff[sec][key])
        if value not in (default, f"/usr/bin/{default}"):
            p.append(f"{binary}: {setting}={value}, but the image has {default} in /usr/bin (set {default!r} or "
                     f"'/usr/bin/{default}')")
    return p


def scratch_bytes(settings, binary: str, eff: dict) -> int:
    """Bytes `binary` may hold under its temp dir at once: uploads.max_size_bytes per processing
    worker, plus a margin; 0 for a process that downloads nothing there."""
    schema = settings.schema[binary]
    if "workers" not in schema.get("processing", {}) or "max_size_bytes" not in schema.get("uploads", {}):
        return 0
    return int(eff["processing"]["workers"]) * int(eff["uploads"]["max_size_bytes"]) + SCRATCH_MARGIN


def mib(n: int) -> str:
    return f"{n / (1 << 20):.0f}Mi"


def covers(path: str, mount: str) -> bool:
    mount = mount.rstrip("/") or "/"
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def compose_scratch_problems(binary: str, svc: dict, need: int, tmpdir: str = DEFAULT_TMPDIR) -> list[str]:
    """A read-only container must have `tmpdir` writable and big enough: a disk volume, or a
    tmpfs with a size of at least `need` that its memory limit (which the tmpfs counts
    against) also holds. `svc` is a service as `docker-compose config` prints it."""
    if not svc.get("read_only"):
        return []
    found = []  # (kind, size or None, read_only)
    for entry in svc.get("tmpfs") or []:
        target, _, opts = str(entry).partition(":")
        if covers(tmpdir, target):
            size = next((o.split("=", 1)[1] for o in opts.split(",") if o.startswith("size=")), None)
            found.append(("tmpfs", size, False))
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            kind, target, ro = v.get("type", "volume"), str(v.get("target", "")), bool(v.get("read_only"))
            size = (v.get("tmpfs") or {}).get("size")
        else:
            parts = str(v).split(":")
            target = parts[1] if len(parts) > 1 else parts[0]
            kind, ro, size = ("bind" if parts[0].startswith(("/", ".")) else "volume"), \
                len(parts) > 2 and "ro" in parts[2].split(","), None
        if covers(tmpdir, target):
            found.append((kind, size, ro))
    if not found:
        return [f"{binary}: read-only root filesystem and nothing writable mounted at {tmpdir}, where it downloads "
                f"each video it processes"]
    p = []
    for kind, size, ro in found:
        if ro:
            p.append(f"{binary}: {tmpdir} is mounted read-only")
        elif kind == "tmpfs":
            size_b = quantity_bytes(size, docker=True) if size is not None else None
            limit = quantity_bytes(svc.get("mem_limit") or 0, docker=True) or 0
            if size_b is None:
                p.append(f"{binary}: {tmpdir} is a tmpfs without a size: videos would fill RAM unbounded")
            elif size_b < need:
                p.append(f"{binary}: {tmpdir} tmpfs holds {mib(size_b)}, processing needs {mib(need)} "
                         f"(processing.workers x uploads.max_size_bytes + margin)")
            elif limit < size_b + PROCESS_MEMORY:
                p.append(f"{binary}: its {tmpdir} tmpfs ({mib(size_b)}) counts against mem_limit {svc.get('mem_limit')}, "
                         f"which must hold it and {mib(PROCESS_MEMORY)} more; use a volume instead")
    return p


def pod_scratch_problems(binary: str, pod: dict, need: int) -> list[str]:
    """The same for a rendered pod spec: with a read-only root filesystem, the container's
    temp dir ($TMPDIR in its env, else /tmp) is a writable volume; an emptyDir has a sizeLimit
    of at least `need` (past it the kubelet evicts the pod), an ephemeral-storage request as
    large (so the scheduler reserves the disk), or, with medium Memory, a memory limit that
    holds it too."""
    c = pod["containers"][0]
    if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return []
    tmpdir = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "TMPDIR"), None) or DEFAULT_TMPDIR
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = [m for m in c.get("volumeMounts") or [] if covers(tmpdir, m["mountPath"])]
    if not mounts:
        return [f"{binary}: read-only root filesystem and no volume at {tmpdir}, where it downloads each video "
                f"it processes"]
    p = []
    res = c.get("resources") or {}
    for m in mounts:
        vol = volumes.get(m["name"], {})
        if m.get("readOnly"):
            p.append(f"{binary}: {tmpdir} is mounted read-only")
            continue
        if "emptyDir" not in vol:
            continue  # a PVC or generic ephemeral volume: sized by its claim
        ed = vol["emptyDir"] or {}
        size = quantity_bytes(ed["sizeLimit"]) if ed.get("sizeLimit") is not None else None
        if size is None:
            p.append(f"{binary}: the emptyDir at {tmpdir} has no sizeLimit")
            continue
        if size < need:
            p.append(f"{binary}: the emptyDir at {tmpdir} has sizeLimit {ed['sizeLimit']}, processing needs "
                     f"{mib(need)} (processing.workers x uploads.max_size_bytes + margin): set videoService.tmpDir.sizeLimit")
        if ed.get("medium") == "Memory":
            limit = quantity_bytes((res.get("limits") or {}).get("memory") or 0) or 0
            if limit < size + PROCESS_MEMORY:
                p.append(f"{binary}: a Memory emptyDir of {ed['sizeLimit']} at {tmpdir} counts against the memory "
                         f"limit {(res.get('limits') or {}).get('memory')}")
        else:
            req = quantity_bytes((res.get("requests") or {}).get("ephemeral-storage") or 0) or 0
            if req < min(size, need):
                p.append(f"{binary}: requests.ephemeral-storage {(res.get('requests') or {}).get('ephemeral-storage')} "
                         f"is less than the {mib(need)} its {tmpdir} may hold (the scheduler would not reserve the disk)")
    return p


# Debian codename -> version, to compare `rust:...-slim-bookworm`, `debian:bookworm-slim` and
# `gcr.io/distroless/cc-debian12`.
DEBIAN_VERSIONS = {"buster": 10, "bullseye": 11, "bookworm": 12, "trixie": 13, "forky": 14}


def debian_version(image: str) -> int | None:
    """The Debian release an image reference is built on, when its name or tag says so."""
    if m := re.search(r"-debian(\d+)(?:[:@]|$)", image):
        return int(m.group(1))
    for codename, version in DEBIAN_VERSIONS.items():
        if re.search(rf"(?:^|[:/-]){codename}(?:-|$|@)", image.split("/")[-1]):
            return version
    return None
