"""RunOutput declares the fields a ModelSerializer of Run would derive (the API and its document
stay what they were), so that showing a run, which a client polls, does not derive them each time."""

from __future__ import annotations

from rest_framework import serializers

from agents_app.api.serializers import RunOutput
from agents_app.models import Run

MODEL_FIELDS = [name for name in RunOutput().fields if name not in {"run_id", "session_id", "agent", "usage"}]


class Derived(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = MODEL_FIELDS


def test_each_field_is_the_one_a_model_serializer_derives() -> None:
    declared, derived = RunOutput().fields, Derived().fields
    for name in MODEL_FIELDS:
        mine, theirs = declared[name], derived[name]
        assert type(mine) is type(theirs), name
        for attribute in ("required", "allow_null", "read_only", "max_length", "min_value", "max_value"):
            assert getattr(mine, attribute, None) == getattr(theirs, attribute, None), (name, attribute)
        if isinstance(theirs, serializers.ChoiceField):
            assert mine.choices == theirs.choices and mine.allow_blank == theirs.allow_blank, name


def test_what_showing_a_run_reads_covers_every_field() -> None:
    sources = {field.source for field in RunOutput().fields.values()}
    columns = {column.replace("__", ".") for column in RunOutput.COLUMNS}
    assert sources <= columns
