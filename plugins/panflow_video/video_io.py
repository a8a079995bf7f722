"""Reading and writing clips: video containers through PyAV, frame images through Pillow.

A clip in memory is ``uint8 [T, H, W, C]`` (C = 1 or 3). ``read_video`` decodes every frame of the
first video stream (MP4, WebM, MKV, AVI, GIF, ...) and reports its frame rate; ``write_video``
encodes MP4 (H.264 when this PyAV build has an encoder for it, else MPEG-4 part 2) or GIF.
Unreadable or empty containers are a :class:`panflow.DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panflow import DataError

VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif", ".m4v", ".ogv"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def read_video(path: str | Path, mode: str = "L") -> tuple[np.ndarray, float]:
    """Decode all frames of ``path``'s first video stream: ``(uint8 [T, H, W, C], frames per second)``.

    ``mode`` "L" gives C = 1 (luma), "RGB" gives C = 3.
    """
    import av

    path = Path(path)
    fmt = {"L": "gray", "RGB": "rgb24"}[mode]
    try:
        with av.open(str(path)) as box:
            streams = box.streams.video
            if not streams:
                raise DataError(f"{path}: the container holds no video stream")
            st = streams[0]
            fps = float(st.average_rate or st.guessed_rate or 0.0)
            frames = [f.to_ndarray(format=fmt) for f in box.decode(st)]
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable video container ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise DataError(f"{path}: the video stream decodes to no frames")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(f"{path}: frames change size within the stream ({sorted(shapes)[:3]})")
    arr = np.stack(frames)
    return (arr[..., None] if arr.ndim == 3 else arr), fps


def _codec(suffix: str) -> str:
    import av

    if suffix == ".gif":
        return "gif"
    if suffix == ".webm":
        return next(c for c in ("libvpx-vp9", "libvpx", "libaom-av1") if c in av.codecs_available)
    return next((c for c in ("libx264", "libopenh264", "h264") if c in _encoders()), "mpeg4")


def _encoders() -> set[str]:
    import av

    out = set()
    for name in ("libx264", "libopenh264", "h264"):
        try:
            if av.codec.Codec(name, "w"):
                out.add(name)
        except Exception:  # an absent encoder raises UnknownCodecError (varies across PyAV versions)
            continue
    return out


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Encode ``uint8 [T, H, W, C]`` as MP4/WebM/GIF (by suffix); sizes are padded to even for MP4."""
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 [T, H, W, C], got {frames.dtype} {frames.shape}")
    suffix = path.suffix.lower()
    codec = _codec(suffix)
    gray = codec == "gif" and frames.shape[-1] == 1  # GIF keeps 8-bit gray exactly; colour GIFs are rgb8 (3-3-2)
    img = frames[..., 0] if gray else (np.repeat(frames, 3, -1) if frames.shape[-1] == 1 else frames)
    if codec != "gif":  # yuv420p needs even sizes
        h, w = img.shape[1:3]
        img = np.pad(img, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    src = "gray" if gray else "rgb24"
    with av.open(str(path), "w") as box:
        st = box.add_stream(codec, rate=int(round(fps)))
        st.width, st.height = img.shape[2], img.shape[1]
        st.pix_fmt = ("gray" if gray else "rgb8") if codec == "gif" else "yuv420p"
        if codec == "libx264":
            st.options = {"crf": "12"}
        elif codec == "mpeg4":
            st.bit_rate = 4_000_000
        for a in img:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format=src)
            for pkt in st.encode(frame):
                box.mux(pkt)
        for pkt in st.encode():
            box.mux(pkt)
    return path


def read_frames(folder: Path, mode: str = "L") -> np.ndarray:
    """A folder of frame images (sorted by name) → ``uint8 [T, H, W, C]``; mixed sizes name the file."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: holds no frame images ({', '.join(sorted(FRAME_SUFFIXES))})")
    out, size = [], None
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                if im.mode.startswith("I;16") or im.mode in ("I", "F"):
                    raise DataError(f"{f}: {im.mode} frames are not supported (8-bit L/RGB only)")
                a = np.asarray(im.convert(mode))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{f}: not a readable image ({exc})") from exc
        if size is None:
            size = a.shape[:2]
        elif a.shape[:2] != size:
            raise DataError(f"{f}: frame is {a.shape[1]}x{a.shape[0]} but {files[0].name} is {size[1]}x{size[0]} "
                            "(frames of a clip must share one size)")
        out.append(a)
    arr = np.stack(out)
    return arr[..., None] if arr.ndim == 3 else arr
