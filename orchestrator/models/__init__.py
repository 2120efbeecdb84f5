from orchestrator.models.library import Agent, Credential, Group, McpServer
from orchestrator.models.metrics import PrunedSample, WebhookOutcome, WebhookRequestCount
from orchestrator.models.orchestrations import (
    Orchestration,
    OrchestrationTag,
    OrchestrationVersion,
    ScheduleFiring,
    Trigger,
    WebhookDelivery,
)
from orchestrator.models.templates import StarterTemplate
from orchestrator.models.tenancy import ApiToken, Membership, Organization

__all__ = [
    "Agent",
    "ApiToken",
    "Credential",
    "Group",
    "McpServer",
    "Membership",
    "Orchestration",
    "OrchestrationTag",
    "OrchestrationVersion",
    "Organization",
    "PrunedSample",
    "ScheduleFiring",
    "StarterTemplate",
    "Trigger",
    "WebhookDelivery",
    "WebhookOutcome",
    "WebhookRequestCount",
]
