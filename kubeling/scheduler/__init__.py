"""The scheduler: assigns pending pods to nodes (kube-scheduler's framework and plugins)."""
