import random

from orchestration.context import EarlierStep, Exchange, build_messages, compose_prompt, extract
from orchestration.retry import Backoff


def test_extract_keeps_whole_first_sentences_within_the_limit() -> None:
    text = "First sentence here. Second one is longer than that. Third."
    assert extract(text, limit=40) == "First sentence here."
    assert extract("short", limit=40) == "short"


def test_the_first_step_sees_the_workflow_input_alone() -> None:
    assert compose_prompt("topic", "topic", 0, []) == "topic"


def test_a_later_step_sees_the_request_a_summary_of_older_steps_and_the_previous_output() -> None:
    earlier = [
        EarlierStep(0, "researcher", "Facts one. Facts two."),
        EarlierStep(1, "writer", "The article."),
    ]
    prompt = compose_prompt("the telegraph", "The article.", 2, earlier)
    assert prompt.startswith("Request:\nthe telegraph")
    assert "step 1 (researcher): Facts one. Facts two." in prompt
    assert prompt.endswith("Output of the previous step (writer):\nThe article.")
    assert "step 2 (writer)" not in prompt  # the previous step is given whole, not summarized


def test_the_history_is_the_last_five_exchanges_then_the_prompt() -> None:
    history = [Exchange(f"q{i}", f"a{i}") for i in range(8)]
    messages = build_messages(history, "now")
    assert [m.content for m in messages] == [
        "q3",
        "a3",
        "q4",
        "a4",
        "q5",
        "a5",
        "q6",
        "a6",
        "q7",
        "a7",
        "now",
    ]
    assert [m.role for m in messages[:2]] == ["user", "assistant"]


def test_backoff_grows_exponentially_within_its_cap() -> None:
    backoff = Backoff(base_s=1, cap_s=10)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = [backoff.delay_s(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter reaches near the ceiling


def test_a_providers_retry_after_wins_but_is_capped() -> None:
    backoff = Backoff(base_s=1, cap_s=30)
    assert backoff.delay_s(1, retry_after_s=12.5) == 12.5
    assert backoff.delay_s(1, retry_after_s=500) == 30
