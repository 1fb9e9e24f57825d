"""A bucket import with objects fetched ahead (datasets/bucket_source.py) against one read at a time.

    .venv/bin/python bench/bucket_import.py [--images 200] [--size 640x480] [--latency-ms 30]

Puts N JPEG frames into a bucket on an S3 server on this machine (moto's, in a thread), then runs the
same import twice into fresh projects in one process: once reading each object when the import gets
to it (the baseline), once fetching the next PREFETCH objects in threads while it checks the
current one. Prints both rates and a last line `prefetch_vs_sequential: X.XX` (higher is better).
A localhost S3 answers in a few milliseconds; a real bucket takes tens per GET. --latency-ms adds
that wait before each GET is sent (a botocore hook at the HTTP edge), as a distant bucket would.
"""
from __future__ import annotations

import argparse
import io
import time
import uuid

from _s3 import local_bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added before each GET, as a far bucket")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    server, bucket, client = local_bucket("frames", latency_ms=args.latency_ms)
    from django.contrib.auth import get_user_model

    from datasets.bucket_source import PREFETCH, BucketSource
    from datasets.imports import dataset_import
    from review.demo_images import generate_scene
    from review.services import project_create

    owner = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:6]}")
    total = 0
    for seed in range(args.images):
        out = io.BytesIO()
        generate_scene(seed, width=width, height=height).image.save(out, format="JPEG", quality=90)
        client.put_object(Bucket=bucket, Key=f"frames/{seed:05d}.jpg", Body=out.getvalue())
        total += out.tell()
    print(f"{args.images} JPEG frames {width}x{height} in the bucket, {total / args.images / 1024:.0f} KiB each; "
          f"{args.latency_ms:.0f} ms added before each GET")

    def run(prefetch: bool) -> float:
        project = project_create(name=f"bench {uuid.uuid4().hex[:6]}", owner=owner, class_names=["circle"])
        source = BucketSource(f"s3://{bucket}/frames/", project=project)
        if not prefetch:
            source.will_read = lambda names: None  # every object read when the import gets to it
        started = time.perf_counter()
        try:
            report = dataset_import(project=project, source=source, user=None, format="images")
        finally:
            source.close()
        seconds = time.perf_counter() - started
        assert report.committed and report.images_added == args.images, report.as_dict()
        return args.images / seconds

    sequential = run(prefetch=False)
    ahead = run(prefetch=True)
    print(f"one object at a time: {sequential:.1f} images/s")
    print(f"{PREFETCH} objects fetched ahead: {ahead:.1f} images/s")
    print(f"prefetch_vs_sequential: {ahead / sequential:.2f}")
    server.stop()


if __name__ == "__main__":
    main()
