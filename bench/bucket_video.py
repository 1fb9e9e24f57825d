"""A camera's clip in a bucket read in ranges (datasets/bucket_source.py) against fetched whole first.

    .venv/bin/python bench/bucket_video.py [--seconds 120] [--size 1280x720] [--every 1 10 60] [--latency-ms 30]

Encodes a clip here (bench/video_import.py's: H.264, a keyframe every 2 s, as cameras send), puts it
into a bucket on an S3 server on this machine (moto's, in a thread), then takes one frame every
`--every` seconds from it in one process two ways: (a) the baseline, one GET of the whole object
into memory and VideoSource on those bytes, and (b) BucketSource, which reads the header and then
only the blocks that hold the frames due (VIDEO_BLOCK_BYTES). Both must keep the same frames.
Prints the bytes each fetched (counted at the HTTP edge, a botocore hook), GETs, seconds, and a last
line `bytes_read_ratio: X.XX` (b over a, at the sparsest interval: lower is better).
"""
from __future__ import annotations

import argparse
import io
import time
import uuid

from _s3 import local_bucket
from video_import import encode_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--every", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added before each GET, as a far bucket")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    server, bucket, client = local_bucket("cams", latency_ms=args.latency_ms)
    import boto3
    from django.contrib.auth import get_user_model

    from datasets.bucket_source import VIDEO_BLOCK_BYTES, VIDEO_READ_AHEAD_BLOCKS, BucketSource
    from datasets.video_source import VideoSource
    from review.services import project_create

    fetched = {"bytes": 0, "gets": 0}

    def count(parsed, **kwargs) -> None:
        fetched["bytes"] += parsed.get("ContentLength", 0)
        fetched["gets"] += 1

    boto3.DEFAULT_SESSION.events.register("after-call.s3.GetObject", count)
    client = boto3.client("s3")  # one made after the hook: a client copies the session's hooks when it is made
    data = encode_clip(args.seconds, width, height, fps=25, gop=50)
    client.put_object(Bucket=bucket, Key="cams/gate/0800.mp4", Body=data)
    print(f"a {args.seconds} s {width}x{height} H.264 clip in the bucket: {len(data) / 1e6:.1f} MB; "
          f"blocks of {VIDEO_BLOCK_BYTES // 1024} KiB, up to {VIDEO_READ_AHEAD_BLOCKS} a GET; "
          f"{args.latency_ms:.0f} ms added before each GET")
    owner = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:6]}")
    project = project_create(name=f"bench {uuid.uuid4().hex[:6]}", owner=owner, class_names=["car"])

    def measure(read_frames) -> tuple[list[bytes], dict, float]:
        fetched.update(bytes=0, gets=0)
        started = time.perf_counter()
        frames = read_frames()
        return frames, dict(fetched), time.perf_counter() - started

    def whole(every: float) -> list[bytes]:
        body = client.get_object(Bucket=bucket, Key="cams/gate/0800.mp4")["Body"].read()
        source = VideoSource(io.BytesIO(body), name="gate/0800.mp4", every=every)
        try:
            return [source.read(name) for name in source.names]
        finally:
            source.close()

    def ranged(every: float) -> list[bytes]:
        source = BucketSource(f"s3://{bucket}/cams/", project=project, frame_every=every)
        try:
            return [source.read(name) for name in source.names]
        finally:
            source.close()

    ratio = None
    print("every | whole object: MB, GETs, s | ranges: MB, GETs, s | bytes ranged/whole")
    for every in args.every:
        base_frames, base, base_s = measure(lambda: whole(every))
        frames, got, seconds = measure(lambda: ranged(every))
        assert frames == base_frames, f"the two ways kept different frames at one every {every:g} s"
        ratio = got["bytes"] / base["bytes"]
        print(f"{every:g} s ({len(frames)} frames) | {base['bytes'] / 1e6:.1f}, {base['gets']}, {base_s:.2f} | "
              f"{got['bytes'] / 1e6:.1f}, {got['gets']}, {seconds:.2f} | {ratio:.2f}")
    server.stop()
    print(f"bytes_read_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
