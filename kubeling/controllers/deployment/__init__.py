"""The Deployment controller (RollingUpdate and Recreate rollouts over ReplicaSets)."""

from kubeling.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
