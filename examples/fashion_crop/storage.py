"""Where the seed interface's crops go: ``data:`` URLs, or an S3-compatible bucket when one is set.

The seed uploaded each JPEG crop to object storage and answered its URL. Here a crop comes back
as a ``data:image/jpeg;base64,...`` URL (no storage needed; browsers show it as an ``<img src>``)
unless ``FASHION_CROP_S3_BUCKET`` is set: then it is uploaded with boto3 (install it in the image)
and its URL answered. The other settings, all optional:

- ``FASHION_CROP_S3_ENDPOINT_URL``: an S3-compatible service (Cloudflare R2, MinIO...), not AWS;
- ``FASHION_CROP_S3_PREFIX``: a key prefix (default ``crops/``);
- ``FASHION_CROP_S3_PUBLIC_URL``: the bucket's public base URL; without it the answer is a
  presigned GET URL valid for ``FASHION_CROP_S3_URL_SECONDS`` (default 3600);
- credentials and region: boto3's own variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_REGION``), best given to the container as a Modal Secret.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

#: Stores one JPEG and answers a URL where a browser can get it.
Uploader = Callable[[bytes], str]

BUCKET_ENV = "FASHION_CROP_S3_BUCKET"


def data_url(jpeg: bytes) -> str:
    """``jpeg`` as a ``data:image/jpeg;base64,...`` URL."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class S3Uploader:
    """Upload to a bucket through an S3 client (boto3's ``put_object``/``generate_presigned_url``)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "crops/",
        public_url: str | None = None,
        url_seconds: int = 3600,
    ) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.public_url = public_url.rstrip("/") if public_url else None
        self.url_seconds = url_seconds

    def __call__(self, jpeg: bytes) -> str:
        """Store ``jpeg`` under a new random key; answer its public or presigned URL."""
        key = f"{self.prefix}{uuid.uuid4().hex}.jpg"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=jpeg, ContentType="image/jpeg")
        if self.public_url:
            return f"{self.public_url}/{key}"
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_seconds
        )


def uploader_from_env(env: Mapping[str, str] | None = None) -> Uploader:
    """An :class:`S3Uploader` when ``FASHION_CROP_S3_BUCKET`` is set, else :func:`data_url`."""
    env = os.environ if env is None else env
    bucket = env.get(BUCKET_ENV)
    if not bucket:
        return data_url
    try:
        import boto3
    except ImportError:
        raise RuntimeError(
            f"{BUCKET_ENV} is set but boto3 is not installed; add boto3 to the image"
        ) from None
    client = boto3.client("s3", endpoint_url=env.get("FASHION_CROP_S3_ENDPOINT_URL") or None)
    return S3Uploader(
        client,
        bucket,
        prefix=env.get("FASHION_CROP_S3_PREFIX", "crops/"),
        public_url=env.get("FASHION_CROP_S3_PUBLIC_URL") or None,
        url_seconds=int(env.get("FASHION_CROP_S3_URL_SECONDS", "3600")),
    )
