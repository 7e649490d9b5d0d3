"""The embedded broker (kombu's filesystem transport, ``infra.filesystem_broker``): a consumer never
takes a message its producer has not finished writing. With kombu's own transport, a consumer that
moved a message's file between its creation and its write read it empty and its worker stopped
(celery/kombu#1551: 1 to 3 of 6,000 messages from three processes, here)."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.transport.virtual import Empty

TRANSPORT = "infra.filesystem_broker:Transport"


def _connection(folder: Path) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    return Connection("filesystem://", transport=TRANSPORT, transport_options=options)


def _produce(folder: Path, producer: int, count: int) -> None:
    with _connection(folder) as connection:
        for i in range(count):
            connection.default_channel._put("q", {"producer": producer, "i": i, "pad": "x" * 2000})


def test_the_settings_use_it_for_the_embedded_broker() -> None:
    from akplatform.celery import app

    assert settings.CELERY_BROKER_URL.startswith("filesystem://")
    with app.connection_for_write() as connection:
        assert connection.transport_cls == TRANSPORT


def test_messages_from_other_processes_are_taken_whole_and_once(tmp_path: Path) -> None:
    producers, count = 3, 2000
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=_produce, args=(tmp_path, p, count)) for p in range(producers)]
    for process in processes:
        process.start()
    taken: list[tuple[int, int]] = []
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        while len(taken) < producers * count:
            try:
                message = channel._get("q")  # raises on a message read before it was written
            except Empty:
                assert any(p.is_alive() for p in processes) or any(tmp_path.glob("*.msg")), "messages lost"
                continue
            taken.append((message["producer"], message["i"]))
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert sorted(taken) == [(p, i) for p in range(producers) for i in range(count)]
    assert not list(tmp_path.iterdir())  # nothing left behind, no partial file


def test_a_message_being_written_is_not_taken(tmp_path: Path) -> None:
    name = "1_0f0f.q.msg"
    (tmp_path / f".{name}.part").write_bytes(json.dumps({"i": 1}).encode()[:3])  # half written
    with _connection(tmp_path) as connection:
        with pytest.raises(Empty):
            connection.default_channel._get("q")
        (tmp_path / f".{name}.part").write_bytes(json.dumps({"i": 1}).encode())
        (tmp_path / f".{name}.part").rename(tmp_path / name)  # as the transport's put ends
        assert connection.default_channel._get("q") == {"i": 1}


def _put_past_the_file_size_limit(folder: Path) -> None:
    """In a process whose files may not pass 100 bytes (a full disk, as the writer sees it)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
    with _connection(folder) as connection:
        try:
            connection.default_channel._put("q", {"pad": "x" * 2000})
        except ChannelError:
            os._exit(0)
    os._exit(1)


def test_a_message_that_cannot_be_written_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    process = multiprocessing.get_context("fork").Process(target=_put_past_the_file_size_limit, args=(tmp_path,))
    process.start()
    process.join(30)
    assert process.exitcode == 0  # ChannelError, as kombu's own transport raises
    assert not list(tmp_path.iterdir())  # the part written is gone
