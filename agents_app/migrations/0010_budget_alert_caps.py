"""Budget alerts record the caps they alerted at, so that a change of a cap re-arms them; the alerts
already sent are given their budget's caps now (the window's alerts are not sent again)."""

from django.db import migrations, models


def caps_now(apps, schema_editor):
    BudgetAlert = apps.get_model("agents_app", "BudgetAlert")
    for alert in BudgetAlert.objects.select_related("budget").iterator():
        budget = alert.budget
        spend = "-" if budget.max_spend is None else f"{budget.max_spend:f}"
        alert.caps = f"{'-' if budget.max_tokens is None else budget.max_tokens} tokens, {spend} spend"
        alert.save(update_fields=["caps"])


class Migration(migrations.Migration):
    dependencies = [
        ("agents_app", "0009_run_held"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="budgetalert", name="budget_alert_once"),
        migrations.AddField(
            model_name="budgetalert",
            name="caps",
            field=models.CharField(blank=True, help_text="The budget's caps when it alerted.", max_length=80),
        ),
        migrations.RunPython(caps_now, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="budgetalert",
            constraint=models.UniqueConstraint(
                fields=("budget", "window_start", "threshold", "caps"), name="budget_alert_once"
            ),
        ),
    ]
