"""Content-addressed storage: one interface, three backends.

``open_store(settings)`` picks the backend the same way for the CLI and every
function:

- ``KINOIT_IPFS_API`` unset: the embedded blockstore under ``settings.store_dir``;
- ``KINOIT_IPFS_API`` set: a Kubo node over its RPC API;
- ``KINOIT_CLUSTER_API`` set as well: data through Kubo, pins through IPFS Cluster.
"""

from __future__ import annotations

from kinoit.config import Settings
from kinoit.store.base import Pin, Store
from kinoit.store.cid import CID, parse_cid
from kinoit.store.embedded import EmbeddedStore

__all__ = ["CID", "EmbeddedStore", "Pin", "Store", "open_store", "parse_cid"]


def open_store(settings: Settings) -> Store:
    """The store configured by ``settings`` (nothing is contacted until first use)."""
    if settings.ipfs_api:
        from kinoit.store.kubo import KuboStore

        kubo = KuboStore(
            settings.ipfs_api,
            timeout=settings.http_timeout_seconds,
            retries=settings.http_retries,
        )
        if settings.cluster_api:
            from kinoit.store.cluster import ClusterStore

            return ClusterStore(
                kubo,
                settings.cluster_api,
                timeout=settings.http_timeout_seconds,
                retries=settings.http_retries,
            )
        return kubo
    if settings.cluster_api:
        from kinoit.errors import InvalidParameter

        raise InvalidParameter(
            "KINOIT_CLUSTER_API", "needs KINOIT_IPFS_API too (Cluster pins, Kubo holds the data)"
        )
    return EmbeddedStore(settings.store_dir)
