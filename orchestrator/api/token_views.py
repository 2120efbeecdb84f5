"""`/tokens`: an organization's API tokens, for its admins: list, issue, revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from core.api.base import TenantScopedMixin
from core.choices import Role
from core.domain_errors import InvalidRequest
from orchestrator.api.token_serializers import (
    IssuedTokenSerializer,
    TokenCreateSerializer,
    TokenSerializer,
)
from orchestrator.models import ApiToken
from orchestrator.services import tokens


@extend_schema(tags=["tokens"])
class TokenViewSet(
    TenantScopedMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Tokens that still work (revoked ones are gone from the list), newest first."""

    queryset = ApiToken.objects.usable().with_standing()
    serializer_class = TokenSerializer
    required_role = Role.ADMIN
    noun = "token"

    @extend_schema(request=TokenCreateSerializer, responses={201: IssuedTokenSerializer})
    def create(self, request):
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service_account = data.get("service_account", "")
        if not service_account and request.auth.is_service_account:
            raise InvalidRequest(
                "A service account has no tokens of its own: name the service account to "
                "issue one for.",
                fields={"service_account": ["required when a service account asks"]},
            )
        token, raw = tokens.issue_token(
            self.organization,
            data["role"],
            user=None if service_account else request.user,
            service_account=service_account,
            name=data["name"],
        )
        issued = tokens.live_tokens(self.organization).get(pk=token.pk)
        body = IssuedTokenSerializer(issued, context={"raw": raw}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        tokens.revoke(ApiToken.objects.filter(pk=self.get_object().pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
