"""The API's own endpoints that belong to no app: GET /api/v1/ping/."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class PingView(APIView):
    """Does nothing, through the same middleware, authentication, throttles and renderer as every
    other endpoint: what a request costs before any work (`make bench-http` measures against it), and
    a client's check that its credentials are accepted."""

    @extend_schema(
        responses={
            200: inline_serializer("Ping", fields={"status": serializers.ChoiceField(choices=["ok"])}),
        },
        tags=["service"],
        summary="Check the credentials and reach the API (no-op)",
        description='200 `{"status": "ok"}` to any signed-in caller or API key; reads and writes nothing.',
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
