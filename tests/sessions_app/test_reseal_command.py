"""``manage.py reseal_sessions``: a tenant's sessions move to the first key, so the old one may go."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from sessions_app.stores.sealing import Sealer

OLD = "the-old-key-of-the-reseal-command-tests-0123"
NEW = "the-new-key-of-the-reseal-command-tests-4567"


def test_the_command_moves_a_tenants_sessions_to_the_new_key(alice, make_tenant, make_store, use_store, settings):
    bob = make_tenant()
    use_store(make_store("redis", sealer=Sealer([OLD])))
    for client in (alice, bob):
        for session_id in ("one", "two"):
            assert client.post("/run", {"agent": "echo", "message": "hi", "session_id": session_id}).status_code == 200
    settings.AK_SESSION = {**settings.AK_SESSION, "ENCRYPTION_KEYS": [NEW, OLD]}
    use_store(make_store("redis", sealer=Sealer([NEW, OLD])))

    out = io.StringIO()
    call_command("reseal_sessions", alice.tenant.slug, stdout=out)

    assert out.getvalue().strip() == f"2 sessions of {alice.tenant.slug}: 4 payloads encrypted again."
    use_store(make_store("redis", sealer=Sealer([NEW])))  # the old key dropped
    assert len(alice.get("/sessions/one/messages").json()["messages"]) == 2
    assert bob.get("/sessions/one/messages").status_code == 503  # not resealed: another tenant


def test_the_command_needs_a_key_and_a_tenant(db, settings) -> None:
    with pytest.raises(CommandError, match="AK_SESSION__ENCRYPTION_KEY is not set"):
        call_command("reseal_sessions", "nobody")
    settings.AK_SESSION = {**settings.AK_SESSION, "ENCRYPTION_KEYS": [NEW]}
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        call_command("reseal_sessions", "nobody")
