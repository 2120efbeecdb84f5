"""Repair text no column can store that earlier releases kept on SQLite.

What a step brought back was stored as it came: an upstream's JSON or a model's answer may
escape half of a surrogate pair ("\\ud800"), which SQLite keeps, and every page and stream that
held it then failed to encode its answer. Each such character becomes U+FFFD, as it does now
when a step brings one back. PostgreSQL refused such text, so there is nothing to repair there.
"""

from django.db import migrations
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from orchestrator.definition.checks import storable

FIELDS = {
    ("runs", "Run"): ("input", "output", "shared_state", "error", "metadata"),
    ("runs", "StepRun"): ("input", "output", "error", "transcript"),
    ("runs", "RunEvent"): ("data",),
    ("runs", "OutputVersion"): ("output",),
    ("approvals", "Approval"): ("payload", "response"),
}
# How the stored JSON text writes a surrogate: escaped. Pairs (characters past U+FFFF) are
# written so too; they read back as one character and stay as they are.
ESCAPES = [f"\\ud{digit}" for digit in "89abcdef"]


def repaired(value):
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {repaired(key): repaired(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repaired(item) for item in value]
    return value


def repair(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    escaped = Q()
    for escape in ESCAPES:
        escaped |= Q(raw__icontains=escape)
    for (app, name), fields in FIELDS.items():
        model = apps.get_model(app, name)
        for field in fields:
            rows = model.objects.annotate(raw=Cast(field, TextField())).filter(escaped)
            for pk, value in rows.values_list("pk", field).iterator():
                fixed = repaired(value)
                if fixed != value:
                    model.objects.filter(pk=pk).update(**{field: fixed})


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0014_tool_call_children"),
        ("approvals", "0003_tool_call_approvals"),
    ]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
