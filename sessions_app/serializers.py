"""How the API and the admin's export show a session's messages."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from sessions_app.stores.base import Message


class MessageOutput(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()
    agent = serializers.CharField()
    created_at = serializers.SerializerMethodField()

    def get_created_at(self, message: Message) -> str:
        return datetime.fromtimestamp(message.created_at, tz=UTC).isoformat().replace("+00:00", "Z")
