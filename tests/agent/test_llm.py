"""The LLM interface: rules; the OpenAI-compatible client on a fake 127.0.0.1 server; errors name step and URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memarena.errors import InvalidConfigError
from memarena.families.agent.llm import (
    ChatClient,
    Decision,
    LLMConfig,
    LLMDeciders,
    LLMError,
    ParsedFact,
    RuleDeciders,
    first_sentence_summary,
    make_deciders,
    parse_fact,
    rule_decide,
    whitespace_tokens,
)


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }


class FakeServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1: records each request, answers the queued (status, body)s."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(
                    {"path": self.path, "json": json.loads(body), "auth": self.headers.get("Authorization")}
                )
                status, reply = server.replies.pop(0) if server.replies else (500, b"no reply queued")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, content: str | dict[str, Any], status: int = 200) -> None:
        body = content if isinstance(content, dict) else completion(content)
        self.replies.append((status, json.dumps(body).encode()))

    def reply_raw(self, raw: bytes, status: int = 200) -> None:
        self.replies.append((status, raw))

    def llm(self, **extra: Any) -> dict[str, Any]:
        """The ``agent_memory.llm`` mapping that points at this server."""
        return {"enabled": True, "base_url": self.base_url, "model": "fake-1", "retry_backoff_s": 0.0, **extra}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def test_rule_summary_is_the_first_sentence_cut_to_whitespace_tokens() -> None:
    assert (
        first_sentence_summary("I moved to Lisbon last month. The tram is great!", 24)
        == "I moved to Lisbon last month."
    )
    assert first_sentence_summary("  one two three four five", 3) == "one two three"
    assert first_sentence_summary("", 5) == ""
    assert whitespace_tokens(" a  b\tc\n") == 3


def test_parse_fact_subject_relation_value_and_negation() -> None:
    assert parse_fact("I live in Lisbon.") == ParsedFact("i", "live in", "lisbon", False)
    assert parse_fact("I no longer live in Lisbon!") == ParsedFact("i", "live in", "lisbon", True)
    assert parse_fact("I'm not working as a nurse") == ParsedFact("i", "working as", "a nurse", True)
    assert parse_fact("My favourite food is sushi.") == ParsedFact("my favourite food", "is", "sushi", False)
    assert parse_fact("The tram is great.") is None


def test_rule_decide_each_event() -> None:
    held = [("0", "My dog is called Rex."), ("1", "I live in Lisbon.")]
    assert rule_decide(held, "i live in lisbon") == Decision("NONE", "1", "I live in Lisbon.")
    assert rule_decide(held, "I live in Porto.") == Decision("UPDATE", "1", "I live in Porto.", "I live in Lisbon.")
    assert rule_decide(held, "I don't live in Lisbon.") == Decision("DELETE", "1", "I live in Lisbon.")
    assert rule_decide(held, "I don't live in Oslo, I never did.").event == "DELETE"  # same subject+relation
    assert rule_decide(held, "I play the cello.") == Decision("ADD", "", "I play the cello.")
    assert rule_decide([], "I never eat meat.") == Decision("NONE", "", "I never eat meat.")
    assert rule_decide([], "Lovely weather today.") == Decision("ADD", "", "Lovely weather today.")


def test_rules_are_the_default_and_config_keys_are_checked() -> None:
    assert isinstance(make_deciders({}), RuleDeciders)
    assert isinstance(make_deciders({"enabled": False, "model": "m"}), RuleDeciders)
    assert isinstance(make_deciders({"enabled": True}), LLMDeciders)
    with pytest.raises(InvalidConfigError, match=r"config key 'agent_memory.llm.modle' is unknown; known: enabled"):
        make_deciders({"modle": "x"})
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.llm.enabled': expected true or false"):
        make_deciders({"enabled": "yes"})
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.llm.timeout_s': expected a number >= 0"):
        LLMConfig.from_mapping({"timeout_s": -1})
    rules = RuleDeciders()
    assert rules.should_recall("q", [], 0.5, 0.5) and not rules.should_recall("q", [], 0.49, 0.5)
    assert rules.extract_facts("Hi there? I adopted a cat.") == ["I adopted a cat."]


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


def test_request_body_headers_and_content(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("G17_TEST_KEY", "sk-test")
    client = ChatClient(LLMConfig.from_mapping(server.llm(api_key_env="G17_TEST_KEY", max_tokens=64)))
    server.reply("hello")
    assert client.complete([{"role": "user", "content": "hi"}], "summarize") == "hello"
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer sk-test"
    assert req["json"] == {
        "model": "fake-1",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "max_tokens": 64,
    }
    server.reply('```json\n{"facts": ["a"]}\n```')
    assert client.complete_json([{"role": "user", "content": "x"}], "extract_facts") == {"facts": ["a"]}
    assert server.requests[1]["json"]["response_format"] == {"type": "json_object"}
    monkeypatch.delenv("G17_TEST_KEY")
    server.reply("ok")
    client.complete([{"role": "user", "content": "x"}], "s")
    assert server.requests[2]["auth"] is None  # no key: no Authorization header


def test_5xx_is_retried_4xx_is_not(server: FakeServer) -> None:
    client = ChatClient(LLMConfig.from_mapping(server.llm(max_retries=2)))
    server.reply_raw(b"busy", status=503)
    server.reply_raw(b"busy", status=502)
    server.reply("third time")
    assert client.complete([], "summarize") == "third time" and client.calls == 3
    server.reply_raw(b"busy", status=503)
    server.reply_raw(b"busy", status=503)
    server.reply_raw(b"busy", status=503)
    with pytest.raises(
        LLMError, match=rf"LLM step 'decide': POST {server.base_url}/chat/completions failed after 3 tries: HTTP 503"
    ):
        client.complete([], "decide")
    server.reply_raw(b'{"error": "bad key"}', status=401)
    with pytest.raises(LLMError, match=r"'decide'.*failed: HTTP 401.*bad key"):
        client.complete([], "decide")
    assert client.calls == 7  # the 401 was asked once


def test_errors_name_the_step_and_the_url(server: FakeServer) -> None:
    client = ChatClient(LLMConfig.from_mapping(server.llm(max_retries=0)))
    server.reply_raw(b"<html>not json</html>")
    with pytest.raises(
        LLMError, match=rf"'summarize': POST {server.base_url}/chat/completions: the response is not JSON"
    ):
        client.complete([], "summarize")
    server.reply({"choices": []})
    with pytest.raises(LLMError, match=r"'summarize'.*no choices\[0\].message.content"):
        client.complete([], "summarize")
    server.reply("not json at all")
    with pytest.raises(LLMError, match=r"'extract_facts'.*the completion is not JSON"):
        client.complete_json([], "extract_facts")
    down = ChatClient(
        LLMConfig.from_mapping(
            {"base_url": "http://127.0.0.1:9/v1", "max_retries": 1, "retry_backoff_s": 0.0, "timeout_s": 2.0}
        )
    )
    with pytest.raises(
        LLMError, match=r"LLM step 'should_recall': POST http://127.0.0.1:9/v1/chat/completions failed after 2 tries"
    ):
        down.complete([], "should_recall")


def test_llm_deciders_parse_each_step(server: FakeServer) -> None:
    llm = LLMDeciders(ChatClient(LLMConfig.from_mapping(server.llm())))
    server.reply("(B) no")
    assert llm.should_recall("hi", ["earlier"], 0.9, 0.1) is False  # SCM4LLMs: '(B)' in the answer -> no recall
    server.reply("(A) yes")
    assert llm.should_recall("hi", [], 0.0, 0.1) is True
    assert "earlier" in server.requests[0]["json"]["messages"][0]["content"]
    server.reply(json.dumps({"facts": ["Lives in Porto", " "]}))
    assert llm.extract_facts("I live in Porto.") == ["Lives in Porto"]
    memories = [("0", "Lives in Lisbon"), ("1", "Has a cat")]
    server.reply(
        json.dumps(
            {
                "memory": [
                    {"id": "1", "text": "Has a cat", "event": "NONE"},
                    {"id": "0", "text": "Lives in Porto", "event": "UPDATE", "old_memory": "Lives in Lisbon"},
                ]
            }
        )
    )
    assert llm.decide(memories, "Lives in Porto") == Decision("UPDATE", "0", "Lives in Porto", "Lives in Lisbon")
    prompt = server.requests[-1]["json"]["messages"][0]["content"]
    assert '"id": "0", "text": "Lives in Lisbon"' in prompt and "New fact: Lives in Porto" in prompt
    server.reply(json.dumps({"memory": [{"id": "7", "text": "x", "event": "DELETE"}]}))
    with pytest.raises(LLMError, match=r"'decide'.*DELETE names id '7', not one of the memories shown \(0, 1\)"):
        llm.decide(memories, "x")
    server.reply(json.dumps({"facts": "oops"}))
    with pytest.raises(LLMError, match=r"'extract_facts'.*expected"):
        llm.extract_facts("x")
