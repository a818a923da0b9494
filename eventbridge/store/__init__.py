"""Stores for Argo objects (Workflows, templates, cron workflows) as Kubernetes-style dicts."""
