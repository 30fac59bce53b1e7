"""The asyncio stub server holds hundreds of the real SDK's calls open at once, on one event loop,
counts them in flight, and answers every one still waiting when it stops. (Every endpoint is
also checked on it by ``test_stub_anthropic.py``, whose tests run on both servers.)"""

from __future__ import annotations

import asyncio

from anthropic import AsyncAnthropic

from workers.stub_anthropic_async import AsyncStubServer

CALLS = 300


def test_hundreds_of_calls_wait_at_once_and_stopping_answers_them_all() -> None:
    stub = AsyncStubServer(latency_s=600.0).start()  # no call is answered before the stop

    async def calls() -> list[str]:
        client = AsyncAnthropic(base_url=stub.base_url, api_key="sk-stub", max_retries=0)
        asked = [
            asyncio.create_task(
                client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=16,
                    messages=[{"role": "user", "content": f"question {n}"}],
                )
            )
            for n in range(CALLS)
        ]
        deadline = asyncio.get_running_loop().time() + 120
        while stub.stats()["in_flight"] < CALLS:  # every call has reached the stub, and waits
            assert asyncio.get_running_loop().time() < deadline, stub.stats()
            await asyncio.sleep(0.05)
        await asyncio.to_thread(stub.stop)
        answers = await asyncio.gather(*asked)
        await client.close()
        return [answer.content[0].type for answer in answers]

    try:
        stopped = asyncio.run(calls())
    finally:
        stub.stop()

    assert stopped == ["text"] * CALLS  # every call answered
    stats = stub.stats()
    assert (stats["calls"], stats["in_flight"], stats["in_flight_max"]) == (CALLS, 0, CALLS)
