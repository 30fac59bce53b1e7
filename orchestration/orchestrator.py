"""``Orchestrator``: the one place where a team, the database, the bus and Celery meet.

A team module builds one at import time, registers its agents and workflows, and exposes
``orc.celery`` so that ``celery -A team worker`` finds the app. The same object enqueues
workflows (``submit``) and reattaches to runs (``run``) from any process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog
from celery import Celery
from opentelemetry.trace import SpanKind
from redis import Redis, RedisError

from bus import priorities
from bus.ack_sweeper import AckSweeper
from bus.broker_view import BrokerView
from bus.brokers import RABBITMQ, BrokerContents, RabbitMQQueues, broker_for
from bus.dead_letters import DeadLetters
from bus.envelope import COORDINATOR, AgentMessage, is_step_request
from bus.inbox import Delivery, Inbox, MessageHandler, Registration
from bus.publisher import Bus
from bus.routing import ACK_SWEEP_TASK, COORDINATOR_QUEUE, SWEEP_TASK
from orchestration.anomalies import AnomalyWatch
from orchestration.approvals import ApprovalDecision, Approvals
from orchestration.breakers import Breakers
from orchestration.budget import Budget
from orchestration.coordinator import Coordinator
from orchestration.costs import rebuild as rebuild_counters
from orchestration.cut_off_calls import CutOffCalls
from orchestration.definitions import Agent, Workflow
from orchestration.input_checks import check_facts, check_input
from orchestration.maintenance import Maintenance
from orchestration.pricing import PriceTable, usd_to_micro
from orchestration.results import WorkflowRun
from orchestration.step_runner import StepRunner
from orchestration.stray_requests import StrayRequests
from orchestration.sweeps import Job, Sweeps
from orchestration.team import Team
from orchestration.trace_queries import RunQueries
from orchestration.workflow.state import RunState
from storage.ack_store import AckStore
from storage.breaker_store import BreakerStore
from storage.budget_store import BudgetStore
from storage.cost_stats_store import CostStatsStore
from storage.db import migrate, open_connections, session_scope
from storage.errors import BrokerUnavailable, InvalidRequest, RunNotFound
from storage.executor import BatchedInserts, transaction
from storage.lease_store import LeaseStore
from storage.models import WorkflowRow, WorkflowStatus, new_id, utcnow
from storage.redis_client import load_scripts, redis_for
from storage.settings import Settings
from storage.subscription_store import SubscriptionStore
from storage.url_checks import without_password
from workers import poison, tracing
from workers.celery_app import make_celery
from workers.lifecycle import WorkerInfo, WorkerLifecycle
from workers.logging import configure_logging
from workers.metrics import WorkerMetrics
from workers.providers.registry import Providers, without_credentials
from workers.tasks import (
    Headers,
    register_agent_task,
    register_coordinator_task,
    register_periodic_task,
)

log = structlog.get_logger(__name__)

WORKFLOW_SWEEP = "workflows"  # the maintenance sweep's lease
ACK_SWEEP = "acks"  # the acknowledgement sweep's
MAX_SUBMIT_MANY = 10_000  # runs one submit_many records in its one transaction


class Orchestrator:
    def __init__(
        self,
        name: str,
        settings: Settings | None = None,
        *,
        bus: Bus | None = None,
        redis: Redis | None = None,
    ) -> None:
        """``bus`` replaces the Celery-backed bus, ``redis`` the client of the shared state (tests
        drive workflows in-process with them)."""
        self.name = name
        self.settings = settings or Settings()
        self.team = Team(name, prices=PriceTable.load(self.settings.prices_file))
        self._lock = threading.Lock()
        self._celery: Celery | None = None
        self._bus: Bus | None = bus
        self._redis = redis
        self._coordinator: Coordinator | None = None
        self._runner: StepRunner | None = None
        self._providers: Providers | None = None
        self._maintenance: Maintenance | None = None
        self._ack_sweeper: AckSweeper | None = None
        self._inbox: Inbox | None = None
        self._metrics: WorkerMetrics | None = None
        self._lifecycle: WorkerLifecycle | None = None
        self._sweeps: Sweeps | None = None
        self._handlers: dict[str, Registration] = {}
        self._ready = False
        configure_logging(self.settings)
        tracing.configure_tracing(self.settings)

    def __repr__(self) -> str:
        return f"Orchestrator({self.name!r}, agents={sorted(self.team.agents)})"

    # -- the team ------------------------------------------------------------------------------

    def register_agent(self, agent: Agent) -> Agent:
        self.team.add_agent(agent)
        if self._celery is not None:
            register_agent_task(self._celery, agent.id, self.deliver)
        return agent

    def on_message(
        self, agent_id: str, *, auto_ack: bool = True
    ) -> Callable[[MessageHandler], MessageHandler]:
        """Decorate the function that receives ``agent_id``'s bus messages (everything but the
        coordinator's step requests)::

            @orc.on_message("reviewer")
            def review_notice(message: AgentMessage) -> None: ...

        With ``auto_ack`` (the default) a message that asks for an acknowledgement is
        acknowledged when the function returns; otherwise call ``orc.bus.acknowledge``."""
        self.team.agent(agent_id)  # refuses an agent that is not registered

        def register(handler: MessageHandler) -> MessageHandler:
            self._handlers[agent_id] = Registration(handler, auto_ack)
            return handler

        return register

    def register_workflow(self, workflow: Workflow) -> Workflow:
        self.team.add_workflow(workflow)
        return workflow

    # -- wiring ----------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.settings.effective_database_url

    @property
    def celery(self) -> Celery:
        with self._lock:
            if self._celery is None:
                app = make_celery(self.name, self.settings)
                for agent_id in self.team.agents:
                    register_agent_task(app, agent_id, self.deliver)
                register_coordinator_task(app, self.deliver_to_coordinator)
                # For `agentyard beat`, which nothing needs: the coordinators sweep on their own.
                register_periodic_task(
                    app,
                    SWEEP_TASK,
                    lambda: self.sweeps().run_due(WORKFLOW_SWEEP),
                    self.settings.sweep_interval_s,
                )
                register_periodic_task(
                    app,
                    ACK_SWEEP_TASK,
                    lambda: self.sweeps().run_due(ACK_SWEEP),
                    self.settings.ack_sweep_interval_s,
                )
                poison.register(app, DeadLetters(self.database_url))
                self._lifecycle = WorkerLifecycle(
                    app,
                    starting=[
                        self._warn_of_agents_without_credentials,
                        self._serve_metrics_as_worker_starts,
                        self.warm_up,
                    ],
                    ready=[self._start_sweeps],
                    stopping=[self._stop_sweeps],
                )
                self._celery = app
            return self._celery

    @property
    def bus(self) -> Bus:
        """The message bus: ``publish``, ``subscribe``, ``unsubscribe``, ``acknowledge``."""
        self.ensure_ready()
        if self._bus is None:
            self._bus = Bus(
                self.celery,
                self.database_url,
                subscriptions=self.subscription_store(),
                acks=self.ack_store(),
                inline_payload_bytes=self.settings.bus_inline_payload_bytes,
                is_recipient=self._is_recipient,
                trace_headers=tracing.headers_for,
                provenance_key=self.settings.provenance_key,
            )
        return self._bus

    def _is_recipient(self, name: str) -> bool:
        return name == COORDINATOR or name in self.team.agents

    def ensure_ready(self) -> None:
        """Create or upgrade the schema once per process (cheap when it is current)."""
        if not self._ready:
            migrate(self.database_url)
            self._ready = True

    def coordinator(self) -> Coordinator:
        if self._coordinator is None:
            self.ensure_ready()
            self._coordinator = Coordinator(self.team, self.bus, self.settings)
        return self._coordinator

    def step_runner(self) -> StepRunner:
        if self._runner is None:
            self.ensure_ready()
            self._providers = Providers(self.settings)
            self._runner = StepRunner(
                self.team,
                self.bus,
                self.coordinator(),
                self._providers,
                self.settings,
                self._budget(),
                self._anomaly_watch(),
                Breakers(self.breaker_store()),
                observer=self.metrics().steps,
                strays=StrayRequests(self.database_url, DeadLetters(self.database_url)),
            )
        return self._runner

    def metrics(self) -> WorkerMetrics:
        """This process's Prometheus metrics of the team: what its steps did, counted here, and
        the state all workers share (breakers, queue depths, reservations), read at each scrape."""
        with self._lock:
            if self._metrics is None:
                self._metrics = WorkerMetrics(
                    agents=lambda: sorted(self.team.agents),
                    queues=self._queues,
                    breakers=self.breaker_store(),
                    budget=self.budget_store(),
                    broker=self._broker_contents(),
                )
            return self._metrics

    def serve_metrics(self, port: int | None = None) -> int | None:
        """Serve /metrics from this process on ``port`` (default ``AGENTYARD_METRICS_PORT``;
        0: any free port). Once per process: later calls return the first one's answer. Returns
        the port it listens on, or None: no port configured, or it could not bind (logged, and
        nothing else stops). Every worker of ``orc.celery`` calls it as it starts."""
        port = self.settings.metrics_port if port is None else port
        metrics = self.metrics()
        if port is None:
            return metrics.port
        return metrics.serve(port)

    def _serve_metrics_as_worker_starts(self, worker: WorkerInfo) -> None:
        if worker.prefork:
            log.warning(
                "metrics.prefork_pool",
                advice="step counts are kept in the pool's child processes, which /metrics does "
                "not see; run agent workers with --pool threads (the default) or solo",
            )
        self.serve_metrics()

    def _warn_of_agents_without_credentials(self, worker: WorkerInfo) -> None:
        """Say at start, not after a run has failed, that this worker's Claude agents cannot
        call their model."""
        served = [agent for agent in self.team.agents.values() if agent.queue in worker.queues]
        stranded = without_credentials(self.settings, served)
        if stranded:
            log.warning(
                "worker.agents_without_credentials",
                agents=stranded,
                advice="their steps will fail: set AGENTYARD_ANTHROPIC_API_KEY, or run "
                "`agentyard stub-anthropic` and set "
                "AGENTYARD_ANTHROPIC_BASE_URL=http://127.0.0.1:8765 to run them offline",
            )

    def warm_up(self, worker: WorkerInfo) -> None:
        """Build what the first messages of a worker serving ``worker.queues`` need, before it
        takes one: the schema check, the step runner and its providers (the SDK's clients and
        models, rehearsed with one call answered in-process), pooled database connections,
        the Lua scripts on Redis, a broker connection. A restarted pod's first calls then cost
        what later ones do. Off with ``AGENTYARD_WORKER_WARMUP=false``; a prefork worker's pool
        processes build their own as they go (connections do not cross a fork)."""
        if not self.settings.worker_warmup or worker.prefork:
            return
        started = time.perf_counter()
        self.ensure_ready()
        agents = [agent for agent in self.team.agents.values() if agent.queue in worker.queues]
        if agents:
            self.step_runner()
            assert self._providers is not None
            self._providers.warm(agents)
        if COORDINATOR_QUEUE in worker.queues:
            self.coordinator()
            self.maintenance()
        opened = open_connections(self.database_url, worker.concurrency)
        redis_clients = {id(c): c for c in (self._shared_state(), self._broker_client()) if c}
        scripts = sum(load_scripts(client) for client in redis_clients.values())
        with self.celery.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=3)
        log.info(
            "worker.warmed_up",
            agents=[agent.id for agent in agents],
            database_connections=opened,
            lua_scripts=scripts,
            seconds=round(time.perf_counter() - started, 3),
        )

    def sweeps(self) -> Sweeps:
        """The sweeps this process does while it holds their leases (see ``sweeps.py``)."""
        with self._lock:
            if self._sweeps is None:
                client, prefix = self._shared_state(), self.settings.redis_key_prefix
                leases = None if client is None else LeaseStore(client, self.name, prefix)
                self._sweeps = Sweeps(
                    [
                        Job(WORKFLOW_SWEEP, self.settings.sweep_interval_s, self._sweep),
                        Job(ACK_SWEEP, self.settings.ack_sweep_interval_s, self._sweep_acks),
                    ],
                    leases,
                    self.settings.sweep_lease_s,
                )
            return self._sweeps

    def _start_sweeps(self, worker: WorkerInfo) -> None:
        if COORDINATOR_QUEUE in worker.queues:
            self.ensure_ready()
            self.sweeps().start()

    def _stop_sweeps(self, worker: WorkerInfo) -> None:
        if self._sweeps is not None:
            self._sweeps.stop()

    def _queues(self) -> list[str]:
        """Every queue of the team: one per agent, and the coordinator's."""
        return [*(agent.queue for _, agent in sorted(self.team.agents.items())), COORDINATOR_QUEUE]

    def maintenance(self) -> Maintenance:
        if self._maintenance is None:
            self.ensure_ready()
            self._maintenance = Maintenance(
                self.bus,
                self.settings,
                self._broker_contents(),
                team=self.name,
                cut_off=CutOffCalls(self.team, self._budget()),
            )
        return self._maintenance

    def inbox(self) -> Inbox:
        if self._inbox is None:
            self.ensure_ready()
            self._inbox = Inbox(self.bus, DeadLetters(self.database_url), self._handlers)
        return self._inbox

    def ack_sweeper(self) -> AckSweeper | None:
        """The sweep of overdue acknowledgements (None when no shared Redis is configured)."""
        if self._ack_sweeper is None:
            acks = self.bus.acks
            if acks is None:
                return None
            self.ensure_ready()
            self._ack_sweeper = AckSweeper(
                self.bus,
                acks,
                DeadLetters(self.database_url),
                self.database_url,
                self.settings.ack_max_attempts,
            )
        return self._ack_sweeper

    def close(self) -> None:
        """Stop the sweeps and release connections (model providers, the broker pool). The
        object stays usable."""
        if self._sweeps is not None:
            self._sweeps.stop()
        if self._providers is not None:
            self._providers.close()
            self._providers = None
            self._runner = None
        if self._celery is not None:
            self._celery.close()

    def budget_store(self) -> BudgetStore | None:
        """Where spend caps are kept: the shared Redis (None when none is configured)."""
        client = self._shared_state()
        if client is None:
            return None
        return BudgetStore(client, team=self.name, key_prefix=self.settings.redis_key_prefix)

    def _budget(self) -> Budget:
        store = self.budget_store()
        if store is None:
            return Budget(None, self.team.prices)
        return Budget(
            store,
            self.team.prices,
            restore=lambda: rebuild_counters(self.database_url, self.team, store),
        )

    def ack_store(self) -> AckStore | None:
        """Where the acknowledgements awaited are kept (None when no Redis is configured)."""
        client = self._shared_state()
        if client is None:
            return None
        return AckStore(client, team=self.name, key_prefix=self.settings.redis_key_prefix)

    def subscription_store(self) -> SubscriptionStore | None:
        """Who subscribed to which message type (None when no Redis is configured)."""
        client = self._shared_state()
        if client is None:
            return None
        return SubscriptionStore(client, team=self.name, key_prefix=self.settings.redis_key_prefix)

    def breaker_store(self) -> BreakerStore | None:
        """Where the agents' circuit breakers are kept (None when no Redis is configured)."""
        client = self._shared_state()
        if client is None:
            return None
        return BreakerStore(client, team=self.name, key_prefix=self.settings.redis_key_prefix)

    def _anomaly_watch(self) -> AnomalyWatch | None:
        client = self._shared_state()
        if client is None:
            return None
        store = CostStatsStore(client, team=self.name, key_prefix=self.settings.redis_key_prefix)
        return AnomalyWatch(store, self.settings, self.name)

    def _shared_state(self) -> Redis | None:
        """The Redis of the state all workers share (None when none is configured)."""
        if self._redis is not None:
            return self._redis
        url = self.settings.redis_url or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return None
        return redis_for(url)

    def _broker_client(self) -> Redis | None:
        """The broker's Redis (None when the broker is not Redis)."""
        broker = self.settings.effective_broker_url or ""
        if not broker.startswith(("redis://", "rediss://")):
            return None
        return redis_for(broker)

    def _broker_view(self) -> BrokerView | None:
        """The broker's contents, when the broker is Redis (the lost-request check needs it)."""
        client = self._broker_client()
        return None if client is None else BrokerView(client, self.settings.redis_key_prefix)

    def _broker_contents(self) -> BrokerContents | None:
        """What the broker holds, on either broker (the metrics, and the sweep's check for
        requests recorded but in no queue)."""
        if broker_for(self.settings.effective_broker_url) is RABBITMQ:
            return RabbitMQQueues(lambda: self.celery.connection_for_read())
        return self._broker_view()

    def deliver(
        self, recipient: str, message: AgentMessage, headers: Headers | None = None
    ) -> Delivery | None:
        """What ``recipient``'s worker does with a message: run the step a request names, or
        hand a bus message to the agent's handler, in the trace context the message brought."""
        with tracing.continued(headers, message.workflow_id):
            if is_step_request(message):
                self.step_runner().run(message)
                return None
            with tracing.span(
                f"message {recipient}",
                {
                    "agent.id": recipient,
                    "workflow.id": message.workflow_id,
                    "messaging.message.id": message.id,
                    "messaging.message.type": message.type.value,
                    "messaging.message.attempt": message.attempt,
                },
                kind=SpanKind.CONSUMER,
            ):
                return self.inbox().deliver(recipient, message)

    def deliver_to_coordinator(self, message: AgentMessage, headers: Headers | None = None) -> None:
        """What the coordinator's worker does with a message: look at its run again."""
        if not message.workflow_id:
            return
        with (
            tracing.continued(headers, message.workflow_id),
            tracing.span("advance", {"workflow.id": message.workflow_id}),
        ):
            self.coordinator().advance(message.workflow_id, delivered=message.id)

    def _sweep(self) -> None:
        self.maintenance().sweep()

    def _sweep_acks(self) -> None:
        sweeper = self.ack_sweeper()
        if sweeper is not None:
            sweeper.sweep()

    # -- the user's API ----------------------------------------------------------------------------

    def submit(
        self,
        workflow: str,
        input: str,
        priority: int = priorities.DEFAULT,
        *,
        facts: Sequence[str] | None = None,
    ) -> WorkflowRun:
        """Enqueue one run of ``workflow``; returns at once with a handle on the run. ``facts``
        is ground truth its checks may read (``RunView.facts``)."""
        definition, given_facts = self._checked(workflow, [input], priority, facts)
        run, row = self._new_run(definition, input, priority, given_facts)
        coordinator = self.coordinator()
        with tracing.submit_span(run.id, definition.name):
            with transaction(self.database_url) as tx:
                # The first decision (dispatch the first step) commits with the run itself.
                decision = coordinator.start(tx, run, definition.graph, row)
            unsent = coordinator.after_commit(decision)
        if unsent:
            raise BrokerUnavailable(
                f"run {run.id} is recorded, but the broker did not take its first request "
                f"({unsent[0].error}); a coordinator's sweep dispatches it once the broker "
                f"answers (AGENTYARD_LOST_REQUEST_AFTER_S after it was sent). Follow it with "
                f"orc.run({run.id!r}), and check AGENTYARD_REDIS_URL",
                run_id=run.id,
            )
        log.info(
            "workflow.submitted", workflow_id=run.id, workflow=definition.name, priority=priority
        )
        return WorkflowRun(run.id, self.database_url)

    def submit_many(
        self,
        workflow: str,
        inputs: Sequence[str],
        priority: int = priorities.DEFAULT,
        *,
        facts: Sequence[str] | None = None,
    ) -> list[WorkflowRun]:
        """Enqueue one run of ``workflow`` per item of ``inputs`` (at most ``MAX_SUBMIT_MANY``),
        in their order: every run and its first decision recorded in ONE transaction (all of
        them, or none), then their first requests sent through one connection to the broker.
        Returns a handle on each run, in the order of ``inputs``. ``facts`` go with every run.
        What ``submit`` refuses, this refuses before anything is written."""
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise InvalidRequest(
                f"submit_many takes a list of inputs, one per run, got {type(inputs).__name__}; "
                "for one run, call submit"
            )
        if len(inputs) > MAX_SUBMIT_MANY:
            raise InvalidRequest(
                f"submit_many takes at most {MAX_SUBMIT_MANY} inputs at once, got {len(inputs)}: "
                "submit them in batches"
            )
        if not inputs:
            self._checked(workflow, inputs, priority, facts, ready=False)
            return []
        definition, given_facts = self._checked(workflow, inputs, priority, facts)
        coordinator = self.coordinator()
        started = []
        with transaction(self.database_url) as tx:
            batched = BatchedInserts(tx)  # each table's rows in one round trip
            for input in inputs:
                run, row = self._new_run(definition, input, priority, given_facts)
                started.append((run, coordinator.start(batched, run, definition.graph, row)))
            batched.flush()
        unsent = []
        with self.bus.batched():  # their first requests in a few round trips
            for run, decision in started:
                with tracing.submit_span(run.id, definition.name):
                    unsent += coordinator.after_commit(decision)
        log.info(
            "workflows.submitted", workflow=definition.name, runs=len(started), priority=priority
        )
        if unsent:
            raise BrokerUnavailable(
                f"{len(started)} runs are recorded, but the broker did not take "
                f"{len(unsent)} of their first requests ({unsent[0].error}); a coordinator's "
                "sweep dispatches them once the broker answers (AGENTYARD_LOST_REQUEST_AFTER_S "
                "after they were sent). Check AGENTYARD_REDIS_URL"
            )
        return [WorkflowRun(run.id, self.database_url) for run, _ in started]

    def _checked(
        self,
        workflow: str,
        inputs: Sequence[str],
        priority: int,
        facts: Sequence[str] | None,
        *,
        ready: bool = True,
    ) -> tuple[Workflow, list[str] | None]:
        """What runs of ``workflow`` are submitted with, each refused before anything is
        written: the workflow, the priority, every input, the facts; then (``ready``) the
        schema made and the broker answering. Returns the workflow and the facts as kept."""
        definition = self.team.workflow(workflow)
        priorities.check(priority)
        for input in inputs:
            check_input(workflow, input, self.settings.max_input_chars)
        given_facts = (
            None if facts is None else check_facts(workflow, facts, self.settings.max_input_chars)
        )
        if ready:
            self.ensure_ready()
            self._check_broker()
        return definition, given_facts

    def _new_run(
        self, definition: Workflow, input: str, priority: int, facts: list[str] | None
    ) -> tuple[RunState, dict[str, object]]:
        """A run of ``definition`` to be started now, and its row's other columns."""
        now = utcnow()
        run = RunState(
            id=new_id(),
            name=definition.name,
            status=WorkflowStatus.PENDING.value,
            priority=priority,
            input=input,
            budget_micro=None
            if definition.budget_usd is None
            else usd_to_micro(definition.budget_usd),
            deadline_at=None
            if definition.deadline_s is None
            else now + timedelta(seconds=definition.deadline_s),
            created_at=now,
        )
        row: dict[str, object] = {
            "team": self.name,
            "cost_micro": 0,
            "created_at": now,
            "updated_at": now,
            "facts": facts,
        }
        return run, row

    def _check_broker(self) -> None:
        """Refuse to record a run whose requests cannot be sent: the broker must answer first
        (a wrong URL, a database number Redis does not have, a Redis that is down)."""
        if broker_for(self.settings.effective_broker_url) is RABBITMQ:
            self._check_rabbitmq()
            return
        client = self._broker_client()
        if client is None:
            return
        try:
            client.ping()
        except RedisError as exc:
            url = without_password(self.settings.effective_broker_url or "")
            raise BrokerUnavailable(
                f"cannot reach the broker at {url} ({type(exc).__name__}: {exc}); nothing was "
                "recorded. Check AGENTYARD_REDIS_URL (or AGENTYARD_BROKER_URL) and that Redis "
                "is running there"
            ) from None

    def _check_rabbitmq(self) -> None:
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:  # kombu raises the transport's own errors
            url = without_password(self.settings.effective_broker_url or "")
            raise BrokerUnavailable(
                f"cannot reach the broker at {url} ({type(exc).__name__}: {exc}); nothing was "
                "recorded. Check AGENTYARD_BROKER_URL and that RabbitMQ is running there"
            ) from None

    @property
    def approvals(self) -> Approvals:
        """What this team's runs wait for a person to decide: ``orc.approvals.pending()``."""
        self.ensure_ready()
        return Approvals(self.database_url, self.name, coordinator=self.coordinator)

    def approve(
        self,
        run_id: str,
        gate: str,
        *,
        by: str,
        note: str | None = None,
        subject_hash: str | None = None,
        scope: str | None = None,
    ) -> ApprovalDecision:
        """Approve what ``gate`` of run ``run_id`` waits to pass on, as ``by``; the run goes on
        with exactly that text. Refused (``ApprovalRefused``) unless the gate waits, or when
        ``subject_hash`` (its first 8 characters or more) is not the hash of what it would
        approve; ``scope`` names the frame when the gate waits in several (a fan-out's)."""
        return self.approvals.approve(
            run_id, gate, by=by, note=note, subject_hash=subject_hash, scope=scope
        )

    def reject(
        self,
        run_id: str,
        gate: str,
        *,
        by: str,
        note: str | None = None,
        subject_hash: str | None = None,
        scope: str | None = None,
    ) -> ApprovalDecision:
        """Reject what ``gate`` of run ``run_id`` waits to pass on, as ``by``: the run ends
        ``rejected``, its error naming the gate, ``by`` and ``note``."""
        return self.approvals.reject(
            run_id, gate, by=by, note=note, subject_hash=subject_hash, scope=scope
        )

    @property
    def runs(self) -> RunQueries:
        """This team's runs as the trace records tell them: ``orc.runs.trace(run_id)``,
        ``orc.runs.where_agent_cost_over("writer", 0.05)``, ``orc.runs.slower_than(30)``."""
        self.ensure_ready()
        return RunQueries(self.database_url, self.name)

    def run(self, run_id: str) -> WorkflowRun:
        """Reattach to a run by id, from any process."""
        self.ensure_ready()
        with session_scope(self.database_url) as session:
            if session.get(WorkflowRow, run_id) is None:
                raise RunNotFound(f"no workflow run with id {run_id!r} in this database")
        return WorkflowRun(run_id, self.database_url)
