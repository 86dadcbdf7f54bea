"""One API object shared by threads: each thread's requests go through its own connection."""

import threading

from keyward.google.thread_http import PerThreadHttp


class Connection:
    def __init__(self):
        self.requests: list[str] = []
        self.closed = False

    def request(self, uri, method="GET", **kwargs):
        self.requests.append(uri)
        return ({"status": "200"}, b"{}")

    def close(self):
        self.closed = True


def test_each_thread_sends_through_its_own_connection_and_close_closes_them_all():
    made: list[Connection] = []
    lock = threading.Lock()

    def make():
        with lock:
            made.append(Connection())
            return made[-1]

    http = PerThreadHttp(make)
    barrier = threading.Barrier(4, timeout=10)

    def work(n):
        barrier.wait()  # all four threads alive at once: four connections
        for i in range(3):
            http.request(f"/t{n}/{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(made) == 4
    assert sorted(tuple(c.requests) for c in made) == [
        tuple(f"/t{n}/{i}" for i in range(3)) for n in range(4)]
    http.close()
    assert all(c.closed for c in made)
    http.request("/again")  # a request after close opens a fresh connection
    assert len(made) == 5 and not made[-1].closed


def test_per_thread_sources_close_a_source_shared_by_every_thread_once():
    from keyward.usage.monitoring_clients import PerThreadSources

    class Client:
        closes = 0

        def close(self):
            Client.closes += 1

    class Source:
        client = Client()

    shared = Source()
    sources = PerThreadSources(lambda: shared)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(sources.get())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == [shared] * 4
    sources.close()
    sources.close()  # nothing made since: nothing closed twice
    assert Client.closes == 1
