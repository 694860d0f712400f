"""The baseline for asv_benchmarks/server_wrk.py: a hello-world Falcon app.

It reads the request body (as the decision point must) and answers a
constant small JSON object, under the same gunicorn configuration.
"""

import falcon


class Hello:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.content_type = "application/json"
        resp.data = b'{"decision":true}'


app = falcon.App()
app.add_route("/hello", Hello())
