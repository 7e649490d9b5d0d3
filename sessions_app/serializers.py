"""How the API and the admin's export show a session's messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from sessions_app.stores.base import ITEM_KINDS, Message


class MessageOutput(serializers.Serializer):
    """A text message is ``{"role", "content", "agent", "created_at"}``; an item a framework
    produced (a tool call, a tool result, a handoff) adds its ``kind`` and its JSON ``data``, and
    its ``content`` is a line a person can read."""

    role = serializers.CharField()
    content = serializers.CharField()
    agent = serializers.CharField()
    created_at = serializers.SerializerMethodField()
    kind = serializers.ChoiceField(choices=ITEM_KINDS[1:], required=False, help_text="Items only.")
    data = serializers.JSONField(required=False, help_text="Items only: what the framework recorded.")

    def to_representation(self, instance: Message) -> dict[str, Any]:
        shown = {
            "role": instance.role,
            "content": instance.content,
            "agent": instance.agent,
            "created_at": self.get_created_at(instance),
        }
        if not instance.is_text:
            shown["kind"] = instance.kind
            shown["data"] = instance.data
        return shown

    def get_created_at(self, message: Message) -> str:
        return datetime.fromtimestamp(message.created_at, tz=UTC).isoformat().replace("+00:00", "Z")
