"""What the benchmarks share: where their inputs are cached, the environment of the
vidproof processes they start, and the synthetic H.264 input they encode with PyAV.

Imported by the benchmark scripts run as ``python benchmarks/NAME.py`` (their folder
is then on ``sys.path``); ``floor.py`` does not import it, so that a floor process loads
only what its work needs.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path


def testsrc2_graph(width: int, height: int, fps: int) -> str:
    """FFmpeg's testsrc2 with moving noise: content whose bit rate is real."""
    return f"testsrc2=size={width}x{height}:rate={fps},noise=alls=12:allf=t"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidproof-bench"


def child_env(cache: Path) -> dict[str, str]:
    """The environment of the vidproof processes a benchmark starts: Python bytecode
    cached (under the cache directory, not in the work tree), as in an installed
    package. Without it (e.g. with PYTHONDONTWRITEBYTECODE set) every process would
    first compile vidproof's sources."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return env


def encode_testsrc2(out: Path, width: int, height: int, fps: int, bitrate: int, gop: int,
                    seconds: float, *, b_frames: bool) -> None:
    """``seconds`` of :func:`testsrc2_graph` encoded with libx264 (veryfast, ``bitrate``
    capped at itself, fixed GOP, no scene cuts; x264's B-frames or none) into ``out``."""
    import av

    with av.open(testsrc2_graph(width, height, fps), format="lavfi") as graph, \
            av.open(str(out), "w") as mp4:
        st = mp4.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.bit_rate = bitrate
        st.codec_context.gop_size = gop
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        if not b_frames:
            st.codec_context.max_b_frames = 0
            params += ":bframes=0"
        st.codec_context.options = {
            "preset": "veryfast", "maxrate": str(bitrate), "bufsize": str(2 * bitrate),
            "x264-params": params,
        }
        for i, frame in enumerate(graph.decode(video=0)):
            if i >= seconds * fps:
                break
            frame.pts, frame.time_base = i, Fraction(1, fps)
            frame.pict_type = av.video.frame.PictureType.NONE
            mp4.mux(st.encode(frame))
        mp4.mux(st.encode(None))
