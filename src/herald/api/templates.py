"""``/v1/templates``: store, read, list, delete and preview templates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from herald.api.deps import HeraldDep, json_content
from herald.api.errors import ERRORS, JSON_ERRORS
from herald.domain.channels import Channel
from herald.pipeline.views import as_datetime
from herald.templates.model import (
    NAME_PATTERN,
    EngineName,
    StoredTemplate,
    TemplateBody,
    TemplateSource,
)

router = APIRouter(prefix="/v1", tags=["templates"])

TemplateName = Annotated[str, Path(pattern=NAME_PATTERN, description="The template's name.")]


class TemplateView(BaseModel):
    name: str
    version: int = Field(description="Increases with every PUT; 0 for folder and built-in ones.")
    source: TemplateSource = Field(description="Where it comes from; the database overrides.")
    engine: EngineName
    description: str | None = None
    channels: list[Channel]
    locales: list[str]
    created_at: datetime | None = None
    variants: dict[Channel, dict[str, str]] | None = Field(
        default=None, description="Only on `GET /v1/templates/{name}`."
    )
    locale_variants: dict[str, dict[Channel, dict[str, str]]] | None = Field(
        default=None, description="Per locale, its variants; only on `GET /v1/templates/{name}`."
    )
    partials: dict[str, str] | None = Field(
        default=None, description="Only on `GET /v1/templates/{name}`."
    )


class TemplateList(BaseModel):
    items: list[TemplateView]


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"
    )


class TemplateDeleted(BaseModel):
    name: str
    deleted: bool = True


class RenderedVariants(BaseModel):
    """Each channel's rendered parts (a channel the template has no variant for is absent)."""

    email: dict[str, str] | None = Field(default=None, description="`subject`, `html`, `text`.")
    sms: dict[str, str] | None = Field(default=None, description="`body`.")
    push: dict[str, str] | None = Field(default=None, description="`title`, `body`.")
    chat: dict[str, str] | None = Field(default=None, description="`title`, `body`.")
    webhook: dict[str, dict[str, Any]] | None = Field(
        default=None, description="`payload`: the JSON object."
    )


def _view(template: StoredTemplate, *, detail: bool) -> TemplateView:
    body = template.body
    return TemplateView(
        name=template.name,
        version=template.version,
        source=template.source,
        engine=body.engine,
        description=body.description,
        channels=list(body.variants),
        locales=sorted(body.locales),
        created_at=as_datetime(template.created_at) if template.created_at else None,
        variants=body.variants if detail else None,
        locale_variants=body.locales if detail else None,
        partials=body.partials if detail else None,
    )


@router.put(
    "/templates/{name}",
    response_model=TemplateView,
    response_model_exclude_none=True,
    responses=JSON_ERRORS,
    dependencies=[Depends(json_content)],
    summary="Store a new version of a template",
)
async def put_template(name: TemplateName, body: TemplateBody, herald: HeraldDep) -> TemplateView:
    """Every part is compiled first: a syntax error is a 422 naming the part and line.
    Notifications accepted from now on use the new version."""
    return _view(await herald.put_template(name, body), detail=False)


@router.get(
    "/templates",
    response_model=TemplateList,
    response_model_exclude_none=True,
    responses=ERRORS,
    summary="Every template: stored, from the templates folder, and built in",
)
async def list_templates(herald: HeraldDep) -> TemplateList:
    return TemplateList(items=[_view(t, detail=False) for t in await herald.list_templates()])


@router.get(
    "/templates/{name}",
    response_model=TemplateView,
    response_model_exclude_none=True,
    responses=ERRORS,
    summary="A template with its sources",
)
async def get_template(
    name: TemplateName,
    herald: HeraldDep,
    version: Annotated[int | None, Query(ge=1, description="An earlier stored version.")] = None,
) -> TemplateView:
    return _view(await herald.get_template(name, version=version), detail=True)


@router.delete(
    "/templates/{name}",
    response_model=TemplateDeleted,
    responses=ERRORS,
    summary="Delete a stored template",
)
async def delete_template(name: TemplateName, herald: HeraldDep) -> TemplateDeleted:
    """Its versions stay readable with `?version=` (notifications name them); a folder or
    built-in template of the same name is used again."""
    await herald.delete_template(name)
    return TemplateDeleted(name=name)


@router.post(
    "/templates/{name}/render",
    response_model=RenderedVariants,
    response_model_exclude_none=True,
    responses=JSON_ERRORS,
    dependencies=[Depends(json_content)],
    summary="Render every variant without sending",
)
async def render_template(
    name: TemplateName, body: RenderRequest, herald: HeraldDep
) -> RenderedVariants:
    """`{"email": {"subject", "html", "text"}, "sms": {"body"}, …}`: what would be sent."""
    rendered = await herald.render_template(name, body.data, locale=body.locale)
    return RenderedVariants.model_validate(rendered)
