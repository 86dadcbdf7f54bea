"""keyward.genai.Client with the real google-genai package against keyward's emulator: the key
follows the pool, an exhausting 429 switches keys and succeeds, usage is counted exactly once, and
an all-exhausted pool raises AllExhausted saying until when. Sync and async."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, timezone

import pytest

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.errors import AllExhausted
from keyward.genai import Client
from keyward.publishing.service import publish_pools
from keyward.status import build_status
from keyward.usage import reporter

MODEL = "gemini-2.5-flash"


@pytest.fixture
def world(tmp_path, kw_env, emulated, monkeypatch):
    """Two projects whose Gemini quota is 1 request a minute at the emulator; keyward believes 100."""
    emu = emulated({"alpha-proj": "111111111111", "beta-proj": "222222222222"},
                   limits={MODEL: {"rpm": 1, "tpm": 100000, "rpd": 100}})
    config = tmp_path / "keyward.toml"
    text = f'[pools.main]\nmodel = "{MODEL}"\n[[pools.main.sinks]]\ntype = "file"\npath = "{tmp_path}/run/main.key"\n'
    for project, number in (("alpha-proj", "111111111111"), ("beta-proj", "222222222222")):
        text += textwrap.dedent(f"""
            [projects.{project}]
            pool = "main"
            number = "{number}"
            [projects.{project}.limits."{MODEL}"]
            rpm = 100
            rpd = 1000
        """)
    config.write_text(text)
    monkeypatch.setenv("KEYWARD_CONFIG", str(config))
    ctx = Context(load_config(config))
    for project in ("alpha-proj", "beta-proj"):
        inventory.add_key(ctx, project, emu.create_manual_key(project)["keyString"])
    publish_pools(ctx, trigger="timer")
    yield emu, ctx
    reporter.close()
    ctx.close()


@pytest.fixture
def closing():
    made = []
    yield lambda c: made.append(c) or c
    for c in made:
        c.close()


def _usage(ctx) -> dict[str, int]:
    return {p["project_id"]: p["usage"]["rpm"]["used"] for p in build_status(ctx)["projects"]}


def _accepted_calls(emu) -> int:
    return sum(1 for call in emu.state.calls if call.counted)


def test_generate_content_when_429_switches_key_and_counts_usage_once(world, closing):
    emu, ctx = world
    client = closing(Client("main"))
    first = client.models.generate_content(model=MODEL, contents="hello")
    assert "emulated answer" in first.text
    published_before = client.state().key_id
    second = client.models.generate_content(model=MODEL, contents="hello")  # 429 at alpha, then beta
    assert "emulated answer" in second.text
    assert client.state().key_id != published_before
    assert _usage(ctx) == {"alpha-proj": 1, "beta-proj": 1}
    assert _accepted_calls(emu) == 2
    with ctx.store.read() as s:
        from keyward.storage import store as q

        kinds = [e.kind for e in q.recent_events(s, 50)]
    assert any("exhaust" in k or "switched" in k for k in kinds)


def test_generate_content_when_all_exhausted_raises_until_without_calling(world, closing):
    emu, ctx = world
    client = closing(Client("main"))
    client.models.generate_content(model=MODEL, contents="hello")
    client.models.generate_content(model=MODEL, contents="hello")  # alpha refuses, beta answers
    with pytest.raises(AllExhausted) as info:
        client.models.generate_content(model=MODEL, contents="hello")  # beta refuses too
    until = info.value.until
    assert until is not None and until > datetime.now(timezone.utc)
    assert "out of quota until" in str(info.value) and info.value.pool == "main"
    calls = len(emu.state.calls)
    with pytest.raises(AllExhausted):
        client.models.generate_content(model=MODEL, contents="hello")
    assert len(emu.state.calls) == calls  # no request that could only fail
    assert client.state().all_exhausted
    assert _usage(ctx) == {"alpha-proj": 1, "beta-proj": 1}


def test_async_generate_content_when_429_switches_key_and_counts_once(world, closing):
    emu, ctx = world
    client = closing(Client("main"))

    async def run():
        async with client:
            return await both()

    async def both():
        a = await client.aio.models.generate_content(model=MODEL, contents="hello")
        b = await client.aio.models.generate_content(model=MODEL, contents="hello")
        return a, b

    a, b = asyncio.run(run())
    assert "emulated answer" in a.text and "emulated answer" in b.text
    assert _usage(ctx) == {"alpha-proj": 1, "beta-proj": 1}
    assert _accepted_calls(emu) == 2


def test_generate_content_when_key_invalid_reports_it_and_uses_the_next(world, closing, tmp_path):
    emu, ctx = world
    client = closing(Client("main"))
    before = client.state()
    secret = (tmp_path / "run" / "main.key").read_text().strip()
    with emu.state.lock:  # the key is deleted at Google behind keyward's back
        emu.state.key_by_string(secret).delete_time = emu.state.now()
    response = client.models.generate_content(model=MODEL, contents="hello")
    assert "emulated answer" in response.text
    after = client.state()
    assert after.key_id != before.key_id and after.project_id != before.project_id
    status = build_status(ctx)
    [invalid] = [k for p in status["projects"] for k in p["keys"] if k["key_id"] == before.key_id]
    assert invalid["state"] == "invalid" and "API_KEY_INVALID" in (invalid["invalid_reason"] or "")


def test_generate_content_stream_when_429_switches_key_and_counts_once(world, closing):
    emu, ctx = world
    client = closing(Client("main"))
    first = "".join(chunk.text for chunk in client.models.generate_content_stream(model=MODEL, contents="hello"))
    second = "".join(chunk.text for chunk in client.models.generate_content_stream(model=MODEL, contents="hello"))
    assert first == second == f"This is an emulated answer from {MODEL}."
    assert _usage(ctx) == {"alpha-proj": 1, "beta-proj": 1}
    status = build_status(ctx)
    assert sum(p["usage"]["tpm"]["used"] for p in status["projects"]) == 4  # 2 calls of ceil(len('hello') / 4) = 2 input tokens


def test_async_generate_content_stream_counts_once(world, closing):
    emu, ctx = world
    client = Client("main")

    async def run():
        async with client:
            parts = []
            async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="hello"):
                parts.append(chunk.text)
            return "".join(parts)

    assert asyncio.run(run()) == f"This is an emulated answer from {MODEL}."
    assert sum(_usage(ctx).values()) == 1
