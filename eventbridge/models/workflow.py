"""Argo Workflows kinds: Workflow, WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from eventbridge.models.base import ArgoModel, Manifest


class WorkflowSpec(ArgoModel):
    """Argo's WorkflowSpec (filled in by the workflow models)."""


class Workflow(Manifest):
    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)
    status: dict[str, Any] | None = None


class WorkflowTemplate(Manifest):
    kind: Literal["WorkflowTemplate"] = "WorkflowTemplate"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)


class ClusterWorkflowTemplate(Manifest):
    kind: Literal["ClusterWorkflowTemplate"] = "ClusterWorkflowTemplate"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)


class CronWorkflowSpec(ArgoModel):
    workflow_spec: WorkflowSpec = Field(default_factory=WorkflowSpec)


class CronWorkflow(Manifest):
    kind: Literal["CronWorkflow"] = "CronWorkflow"
    spec: CronWorkflowSpec = Field(default_factory=CronWorkflowSpec)
    status: dict[str, Any] | None = None
