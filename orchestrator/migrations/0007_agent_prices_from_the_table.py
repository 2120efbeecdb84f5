"""Agents in stored definitions that were saved with the old default price (0 and 0) get no price
of their own, so their cost comes from the price table (or shows as unpriced), not a silent $0.

Before, every agent in a definition was stored with `price: {"input_per_1k": 0,
"output_per_1k": 0}` whether or not its author gave one, so a zero price cannot be told apart
from no price: zero is read as none. An author who means a free model sets the price again.
"""

from django.db import migrations

ZERO = {"input_per_1k": 0, "output_per_1k": 0}
BATCH = 500


def _clear(agent) -> bool:
    if isinstance(agent, dict) and agent.get("price") == ZERO:
        agent["price"] = None
        return True
    return False


def _cleared(definition) -> bool:
    if not isinstance(definition, dict):
        return False
    changed = False
    for agent in definition.get("agents") or []:
        changed |= _clear(agent)
    for node in definition.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("config"), dict):
            changed |= _clear(node["config"].get("agent"))
    return changed


def forwards(apps, schema_editor):
    for name in ("Orchestration", "OrchestrationVersion", "StarterTemplate"):
        model = apps.get_model("orchestrator", name)
        changed = []
        for row in model.objects.only("pk", "definition").iterator(chunk_size=BATCH):
            if _cleared(row.definition):
                changed.append(row)
            if len(changed) >= BATCH:
                model.objects.bulk_update(changed, ["definition"])
                changed = []
        if changed:
            model.objects.bulk_update(changed, ["definition"])


class Migration(migrations.Migration):
    dependencies = [
        ("orchestrator", "0006_run_retention"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
