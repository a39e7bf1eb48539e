"""The scheduler: assigns pending pods to nodes (kube-scheduler's framework and plugins)."""

from kubeling.scheduler.scheduler import Scheduler, SchedulerOptions

__all__ = ["Scheduler", "SchedulerOptions"]
