"""Install the default lifecycle template from the lecture ("lecture-default", version 1).

Uses the historical models of this migration's state. The data is deep-copied from
lifecycle.default_template so that nothing here can mutate (or be mutated through) the module's
constant. Reversing is a no-op: the template may already be pinned by courses and projects, and
installing again is idempotent.
"""

import copy

from django.db import migrations

from lifecycle.default_template import DEFAULT_TEMPLATE, install_default_template


def install(apps, schema_editor):
    install_default_template(
        apps, data=copy.deepcopy(DEFAULT_TEMPLATE), using=schema_editor.connection.alias
    )


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0002_audit_append_only")]

    operations = [
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
