"""`agentyard messages RUN_ID` and `agentyard deadletters [TEAM] [--limit N] [--republish ID]`,
on SQLite and fakeredis: a run's messages in order with where each acknowledgement stands, the
latest dead letters, and publishing one again."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import fakeredis
import pytest

from bus.dead_letters import DeadLetters, republish
from bus.envelope import AgentMessage, MessageType
from bus.inbox import MessageHandler
from bus.message_log import AckState, RecipientAck, messages_of
from orchestration import Agent, Orchestrator, Settings, Workflow, cli
from storage.ack_store import AckStore
from storage.db import session_scope
from storage.errors import InvalidRequest
from storage.models import MessageRow
from storage.subscription_store import SubscriptionStore
from tests.conftest import TeamFactory
from tests.support import InlineBus, commands_read, drain, run_inline

TIMEOUT_S = 0.05


def _columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _table(out: str) -> list[dict[str, str]]:
    """The rows of a command's table as {column: cell}; the first line is the title."""
    header, *rows = out.splitlines()[1:]
    names = _columns(header)
    return [dict(zip(names, _columns(row), strict=True)) for row in rows]


@dataclass
class Yard:
    """A team whose bus keeps acknowledgements in fakeredis: writer and reviewer handle bus
    messages (reviewer fails while ``failing``), critic has no handler."""

    orc: Orchestrator
    bus: InlineBus
    run_id: str
    failing: set[str]

    def deliver_all(self) -> None:
        while self.bus.queue:
            recipient, message = self.bus.queue.popleft()
            self.orc.deliver(recipient, message)

    def publish(self, *to: str, requires_ack: bool = True) -> str:
        message = AgentMessage(
            type=MessageType.NOTIFICATION,
            sender="writer",
            to=to,
            workflow_id=self.run_id,
            payload={"draft": 1},
            requires_ack=requires_ack,
            ack_timeout_s=TIMEOUT_S,
        )
        return self.orc.bus.publish(message).message_id

    def dead_letter_for(self, message_id: str, recipient: str) -> str:
        (found,) = [
            letter.id
            for letter in DeadLetters(self.orc.database_url).latest()
            if (letter.message_id, letter.recipient) == (message_id, recipient)
        ]
        return found

    def row(self, message_id: str) -> MessageRow:
        with session_scope(self.orc.database_url) as session:
            row = session.get(MessageRow, message_id)
            assert row is not None
            session.expunge(row)
            return row


@pytest.fixture
def yard(unit_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Yard]:
    fake = fakeredis.FakeRedis()
    bus = InlineBus(
        unit_settings.effective_database_url,
        subscriptions=SubscriptionStore(fake, team="unit"),
        acks=AckStore(fake, team="unit"),
    )
    orc = Orchestrator("unit", unit_settings, bus=bus, redis=fake)
    for agent_id in ("writer", "reviewer", "critic"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo"))
    orc.register_workflow(Workflow.sequence("w", ["writer"]))
    failing: set[str] = set()

    def handler(agent_id: str) -> MessageHandler:
        def handle(message: AgentMessage) -> None:
            if agent_id in failing:
                raise RuntimeError(f"{agent_id} cannot take it now")

        return handle

    orc.on_message("writer")(handler("writer"))
    orc.on_message("reviewer")(handler("reviewer"))
    run = orc.submit("w", "the telegraph")
    drain(orc, bus)
    commands_read(monkeypatch, orc)
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)
    yield Yard(orc, bus, run.id, failing)
    fake.close()


# -- agentyard messages --------------------------------------------------------------------------


def test_the_messages_command_lists_a_runs_requests_and_responses_in_order(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        Agent(id="reviewer", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer", "reviewer"]),),
    )
    result = run_inline(orc, bus, "w", "the telegraph")
    commands_read(monkeypatch, orc)

    assert cli.main(["messages", result.id]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"run {result.id}: 4 message(s), oldest first"
    rows = _table(out)
    assert [(r["TYPE"], r["SENDER"], r["TO"]) for r in rows] == [
        ("request", "coordinator", "writer"),
        ("response", "writer", "coordinator"),
        ("request", "coordinator", "reviewer"),
        ("response", "reviewer", "coordinator"),
    ]
    assert {(r["PRI"], r["ATTEMPT"], r["DELIVERED"], r["ACK"]) for r in rows} == {
        ("5", "1", "yes", "-")  # step messages ask for no acknowledgement
    }
    assert [r["ID"] for r in rows] == [m.id for m in messages_of(orc.database_url, result.id)]


def test_a_message_acked_by_some_recipients_shows_who_acked_which_attempt_and_who_did_not(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    # writer acknowledges at once, reviewer only the copy published again, critic has no handler
    yard.failing.add("reviewer")
    message_id = yard.publish("writer", "reviewer", "critic")
    yard.deliver_all()
    time.sleep(TIMEOUT_S * 1.5)
    yard.failing.clear()
    sweeper = yard.orc.ack_sweeper()
    assert sweeper is not None and sweeper.sweep()["republished"] == 1
    yard.deliver_all()

    assert cli.main(["messages", yard.run_id]) == 0

    (row,) = [r for r in _table(capsys.readouterr().out) if r["ID"] == message_id]
    assert row["ACK"] == "acked 2/3 (writer@1, reviewer@2; critic: dead-lettered)"
    assert (row["TYPE"], row["SENDER"], row["TO"]) == (
        "notification",
        "writer",
        "writer,reviewer,critic",
    )
    assert (row["ATTEMPT"], row["DELIVERED"]) == ("2", "yes")
    (logged,) = [m for m in messages_of(yard.orc.database_url, yard.run_id) if m.id == message_id]
    assert logged.acks == (
        RecipientAck("writer", AckState.ACKNOWLEDGED, 1),
        RecipientAck("reviewer", AckState.ACKNOWLEDGED, 2),
        RecipientAck("critic", AckState.DEAD_LETTERED),
    )


def test_a_recipient_that_has_not_acknowledged_yet_is_shown_waiting(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = yard.publish("writer", "reviewer")
    yard.bus.queue.clear()  # on the queue, not delivered yet

    assert cli.main(["messages", yard.run_id]) == 0

    (row,) = [r for r in _table(capsys.readouterr().out) if r["ID"] == message_id]
    assert row["ACK"] == "acked 0/2 (writer: waiting, reviewer: waiting)"
    assert row["DELIVERED"] == "no"


def test_the_messages_command_fails_saying_so_for_a_run_not_in_the_database(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["messages", "no-such-run"]) == cli.ExitCode.NOT_FOUND

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no workflow run with id 'no-such-run'" in captured.err


# -- agentyard deadletters -------------------------------------------------------------------------


def _poison(yard: Yard) -> None:
    DeadLetters(yard.orc.database_url).record(
        task="agent.writer", queue="agent.writer", reason="not JSON:\n{oops", body=b"{oops"
    )


def test_the_deadletters_command_lists_the_latest_dead_letters_newest_first(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = yard.publish("critic")
    yard.deliver_all()  # critic has no handler: dead-lettered
    _poison(yard)

    assert cli.main(["deadletters"]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == "2 dead letter(s), newest first (at most 50):"
    poison, critic = _table(out)
    assert (poison["MESSAGE"], poison["RECIPIENT"], poison["REPUBLISHED"]) == ("-", "-", "no")
    assert poison["TASK / QUEUE"] == "agent.writer" and poison["REASON"] == "not JSON: {oops"
    assert (critic["MESSAGE"], critic["RECIPIENT"]) == (message_id, "critic")
    assert critic["ID"] == yard.dead_letter_for(message_id, "critic")
    assert "has no handler for bus messages" in critic["REASON"]

    assert cli.main(["deadletters", "--limit", "1"]) == 0
    assert [r["ID"] for r in _table(capsys.readouterr().out)] == [poison["ID"]]


def test_the_deadletters_command_says_when_there_are_none(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deadletters"]) == 0
    assert capsys.readouterr().out == "no dead letters\n"


def test_republishing_a_dead_letter_queues_a_copy_for_its_recipient_as_the_next_attempt(
    yard: Yard,
) -> None:
    message_id = yard.publish("writer", "critic")
    yard.deliver_all()
    letter_id = yard.dead_letter_for(message_id, "critic")

    done = republish(yard.orc.bus, yard.orc.database_url, letter_id)

    assert (done.message_id, done.recipient, done.attempt, done.sent) == (
        message_id,
        "critic",
        2,
        True,
    )
    [(recipient, copy)] = yard.bus.queue
    assert (recipient, copy.id, copy.attempt, copy.payload) == (
        "critic",
        message_id,
        2,
        {"draft": 1},
    )
    assert yard.row(message_id).attempt == 2
    (letter,) = DeadLetters(yard.orc.database_url).latest()
    assert letter.republished_at is not None
    # The recipient is awaited again: no longer dead-lettered.
    (logged,) = [m for m in messages_of(yard.orc.database_url, yard.run_id) if m.id == message_id]
    assert logged.acks[1] == RecipientAck("critic", AckState.WAITING)


def test_the_deadletters_command_republishes_with_the_team_and_says_what_it_did(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = yard.publish("critic", requires_ack=False)
    yard.deliver_all()
    letter_id = yard.dead_letter_for(message_id, "critic")

    assert cli.main(["deadletters", "unit:orc", "--republish", letter_id]) == 0

    assert capsys.readouterr().out == (
        f"published message {message_id} again to critic as attempt 2 (priority 5); "
        f"dead letter {letter_id} is marked republished\n"
    )
    [(recipient, copy)] = yard.bus.queue
    assert (recipient, copy.id, copy.attempt) == ("critic", message_id, 2)
    assert cli.main(["deadletters"]) == 0
    (row,) = _table(capsys.readouterr().out)
    assert row["REPUBLISHED"] != "no"


def test_republishing_a_dead_letter_twice_is_refused(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = yard.publish("critic")
    yard.deliver_all()
    letter_id = yard.dead_letter_for(message_id, "critic")
    republish(yard.orc.bus, yard.orc.database_url, letter_id)
    yard.bus.queue.clear()

    with pytest.raises(InvalidRequest, match="was published again at"):
        republish(yard.orc.bus, yard.orc.database_url, letter_id)
    assert cli.main(["deadletters", "unit:orc", "--republish", letter_id]) == cli.ExitCode.USAGE

    assert f"dead letter {letter_id!r} was published again at" in capsys.readouterr().err
    assert not yard.bus.queue
    assert yard.row(message_id).attempt == 2


def test_republishing_a_poison_dead_letter_that_names_no_message_is_refused(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    _poison(yard)
    (letter,) = DeadLetters(yard.orc.database_url).latest()

    assert cli.main(["deadletters", "unit:orc", "--republish", letter.id]) == cli.ExitCode.USAGE

    assert "is not an agentyard message on record" in capsys.readouterr().err
    assert not yard.bus.queue
    (still,) = DeadLetters(yard.orc.database_url).latest()
    assert still.republished_at is None


def test_republishing_a_dead_letter_that_does_not_exist_is_refused(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deadletters", "unit:orc", "--republish", "nope"]) == cli.ExitCode.NOT_FOUND
    assert "no dead letter 'nope'" in capsys.readouterr().err


def test_a_message_acknowledged_after_it_was_dead_lettered_is_not_sent_again(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = yard.publish("critic")
    yard.deliver_all()
    letter_id = yard.dead_letter_for(message_id, "critic")
    yard.orc.bus.acknowledge(message_id, "critic")

    assert cli.main(["deadletters", "unit:orc", "--republish", letter_id]) == 0

    assert "was not sent: critic acknowledged it meanwhile" in capsys.readouterr().out
    assert not yard.bus.queue


def test_republishing_without_the_team_is_a_usage_error_that_says_the_team_is_needed(
    yard: Yard, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deadletters", "--republish", "some-id"]) == cli.ExitCode.USAGE
    assert "needs the team" in capsys.readouterr().err
