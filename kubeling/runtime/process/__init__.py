"""The process runtime: pods as plain host processes, with no isolation (see ``runtime``)."""

from kubeling.runtime.process.runtime import ProcessRuntime

__all__ = ["ProcessRuntime"]
