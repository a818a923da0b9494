"""Pydantic models of Argo's manifests (argoproj.io/v1alpha1) and the loader/linter."""
