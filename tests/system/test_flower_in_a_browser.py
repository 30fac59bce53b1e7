"""`agentyard flower` seen in a real browser (the system's Chromium, driven by Playwright), with
real worker processes running the sample team through the real SDK against the stub server.

Flower must ask for its password, see the agents' tasks as they run, count the team's queues
(under its key prefix on Redis, in its virtual host on RabbitMQ), and show ids where a task's
arguments are (task list, task page, worker page): never the workflow's input, an agent's system
prompt, the API key or its own password. It runs on both brokers. Screenshots go to
test-artifacts/ at the project root.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.brokers import RABBITMQ, broker_for
from orchestration import Orchestrator, WorkflowStatus
from tests.support import free_port
from tests.system.conftest import ON_BOTH_BROKERS, ROOT, TEAM, started_workers, stub_env
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]

# The system's Chromium (Debian's package; `make test` installs it), never a downloaded one.
CHROMIUM = Path(os.environ.get("AGENTYARD_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
FLOWER_COMMAND = [sys.executable, "-m", "orchestration.cli", "flower", TEAM]

USER = "watcher"
PASSWORD = f"pw-{uuid.uuid4().hex}"
API_KEY = f"sk-ant-flower-test-{uuid.uuid4().hex}"
TOPIC = f"the confidential history of the optical telegraph {uuid.uuid4().hex[:8]}"
SYSTEM_PROMPTS = [f"You are the {agent}." for agent in ("researcher", "writer", "reviewer")]
SECRETS = [TOPIC, *SYSTEM_PROMPTS, API_KEY, PASSWORD]
WAIT_S = 60.0


@dataclass(frozen=True)
class FlowerProcess:
    """`agentyard flower` running: where it serves, and its process id."""

    base: str
    pid: int


@dataclass(frozen=True)
class Row:
    """One task as Flower's task list shows it."""

    name: str
    uuid: str
    state: str


def _chromium() -> Path:
    """The system's Chromium; missing, the test skips on a laptop and fails under CI."""
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM}; `make test` installs it"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


def _until(
    what: str, check: Callable[[], Any], timeout_s: float = WAIT_S, seen: Callable[[], Any] = str
) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` never happened,
    and what ``seen`` says was there instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout_s:.0f}s; last seen: {seen()}")


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), refused.headers


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def extra_env(stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "AGENTYARD_ANTHROPIC_API_KEY": API_KEY,
        # A call held by the stub must still be under way when the browser looks.
        "SAMPLE_TEAM_TIMEOUT_S": "600",
        # Runs left unfinished here belong to a team no later test sweeps.
        "SAMPLE_TEAM_NAME": "flower-view",
    }


@pytest.fixture
def workers(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator, stub: StubAnthropicServer
) -> Iterator[None]:
    """The coordinator; the researcher and reviewer; the writer alone, on one thread."""
    with started_workers(
        orc,
        env,
        tmp_path,
        ("--coordinator", "--concurrency", "2", "--name", "coordinator"),
        ("--agents", "researcher,reviewer", "--concurrency", "2", "--name", "agents"),
        ("--agents", "writer", "--concurrency", "1", "--name", "writer"),
    ):
        try:
            yield
        finally:
            stub.stop()  # releases the call it holds, so that the writer stops at once


@pytest.fixture
def flower(tmp_path: Path, env: dict[str, str], workers: None) -> Iterator[FlowerProcess]:
    """`agentyard flower` on a free port, with basic auth from the environment; its base URL."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*FLOWER_COMMAND, "--port", str(port), "--address", "127.0.0.1"],
            env={**os.environ, **env, "AGENTYARD_FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.poll() is not None:
            pytest.fail(f"agentyard flower exited early:\n{log_path.read_text()[-3000:]}")
        try:
            return _get(f"{base}/healthcheck")[0] == 200
        except OSError:
            return False

    try:
        _until("Flower answering on its port", serving)
        yield FlowerProcess(base, process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        context = chromium.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()
            chromium.close()


def _rows(page: Any, base: str) -> list[Row]:
    """The tasks Flower lists now (a fresh load of its task page, table filled)."""
    page.goto(f"{base}/tasks")
    page.wait_for_load_state("networkidle")
    rows = []
    for row in page.locator("#tasks-table tbody tr").all():
        cells = [cell.strip() for cell in row.locator("td").all_inner_texts()]
        if len(cells) >= 3:
            rows.append(Row(name=cells[0], uuid=cells[1], state=cells[2]))
    return rows


def _agent_rows(page: Any, base: str) -> list[Row]:
    return sorted(
        (row for row in _rows(page, base) if row.name.startswith("agent.")),
        key=lambda row: (row.name, row.state),
    )


def _queue_lengths(base: str) -> dict[str, int | None]:
    """Messages waiting per queue, as Flower counts them for its Broker page; None for a queue
    not counted yet (RabbitMQ's management API leaves a queue's count out until its statistics
    have been collected once, every few seconds). Flower lists the queues its last inspection
    of the workers found; asking it to inspect again makes sure it has one (a worker busy at
    Flower's start may not have answered the first)."""
    _get(f"{base}/workers?refresh=1&json=1", (USER, PASSWORD))
    status, body, _ = _get(f"{base}/api/queues/length", (USER, PASSWORD))
    assert status == 200, body
    return {queue["name"]: queue.get("messages") for queue in json.loads(body)["active_queues"]}


def _counted(lengths: dict[str, int | None], *queues: str) -> bool:
    return all(lengths.get(queue) is not None for queue in queues)


def _screenshot(page: Any, name: str) -> None:
    """The whole page, transitions finished, to test-artifacts/``name``."""
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")


def _assert_shows_no_secret(html: str, page_name: str) -> None:
    for secret in SECRETS:
        assert secret not in html, f"Flower's {page_name} shows {secret!r}"


def _names_and_states(rows: list[Row]) -> list[tuple[str, str]]:
    return [(row.name, row.state) for row in rows]


@ON_BOTH_BROKERS
def test_flower_asks_for_its_password_and_shows_the_agents_tasks_by_ids_only(
    browser: Any, flower: FlowerProcess, orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    page, base, auth = browser, flower.base, (USER, PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)

    # Flower refuses a visitor without the password (or with a wrong one), lets one with it in,
    # and its command line, which `ps` shows, does not hold the password
    status, _, headers = _get(f"{base}/tasks")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="flower"'
    assert _get(f"{base}/tasks", (USER, "wrong"))[0] == 401
    assert _get(f"{base}/tasks", auth)[0] == 200
    command_line = Path(f"/proc/{flower.pid}/cmdline").read_bytes().decode()
    assert "flower" in command_line and PASSWORD not in command_line

    # Given Flower hears the three workers' events (their heartbeats)
    def workers_online() -> bool:
        status, body, _ = _get(f"{base}/workers?json=1", auth)
        return status == 200 and sum(bool(w.get("status")) for w in json.loads(body)["data"]) == 3

    _until("Flower hearing from the three workers", workers_online)

    # When a run's researcher answers at once, and its writer's call is held by the provider
    stub.script([{}, {"delay_s": 600}])
    run = orc.submit("research", TOPIC)

    def researcher_done_writer_running() -> list[Row]:
        rows = _agent_rows(page, base)
        wanted = [("agent.researcher", "SUCCESS"), ("agent.writer", "STARTED")]
        return rows if _names_and_states(rows) == wanted else []

    [researcher, writer] = _until(
        "the researcher's task succeeding and the writer's running, in Flower",
        researcher_done_writer_running,
        seen=lambda: _agent_rows(page, base),
    )
    # (other runs may call the provider only once the writer's call has taken the held answer)
    _until("the writer's call reaching the provider", lambda: stub.stats()["scripted_left"] == 0)

    # And two more runs wait for the one writer, at two priorities (two of the queue's lists)
    more = [orc.submit("research", f"{TOPIC} (again)", priority=p) for p in (7, 2)]
    # RabbitMQ's count (its management API's) includes the request the writer holds; Redis's
    # lists hold only those that wait.
    counted = 3 if broker_for(orc.settings.effective_broker_url) is RABBITMQ else 2
    lengths = _until(
        "Flower counting the requests for the writer",
        lambda: (
            (got := _queue_lengths(base)).get("agent.writer") == counted
            and _counted(got, "agent.researcher", "agent.reviewer")
            and got
        ),
        seen=lambda: _queue_lengths(base),
    )
    assert lengths["agent.researcher"] == 0 and lengths["agent.reviewer"] == 0
    page.goto(f"{base}/broker")
    page.wait_for_load_state("networkidle")
    _screenshot(page, "flower-broker.png")

    # Then the task list shows every agent task by name and state, and no secret
    def all_six() -> list[Row]:
        rows = _agent_rows(page, base)
        wanted = [("agent.researcher", "SUCCESS")] * 3 + [
            ("agent.writer", "PENDING"),
            ("agent.writer", "PENDING"),
            ("agent.writer", "STARTED"),
        ]
        return rows if _names_and_states(rows) == wanted else []

    _until(
        "three researcher tasks done and three writer tasks, in Flower",
        all_six,
        seen=lambda: _agent_rows(page, base),
    )
    _screenshot(page, "flower-tasks.png")
    _assert_shows_no_secret(page.content(), "task list")

    # And the first researcher task's page shows ids where its arguments are, and no secret
    page.locator(f"a[href$='/task/{researcher.uuid}']").first.click()
    page.wait_for_load_state("networkidle")
    _screenshot(page, "flower-task.png")
    shown = page.locator("#task-page").inner_text()
    step = run.result().steps[0]
    assert page.locator(".task-name-value").inner_text().strip() == "agent.researcher"
    assert f"'workflow': '{run.id}'" in shown and f"'step': '{step.id}'" in shown
    _assert_shows_no_secret(page.content(), "task page")

    # And the writer's worker page lists the call it runs by ids, and no secret
    def worker_page() -> bool:
        page.goto(f"{base}/worker/writer@{socket.gethostname()}")
        page.wait_for_load_state("networkidle")
        return page.locator("#worker-tab-tasks").count() == 1

    _until("Flower showing the writer's worker page", worker_page)
    page.locator("#worker-tab-tasks").click()
    page.locator("#tab-tasks.show").wait_for()
    _screenshot(page, "flower-worker.png")
    active = page.locator("#tab-tasks table", has_text="Active tasks").inner_text()
    assert writer.uuid in active and f"'workflow': '{run.id}'" in active
    _assert_shows_no_secret(page.content(), "worker page")

    # The runs are still under way (the provider holds the writer's call), none failed
    assert run.result().status is WorkflowStatus.RUNNING
    assert all(m.result().status is WorkflowStatus.RUNNING for m in more)
