"""The OCI runtime: pods as runc (or crun) containers in a pause sandbox (see ``runtime``)."""

from kubeling.runtime.oci.runtime import OciRuntime

__all__ = ["OciRuntime"]
