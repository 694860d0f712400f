"""Django test app (gunicorn), settings and URLs in one module."""

from __future__ import annotations

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="test-only",
    MIDDLEWARE=["rune_fast.middleware.django.RuneDjangoMiddleware"],
    RUNE_GUARD="django_app.guard",
    INSTALLED_APPS=[],
)
django.setup()

from common import decision_json, make_guard, principal_from  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from rune_fast.middleware import rule  # noqa: E402

guard = make_guard(lambda req: principal_from(req.headers.get))


@rule(exempt=True)
def health(request):  # type: ignore[no-untyped-def]
    return JsonResponse({"ok": True})


@csrf_exempt
@rule(action='Action::"read"', resource='Document::"{doc_id}"', methods=("GET",))
@rule(action='Action::"delete"', resource='Document::"{doc_id}"', hide=True, methods=("DELETE",))
def doc(request, doc_id):  # type: ignore[no-untyped-def]
    if request.method == "DELETE":
        return JsonResponse({"deleted": doc_id})
    return JsonResponse({"doc": doc_id, **decision_json(request.rune)})


@csrf_exempt
def whoami(request):  # type: ignore[no-untyped-def]
    return JsonResponse(decision_json(request.rune))


urlpatterns = [
    path("health", health),
    path("docs/<str:doc_id>", doc),
    path("whoami", whoami),
]

application = get_wsgi_application()
