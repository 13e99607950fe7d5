"""Video files of uint8 frames: ``.mp4`` through imageio-ffmpeg, ``.gif`` through Pillow (every latent tool's
videos: interpolation, direction sweeps)."""

from __future__ import annotations

import os

import numpy as np

from sgtrain.errors import InputError

__all__ = ["VideoWriter"]


class VideoWriter:
    """Write uint8 frames [H, W, C] to ``.mp4`` (H.264 through imageio-ffmpeg) or ``.gif`` (Pillow).

    Raises:
        ValueError: another suffix.
        RuntimeError: mp4 asked for but imageio-ffmpeg is missing.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30, bitrate: str = "10M"):
        self.path = str(path)
        self.fps = fps
        self.suffix = os.path.splitext(self.path)[1].lower()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._frames: list = []
        self._writer = None
        if self.suffix == ".mp4":
            try:
                import imageio.v2 as imageio
                import imageio_ffmpeg  # noqa: F401
            except ImportError as e:
                raise RuntimeError("writing .mp4 needs imageio and imageio-ffmpeg (pip install imageio-ffmpeg); "
                                   "or write a .gif") from e
            self._writer = imageio.get_writer(self.path, mode="I", fps=fps, codec="libx264", bitrate=bitrate,
                                              macro_block_size=2, ffmpeg_log_level="error")
        elif self.suffix != ".gif":
            raise InputError(f"video '{self.path}': use a .mp4 or .gif file name")

    def append(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.shape[2] == 1:
            frame = np.repeat(frame, 3, axis=2)
        if self._writer is not None:
            self._writer.append_data(frame)
        else:
            import PIL.Image

            self._frames.append(PIL.Image.fromarray(frame))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self._frames:
            self._frames[0].save(self.path, save_all=True, append_images=self._frames[1:],
                                 duration=max(20, round(1000 / self.fps)), loop=0)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
