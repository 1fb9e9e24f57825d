"""A bucket for a benchmark: an S3 server on this machine (moto's, in a thread), the edge of the world."""
from __future__ import annotations

import logging
import os
import time
import uuid

from _django import setup


def local_bucket(prefix: str, *, latency_ms: float = 0.0):
    """Start the server, point boto3's own variables at it, allow s3://<new bucket>/<prefix> for imports
    (IMPORT_BUCKETS), set Django up (bench/_django.py) and create the bucket. `latency_ms` is waited before
    each GET, as a bucket in another region would. Returns (server, bucket name, boto3 client)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL_S3=f"http://{host}:{port}")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ["IMPORT_BUCKETS"] = f"s3://{bucket}/{prefix}"
    setup()
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    boto3.setup_default_session()
    if latency_ms:
        boto3.DEFAULT_SESSION.events.register("before-send.s3.GetObject", lambda **kwargs: time.sleep(latency_ms / 1000))
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    return server, bucket, client
