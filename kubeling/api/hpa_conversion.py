"""HorizontalPodAutoscaler conversion between autoscaling/v1 and the stored v2."""
