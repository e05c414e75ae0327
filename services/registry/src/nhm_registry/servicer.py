"""gRPC edge of the registry service: proto <-> domain only.

Admin and service keys act for the tenant named in the call's ``x-nhm-tenant-id`` metadata (or, where the
request has one, its ``tenant_id``). Writes that carry a ``request_id`` answer a retry with the first answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from nhm.registry.v1 import registry_pb2 as pb
from nhm.registry.v1 import registry_pb2_grpc
from nhm_platform.auth import Principal, current_principal
from nhm_platform.idempotency import fingerprint
from nhm_registry import messages
from nhm_registry.commands import Page, Update
from nhm_registry.service import Registry
from nhm_registry.unit_of_work import RequestKey, UnitOfWork

M = TypeVar("M", bound=Message)


class RegistryServiceServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def _write(self, method: str, request: Any, response_type: type[M],
               work: Callable[[UnitOfWork, Principal], M], remember: Callable[[M], M] = lambda r: r) -> M:
        """Run work in one transaction with the request id's claim; a retry gets the stored answer."""
        principal = current_principal()
        key = RequestKey(request.request_id, method, fingerprint(request)) if request.request_id else None
        with self._registry.write(principal, key) as uow:
            if uow.replay is not None:
                return response_type.FromString(uow.replay)
            response = work(uow, principal)
            uow.remember(remember(response))
            return response

    # Numbers

    def CreateNumber(self, request: pb.CreateNumberRequest, context: grpc.ServicerContext) -> pb.CreateNumberResponse:
        given = messages.number_input(request.number)

        def work(uow: UnitOfWork, principal: Principal) -> pb.CreateNumberResponse:
            created = self._registry.create_numbers(uow, principal, [given], batch=False)
            return pb.CreateNumberResponse(number=messages.number(created[0]))
        return self._write("CreateNumber", request, pb.CreateNumberResponse, work)

    def BatchCreateNumbers(self, request: pb.BatchCreateNumbersRequest,
                           context: grpc.ServicerContext) -> pb.BatchCreateNumbersResponse:
        given = [messages.number_input(spec) for spec in request.numbers]

        def work(uow: UnitOfWork, principal: Principal) -> pb.BatchCreateNumbersResponse:
            created = self._registry.create_numbers(uow, principal, given, batch=True)
            return pb.BatchCreateNumbersResponse(numbers=[messages.number(n) for n in created])
        return self._write("BatchCreateNumbers", request, pb.BatchCreateNumbersResponse, work)

    def GetNumber(self, request: pb.GetNumberRequest, context: grpc.ServicerContext) -> pb.GetNumberResponse:
        found = self._registry.get_number(current_principal(), request.phone_number)
        return pb.GetNumberResponse(number=messages.number(found))

    def BatchGetNumbers(self, request: pb.BatchGetNumbersRequest,
                        context: grpc.ServicerContext) -> pb.BatchGetNumbersResponse:
        result = self._registry.batch_get_numbers(current_principal(), request.phone_numbers)
        return pb.BatchGetNumbersResponse(numbers=[messages.number(n) for n in result.found],
                                          not_found_phone_numbers=result.not_found)

    def ListNumbers(self, request: pb.ListNumbersRequest, context: grpc.ServicerContext) -> pb.ListNumbersResponse:
        numbers, token = self._registry.list_numbers(current_principal(), messages.number_query(request))
        return pb.ListNumbersResponse(numbers=[messages.number(n) for n in numbers], next_page_token=token)

    def UpdateNumber(self, request: pb.UpdateNumberRequest, context: grpc.ServicerContext) -> pb.UpdateNumberResponse:
        given = messages.number_update_input(request.number)
        update = Update(tuple(request.update_mask.paths), request.etag or request.number.etag)

        def work(uow: UnitOfWork, principal: Principal) -> pb.UpdateNumberResponse:
            return pb.UpdateNumberResponse(number=messages.number(
                self._registry.update_number(uow, principal, given, update)))
        return self._write("UpdateNumber", request, pb.UpdateNumberResponse, work)

    def RetireNumber(self, request: pb.RetireNumberRequest, context: grpc.ServicerContext) -> pb.RetireNumberResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.RetireNumberResponse:
            return pb.RetireNumberResponse(number=messages.number(self._registry.retire_number(
                uow, principal, request.phone_number, request.reason, request.etag)))
        return self._write("RetireNumber", request, pb.RetireNumberResponse, work)

    def TransitionNumber(self, request: pb.TransitionNumberRequest,
                         context: grpc.ServicerContext) -> pb.TransitionNumberResponse:
        given = messages.transition_input(request)

        def work(uow: UnitOfWork, principal: Principal) -> pb.TransitionNumberResponse:
            number, transition = self._registry.transition_number(uow, principal, given)
            return pb.TransitionNumberResponse(number=messages.number(number),
                                               transition=messages.transition(transition))
        return self._write("TransitionNumber", request, pb.TransitionNumberResponse, work)

    def ListNumberTransitions(self, request: pb.ListNumberTransitionsRequest,
                              context: grpc.ServicerContext) -> pb.ListNumberTransitionsResponse:
        transitions, token = self._registry.list_transitions(current_principal(), request.phone_number,
                                                             Page(request.page_size, request.page_token))
        return pb.ListNumberTransitionsResponse(transitions=[messages.transition(t) for t in transitions],
                                                next_page_token=token)

    # Campaigns

    def CreateCampaign(self, request: pb.CreateCampaignRequest,
                       context: grpc.ServicerContext) -> pb.CreateCampaignResponse:
        given = messages.campaign_input(request.campaign)

        def work(uow: UnitOfWork, principal: Principal) -> pb.CreateCampaignResponse:
            return pb.CreateCampaignResponse(campaign=messages.campaign(
                self._registry.create_campaign(uow, principal, given)))
        return self._write("CreateCampaign", request, pb.CreateCampaignResponse, work)

    def GetCampaign(self, request: pb.GetCampaignRequest, context: grpc.ServicerContext) -> pb.GetCampaignResponse:
        found = self._registry.get_campaign(current_principal(), request.campaign_id)
        return pb.GetCampaignResponse(campaign=messages.campaign(found))

    def ListCampaigns(self, request: pb.ListCampaignsRequest,
                      context: grpc.ServicerContext) -> pb.ListCampaignsResponse:
        campaigns, token = self._registry.list_campaigns(current_principal(),
                                                         Page(request.page_size, request.page_token))
        return pb.ListCampaignsResponse(campaigns=[messages.campaign(c) for c in campaigns], next_page_token=token)

    def UpdateCampaign(self, request: pb.UpdateCampaignRequest,
                       context: grpc.ServicerContext) -> pb.UpdateCampaignResponse:
        given = messages.campaign_input(request.campaign)
        update = Update(tuple(request.update_mask.paths), request.etag or request.campaign.etag)

        def work(uow: UnitOfWork, principal: Principal) -> pb.UpdateCampaignResponse:
            return pb.UpdateCampaignResponse(campaign=messages.campaign(
                self._registry.update_campaign(uow, principal, given, update)))
        return self._write("UpdateCampaign", request, pb.UpdateCampaignResponse, work)

    def DeleteCampaign(self, request: pb.DeleteCampaignRequest,
                       context: grpc.ServicerContext) -> pb.DeleteCampaignResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.DeleteCampaignResponse:
            self._registry.delete_campaign(uow, principal, request.campaign_id, request.etag)
            return pb.DeleteCampaignResponse()
        return self._write("DeleteCampaign", request, pb.DeleteCampaignResponse, work)

    def AssignNumbers(self, request: pb.AssignNumbersRequest,
                      context: grpc.ServicerContext) -> pb.AssignNumbersResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.AssignNumbersResponse:
            return pb.AssignNumbersResponse(campaign=messages.campaign(self._registry.assign_numbers(
                uow, principal, request.campaign_id, list(request.phone_numbers))))
        return self._write("AssignNumbers", request, pb.AssignNumbersResponse, work)

    def UnassignNumbers(self, request: pb.UnassignNumbersRequest,
                        context: grpc.ServicerContext) -> pb.UnassignNumbersResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.UnassignNumbersResponse:
            return pb.UnassignNumbersResponse(campaign=messages.campaign(self._registry.unassign_numbers(
                uow, principal, request.campaign_id, list(request.phone_numbers))))
        return self._write("UnassignNumbers", request, pb.UnassignNumbersResponse, work)

    # Tenants and keys

    def CreateTenant(self, request: pb.CreateTenantRequest, context: grpc.ServicerContext) -> pb.CreateTenantResponse:
        given = messages.tenant_input(request.tenant)

        def work(uow: UnitOfWork, principal: Principal) -> pb.CreateTenantResponse:
            return pb.CreateTenantResponse(tenant=messages.tenant(self._registry.create_tenant(uow, principal, given)))
        return self._write("CreateTenant", request, pb.CreateTenantResponse, work)

    def GetTenant(self, request: pb.GetTenantRequest, context: grpc.ServicerContext) -> pb.GetTenantResponse:
        return pb.GetTenantResponse(tenant=messages.tenant(
            self._registry.get_tenant(current_principal(), request.tenant_id)))

    def UpdateTenant(self, request: pb.UpdateTenantRequest, context: grpc.ServicerContext) -> pb.UpdateTenantResponse:
        given = messages.tenant_input(request.tenant)
        update = Update(tuple(request.update_mask.paths), request.etag or request.tenant.etag)

        def work(uow: UnitOfWork, principal: Principal) -> pb.UpdateTenantResponse:
            return pb.UpdateTenantResponse(tenant=messages.tenant(
                self._registry.update_tenant(uow, principal, given, update)))
        return self._write("UpdateTenant", request, pb.UpdateTenantResponse, work)

    def CreateApiKey(self, request: pb.CreateApiKeyRequest, context: grpc.ServicerContext) -> pb.CreateApiKeyResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.CreateApiKeyResponse:
            key, secret = self._registry.create_api_key(uow, principal, request.name,
                                                        messages.api_key_role(request.role), request.tenant_id)
            return pb.CreateApiKeyResponse(api_key=messages.api_key(key), secret=secret)

        # The secret is shown once and never stored: a retry gets the key without it.
        return self._write("CreateApiKey", request, pb.CreateApiKeyResponse, work,
                           remember=lambda r: pb.CreateApiKeyResponse(api_key=r.api_key))

    def ListApiKeys(self, request: pb.ListApiKeysRequest, context: grpc.ServicerContext) -> pb.ListApiKeysResponse:
        keys, token = self._registry.list_api_keys(current_principal(), request.include_revoked,
                                                   Page(request.page_size, request.page_token))
        return pb.ListApiKeysResponse(api_keys=[messages.api_key(k) for k in keys], next_page_token=token)

    def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: grpc.ServicerContext) -> pb.RevokeApiKeyResponse:
        def work(uow: UnitOfWork, principal: Principal) -> pb.RevokeApiKeyResponse:
            return pb.RevokeApiKeyResponse(api_key=messages.api_key(
                self._registry.revoke_api_key(uow, principal, request.api_key_id)))
        return self._write("RevokeApiKey", request, pb.RevokeApiKeyResponse, work)

    # Change feed

    def WatchChanges(self, request: pb.WatchChangesRequest,
                     context: grpc.ServicerContext) -> Iterator[pb.WatchChangesResponse]:
        for item in self._registry.watch(current_principal(), request.after_revision, request.tenant_id,
                                         request.snapshot, context.is_active):
            yield messages.watch_response(item)
