"""Schemathesis hooks for scripts/api_fuzz.sh's stateful run with valid data only (loaded
through SCHEMATHESIS_HOOKS there; a hook cannot tell valid from invalid cases, so the run with
invalid data goes without it).

A login body is drawn either as generated or as the demo user's own credentials, so that some
logins succeed and the stateful phase can follow docs/openapi.yaml's links from a real session
(login -> refresh -> refresh -> logout, with the body-delivered refresh token). The account
endpoints use another user's token, so the wrong current passwords they are sent never
throttle the demo user's logins.
"""

import os

import schemathesis
from hypothesis import strategies as st

DEMO = {"username": os.environ["DEMO_USERNAME"], "password": os.environ["DEMO_PASSWORD"]}


@schemathesis.hook
def flatmap_body(ctx, body):
    if ctx.operation.method.upper() == "POST" and ctx.operation.path == "/auth/login":
        return st.sampled_from([body, DEMO])
    return st.just(body)
