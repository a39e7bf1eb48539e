"""Container images: references, a content-addressed store, archive import and layer unpacking.

The OCI runtime reads images from the store (``ImageStore.resolve`` then
``layer_dirs`` for overlayfs), registry pulls write into it, and ``kubeling
images`` manages it from the command line — all through this package's API.
"""

from kubeling.runtime.images.reference import InvalidReference, Reference, normalize, parse
from kubeling.runtime.images.store import (
    BlobWriter,
    DigestMismatch,
    Image,
    ImageConfig,
    ImageError,
    ImageStore,
    chain_ids,
    host_platform,
    parse_manifest,
    select_manifest,
)

__all__ = [
    "BlobWriter",
    "DigestMismatch",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageStore",
    "InvalidReference",
    "Reference",
    "chain_ids",
    "host_platform",
    "normalize",
    "parse",
    "parse_manifest",
    "select_manifest",
]
