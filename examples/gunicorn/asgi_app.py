"""The same app for uvicorn workers (``gunicorn -k uvicorn.workers.UvicornWorker``).

    gunicorn -c gunicorn.conf.py -k uvicorn.workers.UvicornWorker asgi_app:app
"""

import memexport
from memexport.exporters.multiprocess import make_asgi_app

responses = memexport.cache({}, name="responses")
metrics = make_asgi_app()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/metrics":
        await metrics(scope, receive, send)
        return
    key = scope.get("query_string", b"").decode() or "default"
    scratch = memexport.cache({}, name="request_scratch")
    for i in range(10):
        scratch[i] = key * i
    body = responses.get(key)
    if body is None:
        body = f"answer for {key}\n".encode()
        responses[key] = body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
