"""What a worker does as it starts, is ready and stops (Celery's signals, sent as a worker sends
them): it builds what its first calls need before it takes a message, and a coordinator runs the
sweeps under their leases, giving them up as it stops."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fakeredis
import pytest
import structlog.testing
from celery.signals import worker_init, worker_ready, worker_shutdown

import storage
from orchestration import Agent, Orchestrator, Settings, Workflow
from orchestration.orchestrator import WORKFLOW_SWEEP
from tests.support import InlineBus
from workers.stub_anthropic import StubAnthropicServer


class _Worker:
    """What Celery's ``worker_init`` and ``worker_shutdown`` are sent by, as far as agentyard looks
    at it (``worker_ready``'s consumer has the app too)."""

    def __init__(self, orc: Orchestrator, queues: list[str], concurrency: int = 4) -> None:
        self.app = orc.celery
        self.app.amqp.queues.select(queues)  # what `-Q` does
        self.concurrency = concurrency
        self.pool_cls = "celery.concurrency.thread:TaskPool"


def _team(settings: Settings, redis: fakeredis.FakeRedis) -> Orchestrator:
    orc = Orchestrator(
        "start", settings, bus=InlineBus(settings.effective_database_url), redis=redis
    )
    orc.register_agent(Agent(id="writer", model="claude-haiku-4-5", timeout_s=7))
    orc.register_agent(Agent(id="echo", model="offline:echo"))
    orc.register_workflow(Workflow.sequence("w", ["writer"]))
    return orc


@pytest.fixture
def settings(stub_settings: Settings) -> Settings:
    return stub_settings


def test_an_agent_worker_builds_what_its_first_calls_need_before_it_takes_a_message(
    settings: Settings, stub: StubAnthropicServer
) -> None:
    redis = fakeredis.FakeRedis()
    orc = _team(settings, redis)
    try:
        # When a worker of the writer's queue starts
        worker_init.send(sender=_Worker(orc, ["agent.writer"]))

        # Then its step runner, its SDK client for the writer's timeout and the Lua scripts on
        # the shared Redis are all there before any message
        assert orc._runner is not None and orc._providers is not None
        anthropic = orc._providers._anthropic
        assert anthropic is not None and set(anthropic._clients) == {7.0}  # type: ignore[attr-defined]
        assert redis.script_exists(*_shas(redis)) == [True] * len(_shas(redis))
        # ... and nothing went to the provider: the SDK's rehearsal is answered in-process
        assert stub.stats()["calls"] == 0
    finally:
        orc.close()


def test_with_warm_up_off_a_worker_builds_nothing_before_its_first_message(
    settings: Settings,
) -> None:
    orc = _team(settings.model_copy(update={"worker_warmup": False}), fakeredis.FakeRedis())
    try:
        worker_init.send(sender=_Worker(orc, ["agent.writer"]))
        assert orc._runner is None
    finally:
        orc.close()


def test_a_coordinator_worker_sweeps_while_it_runs_and_gives_its_leases_up_as_it_stops(
    settings: Settings,
) -> None:
    orc = _team(settings, fakeredis.FakeRedis())
    worker = _Worker(orc, ["coordinator"])
    try:
        worker_init.send(sender=worker)
        worker_ready.send(sender=worker)
        assert orc.sweeps().running

        worker_shutdown.send(sender=worker)

        assert not orc.sweeps().running
        leases = orc.sweeps()._leases
        assert leases is not None and leases.holder(WORKFLOW_SWEEP) is None
    finally:
        orc.close()


def test_an_agent_worker_runs_no_sweeps(settings: Settings) -> None:
    orc = _team(settings, fakeredis.FakeRedis())
    worker = _Worker(orc, ["agent.echo"])
    try:
        worker_init.send(sender=worker)
        worker_ready.send(sender=worker)
        assert not orc.sweeps().running
    finally:
        orc.close()


def _shas(redis: fakeredis.FakeRedis) -> list[str]:
    """The hashes of every Lua script agentyard has."""
    lua = Path(storage.__file__).parent / "lua"
    return [hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(lua.glob("*.lua"))]


def test_a_worker_whose_claude_agent_has_neither_key_nor_base_url_warns_as_it_starts(
    unit_settings: Settings,
) -> None:
    # Given settings with no Anthropic key and no base URL (warm-up off, so that only the
    # warning can tell), and a worker of the Claude writer's and the offline echo's queues
    settings = unit_settings.model_copy(update={"worker_warmup": False})
    orc = _team(settings, fakeredis.FakeRedis())
    try:
        with structlog.testing.capture_logs() as logs:
            worker_init.send(sender=_Worker(orc, ["agent.writer", "agent.echo"]))
    finally:
        orc.close()

    [warning] = [e for e in logs if e["event"] == "worker.agents_without_credentials"]
    assert warning["log_level"] == "warning" and warning["agents"] == ["writer"]
    assert "AGENTYARD_ANTHROPIC_API_KEY" in warning["advice"]
    assert "agentyard stub-anthropic" in warning["advice"]


def test_a_worker_whose_claude_agents_can_reach_a_stub_says_nothing_of_credentials(
    settings: Settings,
) -> None:
    orc = _team(settings.model_copy(update={"worker_warmup": False}), fakeredis.FakeRedis())
    try:
        with structlog.testing.capture_logs() as logs:
            worker_init.send(sender=_Worker(orc, ["agent.writer"]))
    finally:
        orc.close()
    assert not [e for e in logs if e["event"] == "worker.agents_without_credentials"]
