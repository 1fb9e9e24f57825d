"""How fast a video import takes its frames (datasets/video_source.py) against decoding every frame.

    .venv/bin/python bench/video_import.py [--seconds 60] [--size 1280x720] [--fps 25] [--gop 50]

Encodes a clip here (the demo's scenes at a camera's size, a new scene every 2 s, sensor noise,
H.264 with a keyframe every `--gop` frames, as cameras send), then takes one frame every 1 s and
every 5 s from it twice in one process: (a) the plain way, decoding every frame from the start and
keeping the ones due, and (b) `VideoSource`, which seeks ahead to the keyframe before a frame due
more than a few seconds later. Both encode the frames they keep as the import stores them, and the
script checks that they kept the same frames. Prints frames/s of each and a last line
`video_speedup: X.XX` (b over a, at one frame every 5 s). No database.
"""
from __future__ import annotations

import argparse
import io
import time

import av
import numpy as np

from _django import setup


def encode_clip(seconds: int, width: int, height: int, fps: int, gop: int) -> bytes:
    from review.demo_images import generate_scene

    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 3, (height, width, 3)).astype(np.int16) for _ in range(7)]
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as video:
        # x264's "veryfast" keeps CABAC and B-frames, so decoding costs about what a camera's stream does.
        stream = video.add_stream("libx264", rate=fps, options={"preset": "veryfast", "g": str(gop)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n in range(seconds * fps):
            if n % (2 * fps) == 0:
                scene = np.asarray(generate_scene(n, width=width, height=height).image, dtype=np.int16)
            noisy = np.clip(scene + noise[n % len(noise)], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")):
                video.mux(packet)
        for packet in stream.encode():
            video.mux(packet)
    return out.getvalue()


def every_frame(data: bytes, times: list[float]) -> list[bytes]:
    """The baseline: decode from the start, keep the first frame at or after each time due."""
    from datasets.video_source import FRAME_QUALITY

    kept, due = [], list(times)
    with av.open(io.BytesIO(data)) as video:
        stream = video.streams.video[0]
        half_frame = 0.5 / float(stream.average_rate)
        for frame in video.decode(stream):
            while due and frame.time >= due[0] - half_frame:
                out = io.BytesIO()
                frame.to_image().save(out, "JPEG", quality=FRAME_QUALITY)
                kept.append(out.getvalue())
                due.pop(0)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=50, help="frames from one keyframe to the next")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    setup()
    from datasets.video_source import VideoSource

    started = time.perf_counter()
    data = encode_clip(args.seconds, width, height, args.fps, args.gop)
    print(f"clip: {args.seconds} s of {width}x{height} at {args.fps} fps, keyframe every {args.gop} frames, "
          f"{len(data) / 1e6:.1f} MB, encoded in {time.perf_counter() - started:.0f} s")
    speedup = None
    for every in (1.0, 5.0):
        source = VideoSource(io.BytesIO(data), name="clip.mp4", every=every)
        started = time.perf_counter()
        taken = [source.read(name) for name in source.names]
        seconds_source = time.perf_counter() - started
        source.close()
        started = time.perf_counter()
        plain = every_frame(data, [n * every for n in range(len(taken))])
        seconds_plain = time.perf_counter() - started
        same = sum(a == b for a, b in zip(taken, plain))
        print(f"one frame every {every:g} s: {len(taken)} frames; every frame decoded {seconds_plain:.2f} s "
              f"({len(plain) / seconds_plain:.1f} frames/s), VideoSource {seconds_source:.2f} s "
              f"({len(taken) / seconds_source:.1f} frames/s); the same frame {same} of {len(taken)} times")
        speedup = seconds_plain / seconds_source
    print(f"video_speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
