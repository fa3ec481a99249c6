"""Grading's domain events, published through ``lifecycle.events`` inside the transaction
that sets a grade; higher layers (LTI grade passback) subscribe."""

from __future__ import annotations

# payload: grade (StageGrade), actor
STAGE_GRADE_SET = "grading.stage_grade_set"
# payload: grade (ProjectGrade), actor
PROJECT_GRADE_SET = "grading.project_grade_set"
