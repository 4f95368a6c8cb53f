"""The floor beside the live screens' gunicorn row (beile/bench_live.py `_open_screens`): a WSGI
app that answers every request as an idle check is answered (304, the same headers) and does
nothing else. Served by the same gunicorn settings under the same load, it shows what
gunicorn's own HTTP handling costs per request, apart from the check's share. No Django: the
worker imports nothing else."""

HEADERS = [
    ("ETag", '"1764000000000000000"'),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Length", "0"),
]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":  # the bench waits for it (bench_live._start_web)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    start_response("304 Not Modified", HEADERS)
    return [b""]
