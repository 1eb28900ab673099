"""pmp-demo --foxglove PORT --mcap FILE on the small random model: a WebSocket client connected during the
run receives messages on every channel, and the recording holds the same channels, one message per answered
frame (the log: one line per instruction)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import websockets
from mcap.reader import make_reader
from PIL import Image as PILImage

from pmp_ros import demo
from pmp_ros.viz.live_view import CHANNELS

FRAMES_PER_INSTRUCTION = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _watch(port: int, received: dict, errors: list, timeout_s: float) -> None:
    """Connect as soon as the demo serves, subscribe to every channel advertised, count messages per topic
    until the demo closes the server."""

    async def session():
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"])
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        topics: dict[int, str] = {}
        async with ws:
            try:
                while time.monotonic() < deadline:
                    data = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                    if isinstance(data, str):
                        message = json.loads(data)
                        if message["op"] == "advertise":
                            fresh = [c for c in message["channels"] if c["id"] not in topics.values()]
                            subscriptions = [
                                {"id": len(topics) + k, "channelId": c["id"]} for k, c in enumerate(fresh, start=1)
                            ]
                            topics |= {s["id"]: c["topic"] for s, c in zip(subscriptions, fresh)}
                            await ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
                    else:
                        topic = topics[int.from_bytes(data[1:5], "little")]
                        received[topic] = received.get(topic, 0) + 1
            except websockets.ConnectionClosed:
                pass

    try:
        asyncio.run(session())
    except Exception as error:  # reported by the test, not lost in the thread
        errors.append(error)


def test_demo_streams_every_channel_and_records_them(tmp_path, model_file, capsys):
    port, received, errors = _free_port(), {}, []
    watcher = threading.Thread(target=_watch, args=(port, received, errors, 540.0), daemon=True)
    watcher.start()
    recording = tmp_path / "demo.mcap"
    code = demo.main(
        [
            "--model",
            str(model_file),
            "--out",
            str(tmp_path / "demo"),
            "--frames-per-instruction",
            str(FRAMES_PER_INSTRUCTION),
            "--device",
            "cpu",
            "--foxglove",
            str(port),
            "--mcap",
            str(recording),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert f"ws://localhost:{port}" in capsys.readouterr().out
    watcher.join(timeout=60)
    assert not errors, errors
    assert set(received) == set(CHANNELS.values()), f"no message on {set(CHANNELS.values()) - set(received)}"

    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    with recording.open("rb") as stream:
        reader = make_reader(stream)
        topics = {c.topic for c in reader.get_summary().channels.values()}
        counts: dict[str, int] = {}
        for _, channel, _ in reader.iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    assert topics == set(CHANNELS.values())
    answered = metrics["results"]
    assert answered > 0
    assert all(counts[t] == answered for t in topics if t != "/pmp/log"), counts
    assert 3 <= counts["/pmp/log"] <= answered  # one line per instruction at least (and per new resolution)

    with PILImage.open(tmp_path / "demo" / "demo.gif") as gif:
        gif.seek(1)
        assert gif.info["duration"] == 1000 // demo.GIF_FPS
