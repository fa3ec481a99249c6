import pytest
from lifecycle.models import StageDefinition

pytestmark = pytest.mark.django_db


def test_probe(personas):
    for sd in StageDefinition.objects.filter(template=personas.project.template).order_by("order"):
        print(sd.order, sd.key, sd.requires_stakeholders)
        for q in sd.questions.all():
            print("   ", q.key, q.kind, q.required, q.choices)
