"""A real OAuth 2.0 / OpenID Connect server for Portcullis interop tests: django-oauth-toolkit.

Starts on 127.0.0.1 with an ephemeral port, creates a user and clients, and prints one JSON line with the
port and the credentials on stdout before serving. Development use only.

With --web-redirect-uri URL it also registers a confidential client `web-client` for the authorization
code flow (PKCE allowed, consent skipped) whose callback is URL, serves a login page at /accounts/login/,
and ends the provider's session at /o/logout/ (OpenID Connect RP-initiated logout).
"""
import json
import logging
import os
import sys
import tempfile
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from jwcrypto import jwk

workdir = tempfile.mkdtemp(prefix="portcullis-dot-")
signing_key = jwk.JWK.generate(kty="RSA", size=2048)
rsa_key = signing_key.export_to_pem(private_key=True, password=None).decode()
# With --jwt-access-tokens, access tokens are RS256 JWTs signed with the OIDC key published in the JWKS.
JWT_ACCESS_TOKENS = "--jwt-access-tokens" in sys.argv
WEB_REDIRECT_URI = sys.argv[sys.argv.index("--web-redirect-uri") + 1] if "--web-redirect-uri" in sys.argv else None
ISSUER = {}
LOGIN_PAGE = """<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>
{% if form.errors %}<p id="error" role="alert">Wrong username or password.</p>{% endif %}
<form method="post">{% csrf_token %}
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<input type="hidden" name="next" value="{{ next }}">
<button id="sign-in" type="submit">Sign in</button></form></body></html>"""

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=False,
    SECRET_KEY="interop-only-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "oauth2_provider",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": ["django.template.context_processors.request"],
            "loaders": [
                ("django.template.loaders.locmem.Loader", {"registration/login.html": LOGIN_PAGE}),
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }],
    LOGIN_URL="/accounts/login/",
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(workdir, "db.sqlite3")}},
    USE_TZ=True,
    OAUTH2_PROVIDER={
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": rsa_key,
        "SCOPES": {"openid": "OpenID Connect", "read": "Read", "write": "Write", "introspection": "Introspect"},
        "DEFAULT_SCOPES": ["read"],
        "ACCESS_TOKEN_EXPIRE_SECONDS": 600,
        "PKCE_REQUIRED": False,
        **({"ACCESS_TOKEN_GENERATOR": "__main__.jwt_access_token"} if JWT_ACCESS_TOKENS else {}),
        "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
        "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
        "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    },
    LOGGING_CONFIG=None,
)
# Request failures the tests provoke on purpose (wrong passwords) are not worth a log line here.
logging.disable(logging.CRITICAL)
django.setup()

from django.urls import include, path  # noqa: E402

from django.contrib.auth import views as auth_views  # noqa: E402

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view()),
]


def jwt_access_token(request, refresh_token=False):
    """An RS256 JWT access token; DOT stores it like any other token (so introspection works too)."""
    import time
    import uuid

    from jwcrypto import jwt

    now = int(time.time())
    claims = {
        "iss": ISSUER["url"],
        "sub": request.user.username if getattr(request, "user", None) else request.client.client_id,
        "client_id": request.client.client_id,
        "scope": " ".join(request.scopes),
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.JWT(header={"alg": "RS256", "kid": signing_key.thumbprint()}, claims=claims)
    token.make_signed_token(signing_key)
    return token.serialize()


def main():
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("alex", password="doe")
    Application = get_application_model()
    creds = {}
    for name, grant in [("gateway", Application.GRANT_CLIENT_CREDENTIALS), ("app", Application.GRANT_CLIENT_CREDENTIALS), ("kong", Application.GRANT_PASSWORD)]:
        secret = f"{name}-secret-0123456789"
        Application.objects.create(
            name=name,
            client_id=f"{name}-client",
            client_secret=secret,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=grant,
            algorithm=Application.RS256_ALGORITHM,
        )
        creds[name] = {"client_id": f"{name}-client", "client_secret": secret}
    if WEB_REDIRECT_URI:
        secret = "web-secret-0123456789"
        Application.objects.create(
            name="web",
            client_id="web-client",
            client_secret=secret,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=WEB_REDIRECT_URI,
            post_logout_redirect_uris=WEB_REDIRECT_URI,
            skip_authorization=True,
            algorithm=Application.RS256_ALGORITHM,
        )
        creds["web"] = {"client_id": "web-client", "client_secret": secret}

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    from django.core.wsgi import get_wsgi_application

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=Server, handler_class=QuietHandler)
    port = httpd.server_address[1]
    ISSUER["url"] = f"http://127.0.0.1:{port}/o"
    print(json.dumps({"port": port, "issuer": f"http://127.0.0.1:{port}/o", "clients": creds, "user": {"username": "alex", "password": "doe"}}), flush=True)
    # Stop when the parent closes our stdin (the test ended or was killed).
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
