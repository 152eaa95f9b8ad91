"""Template rendering throughput, and what a template adds to accepting a notification.

Run from the repository root: ``python -m bench templates [--repeat 5]``. Prints JSON:

- renders/s of seed 001's order-confirmation template (compiled once, cached), as the HTML
  part alone and as a whole email variant (subject + HTML), in Jinja2 and in Handlebars,
  next to plain unsandboxed Jinja2 on the same template (the floor; on a shared machine
  the ratio is what to read);
- the accept path's preparation per item (no database write): a literal email against
  the same email rendered from a stored template (lookup in the cache + render + prepare).

Best of ``--repeat`` runs, one core.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import jinja2

from herald.domain.channels import Channel
from herald.pipeline.requests import NotificationRequest
from herald.runtime import Herald
from herald.templates.model import TemplateBody
from herald.templates.render import CompiledTemplate

ORDER_HBS = """<h1>Order Confirmation</h1>
<p>Hi {{user.name}},</p>
<p>Your order from {{company}} has been confirmed!</p>

<h2>Order Details</h2>
<ul>
  {{#each order.items}}
    <li>{{this.name}} x {{this.quantity}}</li>
  {{/each}}
</ul>
<p><strong>Total:</strong> ${{order.total}}</p>

{{#if user.preferences.notifications_enabled}}
  <p>You'll receive updates about your order at {{user.email}}</p>
{{/if}}
"""
ORDER_JINJA = """<h1>Order Confirmation</h1>
<p>Hi {{ user.name }},</p>
<p>Your order from {{ company }} has been confirmed!</p>

<h2>Order Details</h2>
<ul>
  {% for item in order.items %}
    <li>{{ item.name }} x {{ item.quantity }}</li>
  {% endfor %}
</ul>
<p><strong>Total:</strong> ${{ order.total }}</p>

{% if user.preferences.notifications_enabled %}
  <p>You'll receive updates about your order at {{ user.email }}</p>
{% endif %}
"""
SUBJECTS = {"jinja": "Order {{ order.id }} confirmed", "handlebars": "Order {{order.id}} confirmed"}
CONTEXT: dict[str, Any] = {
    "user": {
        "name": "John Doe",
        "email": "john@example.com",
        "preferences": {"notifications_enabled": True},
    },
    "order": {
        "id": "ORD-12345",
        "items": [{"name": "Widget", "quantity": 2}, {"name": "Gadget", "quantity": 1}],
        "total": 99.99,
    },
    "company": "Acme Corp",
}


def _body(engine: str, *, subject: bool) -> TemplateBody:
    html = ORDER_JINJA if engine == "jinja" else ORDER_HBS
    parts = {"subject": SUBJECTS[engine], "html": html} if subject else {"html": html}
    return TemplateBody.model_validate({"engine": engine, "variants": {"email": parts}})


def _rate(fn: Any, repeat: int, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=repeat))
    return round(number / best)


def renders(repeat: int) -> dict[str, Any]:
    # The floor to compare with: plain, unsandboxed Jinja2, no limits, no data copy.
    plain = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    baseline = plain.from_string(ORDER_JINJA.replace("order.items", 'order["items"]'))
    results: dict[str, Any] = {
        "baseline_plain_jinja_html_renders_per_s": _rate(
            lambda: baseline.render(CONTEXT), repeat, 5000
        )
    }
    for engine in ("jinja", "handlebars"):
        for label, subject in (("html", False), ("email", True)):
            template = CompiledTemplate("order", _body(engine, subject=subject))
            number = 5000 if engine == "jinja" else 500

            def render(template: CompiledTemplate = template) -> None:
                template.render(CONTEXT, channels=(Channel.EMAIL,))

            results[f"{engine}_{label}_renders_per_s"] = _rate(render, repeat, number)
    return results


async def _accept(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        async with Herald(url, migrate=True) as herald:
            results: dict[str, Any] = {}
            literal = CompiledTemplate("order", _body("jinja", subject=True)).render(CONTEXT)
            email = literal[Channel.EMAIL]
            plain = NotificationRequest.model_validate(
                {"channel": "email", "to": "john@example.com", **email}
            )
            for engine in ("jinja", "handlebars"):
                await herald.put_template(f"order-{engine}", _body(engine, subject=True))
            number = 2000

            async def run(request: NotificationRequest, count: int) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    rendered, origin = await herald.templates.apply(request)
                    herald.pipeline.prepare(rendered, now=time.time(), rendered_from=origin)
                return time.perf_counter() - started

            requests = {"literal": plain}
            for engine in ("jinja", "handlebars"):
                requests[engine] = NotificationRequest.model_validate(
                    {
                        "channel": "email",
                        "to": "john@example.com",
                        "template": f"order-{engine}",
                        "data": CONTEXT,
                    }
                )
            for label, request in requests.items():
                count = number if label != "handlebars" else number // 4
                best = min([await run(request, count) for _ in range(repeat)])
                results[f"accept_prepare_{label}_us_per_item"] = round(best / count * 1e6, 1)
            return results


def run(repeat: int = 5) -> dict[str, Any]:
    return {
        "scenario": "templates",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **renders(repeat),
        **asyncio.run(_accept(repeat)),
    }
