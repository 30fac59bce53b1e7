import pytest

from storage.errors import ConfigurationError, Overloaded, ProviderTimeout, RateLimited
from workers.providers.base import ChatMessage, ModelRequest
from workers.providers.offline import OfflineModel, OfflineProvider


def _request(
    model: str = "offline:echo",
    key: str = "step:1",
    text: str = "the telegraph",
    max_tokens: int = 1024,
    timeout_s: float = 5.0,
) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are a researcher. Be brief.",
        messages=(ChatMessage("user", text),),
        max_tokens=max_tokens,
        timeout_s=timeout_s,
        request_key=key,
    )


def test_the_same_request_gets_the_same_answer_and_usage() -> None:
    provider = OfflineProvider()
    first, second = provider.complete(_request()), provider.complete(_request())
    assert first == second
    assert "the telegraph" in first.text


def test_usage_grows_with_the_prompt_like_a_real_tokenizer() -> None:
    provider = OfflineProvider()
    short = provider.complete(_request(text="a" * 40)).usage
    long = provider.complete(_request(text="a" * 4000)).usage
    assert short.input_tokens > 0 and short.output_tokens > 0
    assert long.input_tokens - short.input_tokens == (4000 - 40) // 4


def test_the_answer_is_cut_at_max_tokens() -> None:
    response = OfflineProvider().complete(_request(max_tokens=5))
    assert response.usage.output_tokens == 5
    assert response.stop_reason == "max_tokens"


def test_fail_first_fails_the_first_attempts_and_lets_the_next_through() -> None:
    provider = OfflineProvider()
    model = "offline:echo?fail=overloaded&fail_first=2"
    for attempt in (1, 2):
        with pytest.raises(Overloaded):
            provider.complete(_request(model, key=f"s:{attempt}"))
    assert provider.complete(_request(model, key="s:3")).text


def test_a_failure_rate_is_deterministic_per_attempt_and_roughly_right() -> None:
    provider = OfflineProvider()
    model = "offline:echo?fail=rate_limited&fail_rate=0.3"
    outcomes = []
    for i in range(400):
        try:
            provider.complete(_request(model, key=f"s{i}:1"))
            outcomes.append(True)
        except RateLimited as exc:
            assert exc.retryable and exc.retry_after_s is not None
            outcomes.append(False)
    assert 0.2 < outcomes.count(False) / len(outcomes) < 0.4
    again = []
    for i in range(400):
        try:
            provider.complete(_request(model, key=f"s{i}:1"))
            again.append(True)
        except RateLimited:
            again.append(False)
    assert again == outcomes


def test_a_model_slower_than_the_timeout_times_out() -> None:
    with pytest.raises(ProviderTimeout):
        OfflineProvider().complete(_request("offline:echo?latency=0.2", timeout_s=0.05))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("offline:nope", "unknown offline profile"),
        ("offline:echo?fail=meteor", "unknown failure"),
        ("offline:echo?speed=3", "unknown option"),
        ("offline:echo?latency=fast", "bad number"),
    ],
)
def test_a_bad_offline_model_name_says_what_is_wrong(model: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OfflineModel.parse(model)


def test_slow_takes_about_half_a_second_by_default() -> None:
    assert OfflineModel.parse("offline:slow").latency_s == 0.5
    assert OfflineModel.parse("offline:echo").latency_s == 0.0
