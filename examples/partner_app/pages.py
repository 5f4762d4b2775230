"""The app's HTML, escaped by hand (three small pages do not need a template engine)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from openplatform_client import Customer, Page, Site

STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}"
    ".error{color:#a00}form{margin:1rem 0}input{margin-right:.5rem}"
)


def layout(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)} · Partner app</title>"
        f"<style>{STYLE}</style><h1>{escape(title)}</h1>{body}</html>"
    )


def rows(cells: Iterable[Iterable[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in cells)


def pager(path: str, page: Page[Any]) -> str:
    links = []
    if page.page > 1:
        links.append(f'<a href="{path}?page={page.page - 1}">previous</a>')
    if page.has_next:
        links.append(f'<a href="{path}?page={page.page + 1}">next</a>')
    return f"<p>{page.total} in all · page {page.page} {' '.join(links)}</p>"


def sites_page(customer: Customer, sites: Page[Site], csrf: str, error: str | None = None) -> str:
    table = rows((s.name, s.domain, s.status, s.site_id) for s in sites.items)
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        f"<p>Signed in as customer <b>{escape(customer.name)}</b> ({escape(customer.customer_id)}) "
        f"of SPE {escape(customer.xspe)}.</p>"
        f"<table><tr><th>name</th><th>domain</th><th>status</th><th>id</th></tr>{table}</table>"
        f"{pager('/sites', sites)}{problem}"
        '<form method="post" action="/sites">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<input name="name" placeholder="Site name" required maxlength="200">'
        '<input name="domain" placeholder="www.example.com" required maxlength="253">'
        "<button>Add site</button></form>"
    )
    return layout("Your sites", body)


# An SPE-wide launch names no customer (launch.customer_id is None): the page says so, then lists them.
SPE_WIDE = "This app was opened for the whole SPE, not for one customer: these are the SPE's customers."


def spe_page(xspe: str, customers: Page[Customer]) -> str:
    table = rows((c.name, c.contact, c.status, c.customer_id) for c in customers.items)
    body = (
        f"<p>{escape(SPE_WIDE)}</p>"
        f"<p>SPE <b>{escape(xspe)}</b>, seen with the app token.</p>"
        f"<table><tr><th>name</th><th>contact</th><th>status</th><th>id</th></tr>{table}</table>"
        f"{pager('/spe', customers)}"
    )
    return layout("Customers of the SPE", body)


def message_page(title: str, text: str) -> str:
    return layout(title, f"<p>{escape(text)}</p>")
