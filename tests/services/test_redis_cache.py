"""config.cache.RedisCache, the production cache backend, against a real Redis: it keeps one
client per connection pool instead of Django's one per call, and sharing that client between
threads loses nothing."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from config.cache import RedisCache


@pytest.fixture
def cache(redis_url):
    prefix = f"lrb-test-cache-{uuid.uuid4().hex}"
    backend = RedisCache(redis_url, {"KEY_PREFIX": prefix})
    yield backend
    client = backend._cache.get_client(write=True)
    for key in client.scan_iter(f"{prefix}:*"):  # only this test's keys: the broker shares it
        client.delete(key)
    backend.close()


def test_one_client_is_kept_where_django_builds_one_per_call(cache, redis_url):
    client = cache._cache
    assert client.get_client() is client.get_client()
    assert client.get_client(write=True) is client.get_client("key", write=True)
    django_client = DjangoRedisCache(redis_url, {})._cache
    assert django_client.get_client() is not django_client.get_client()  # what this avoids


def test_every_operation_goes_through(cache):
    assert cache.add("a", 1) and not cache.add("a", 2)
    assert cache.get("a") == 1
    cache.set_many({"b": {"x": [1, 2]}, "c": "text"}, 60)
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": 1, "b": {"x": [1, 2]}, "c": "text"}
    assert cache.incr("a", 4) == 5
    cache.delete_many(["b", "c"])
    assert cache.get("b", "gone") == "gone"
    assert cache.touch("a", 1)


def test_threads_sharing_the_client_count_exactly(cache):
    cache.set("counter", 0)
    barrier = threading.Barrier(8)
    errors = []

    def count() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                cache.incr("counter")
        except Exception as error:  # reported below, not swallowed
            errors.append(error)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.get("counter") == 1600
