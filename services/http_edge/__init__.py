"""The HTTP edge both services share: problem details, request ids, and the request guard.

Everything here sits between the ASGI server and a service's routes and knows nothing of the
log or the verifier: RFC 9457 problem bodies (``problems``), the ``X-Request-Id`` of each request
(``request_ids``), what a database outage looks like from the driver (``outages``), and the
guard every request passes first (``guard``): a body cap before anything is read, text that
PostgreSQL cannot store refused at the door, and no exception answered with a bare 500.
"""
