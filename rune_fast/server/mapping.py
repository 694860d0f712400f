"""AuthZEN's information model mapped onto rune_fast requests, and back.

- subject / resource ``{type, id, properties}`` -> the entity ``type::"id"``;
  its ``properties`` become that entity's attributes for this request only
  (request entities, overriding/extending the bundle's ``attr`` facts).
- action ``{name, properties}`` -> ``Action::"name"``.
- ``context`` -> the request context.

Nothing here decides: it only reshapes validated JSON, so that the AuthZEN and
native endpoints share the engine's semantics exactly.
"""

from __future__ import annotations

from typing import Any, Optional

from ..values import Entity

__all__ = ["to_request", "entity_sources", "authzen_field", "entity_of", "action_of", "request_entities", "entity_json", "action_json", "merge_item"]

ACTION_TYPE = "Action"


def entity_of(obj: dict) -> Entity:
    return Entity(obj["type"], obj["id"])


def action_of(obj: dict) -> Entity:
    return Entity(ACTION_TYPE, obj["name"])


def request_entities(pairs: list[tuple[Entity, Optional[dict]]]) -> Optional[list[dict]]:
    """Request entities for every object that carries non-empty properties.

    The same entity twice (a user reading their own profile) merges the two
    property sets, the later one winning, since the engine refuses a
    duplicated request entity.
    """
    merged: dict[Entity, dict] = {}
    for ent, props in pairs:
        if props:
            if ent in merged:
                merged[ent] = {**merged[ent], **props}
            else:
                merged[ent] = props
    if not merged:
        return None
    return [{"uid": {"type": e.type, "id": e.id}, "attrs": attrs} for e, attrs in merged.items()]


def entity_sources(pairs: list[tuple[str, Entity, Optional[dict]]]) -> list[str]:
    """Which AuthZEN object each request entity of ``request_entities``
    came from, so that an error in ``entities[k].attrs.x`` can be reported
    as ``subject.properties.x`` (the field the client actually sent)."""
    seen: dict[Entity, str] = {}
    for name, ent, props in pairs:
        if props and ent not in seen:
            seen[ent] = name
    return list(seen.values())


def authzen_field(field: Optional[str], sources: list[str], prefix: str = "") -> Optional[str]:
    """Rename an engine field (``entities[k].attrs...``) for the client."""
    if field and field.startswith("entities["):
        k, _, rest = field[len("entities[") :].partition("]")
        if k.isdigit() and int(k) < len(sources):
            rest = rest.lstrip(".")
            if rest.startswith("attrs"):
                rest = "properties" + rest[len("attrs") :]
            field = f"{sources[int(k)]}.{rest}" if rest else sources[int(k)]
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    return field


def to_request(subject: dict, action: dict, resource: dict, context: Optional[dict]) -> tuple:
    """(principal, action, resource, context, entities) for ``engine.authorize``."""
    p = Entity(subject["type"], subject["id"])
    a = Entity(ACTION_TYPE, action["name"])
    r = Entity(resource["type"], resource["id"])
    sp, ap, rp = subject.get("properties"), action.get("properties"), resource.get("properties")
    ents = request_entities([(p, sp), (a, ap), (r, rp)]) if (sp or ap or rp) else None
    return p, a, r, (context or None), ents


def merge_item(defaults: dict, item: dict) -> dict:
    """One evaluation of ``/access/v1/evaluations``: the item's own subject,
    action, resource and context replace the request-level defaults."""
    out = {}
    for key in ("subject", "action", "resource", "context"):
        v = item.get(key, defaults.get(key))
        if v is not None:
            out[key] = v
    return out


def entity_json(e: Any) -> dict:
    return {"type": e.type, "id": e.id}


def action_json(e: Any) -> dict:
    return {"name": e.id}
