"""A small WSGI app instrumented with memexport, for gunicorn (see gunicorn.conf.py).

``GET /work?KEY`` answers from a per-worker response cache and uses a scratch cache created
for the request (a component that comes and goes); ``GET /metrics`` serves the metrics of
every worker, merged.
"""

import memexport
from memexport.exporters.multiprocess import make_wsgi_app

responses = memexport.cache({}, name="responses")  # one per worker, for its lifetime
metrics = make_wsgi_app()


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/metrics":
        return metrics(environ, start_response)
    key = environ.get("QUERY_STRING") or "default"
    scratch = memexport.cache({}, name="request_scratch")  # lives for this request only
    for i in range(10):
        scratch[i] = key * i
    body = responses.get(key)
    if body is None:
        body = f"answer for {key}\n".encode()
        responses[key] = body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
