from bus.routing import ADVANCE_TASK, SWEEP_TASK
from orchestration import Agent, Orchestrator, Settings
from workers.celery_app import transport_options


def _orc(name: str, settings: Settings) -> Orchestrator:
    orc = Orchestrator(name, settings)
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    return orc


def test_two_orchestrators_in_one_process_keep_their_tasks_apart(unit_settings: Settings) -> None:
    # A shared Celery task would be copied into every app, and one team would run the other's code.
    first, second = _orc("first", unit_settings), _orc("second", unit_settings)

    for name in (ADVANCE_TASK, SWEEP_TASK, "agent.writer"):
        assert first.celery.tasks[name] is not second.celery.tasks[name]
        assert first.celery.tasks[name].app is first.celery


def test_an_agent_registered_after_the_app_exists_still_gets_its_task(
    unit_settings: Settings,
) -> None:
    orc = _orc("late", unit_settings)
    app = orc.celery
    orc.register_agent(Agent(id="reviewer", model="offline:echo"))
    assert "agent.reviewer" in app.tasks


def test_the_app_is_durable_json_only_and_keeps_no_results(unit_settings: Settings) -> None:
    conf = _orc("conf", unit_settings).celery.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_ignore_result
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]


def test_every_producer_and_worker_gets_the_same_priority_steps_and_prefix() -> None:
    options = transport_options(Settings(redis_key_prefix="team-a:", _env_file=None))
    assert options["priority_steps"] == list(range(10))
    assert options["sep"] == ":" and options["queue_order_strategy"] == "priority"
    assert options["global_keyprefix"] == "team-a:"


def test_on_rabbitmq_every_queue_is_declared_with_priorities_and_publishes_are_confirmed() -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/0",
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        database_url="postgresql://u@h/db",
        _env_file=None,
    )
    conf = _orc("rabbit", settings).celery.conf
    assert conf.task_queue_max_priority == 9
    assert conf.broker_transport_options == {"confirm_publish": True}
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1
    app = _orc("rabbit2", settings).celery
    # the coordinator's queue, and one Celery makes on the fly for an agent, alike
    for name in ("coordinator", "agent.writer"):
        assert app.amqp.queues[name].queue_arguments == {"x-max-priority": 9}
