"""The response cache survives a reopen and keys are canonical."""

from __future__ import annotations

from factory.cache import ResponseCache, request_key
from factory.teachers.base import TeachResult


def test_put_get_persists_across_reopen(tmp_path):
    path = tmp_path / "state" / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put_many([TeachResult("k1", "one", 10, 3), TeachResult("k2", "two", 11, 4),
                        TeachResult("k3", "", error="boom")])
    with ResponseCache(path) as cache:
        found = cache.get_many(["k1", "k2", "k3", "k4"])
        assert set(found) == {"k1", "k2"}
        assert found["k1"].text == "one" and found["k1"].completion_tokens == 3
        assert found["k1"].cached
        assert len(cache) == 2


def test_request_key_is_canonical():
    a = request_key(messages=[{"role": "user", "content": "hi"}], sampling={"seed": 1, "t": 0.5})
    b = request_key(sampling={"t": 0.5, "seed": 1}, messages=[{"content": "hi", "role": "user"}])
    c = request_key(messages=[{"role": "user", "content": "hi"}], sampling={"seed": 2, "t": 0.5})
    assert a == b != c
