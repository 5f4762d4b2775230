/** The app's HTML, escaped by hand (three small pages do not need a template engine). */

const STYLE =
  "body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}" +
  "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}" +
  ".error{color:#a00}form{margin:1rem 0}input{margin-right:.5rem}";

/** @param {unknown} value */
export function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** @param {string} title @param {string} body */
function layout(title, body) {
  return `<!doctype html><html lang=en><meta charset=utf-8><title>${escape(title)} · Partner app (Node.js)</title>` +
    `<style>${STYLE}</style><h1>${escape(title)}</h1>${body}</html>`;
}

/** @param {string[][]} cells */
function rows(cells) {
  return cells.map((row) => `<tr>${row.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`).join("");
}

/** @param {string} path @param {import("@openplatform/client").Page<unknown>} page */
function pager(path, page) {
  const links = [];
  if (page.page > 1) links.push(`<a href="${path}?page=${page.page - 1}">previous</a>`);
  if (page.hasNext) links.push(`<a href="${path}?page=${page.page + 1}">next</a>`);
  return `<p>${page.total} in all · page ${page.page} ${links.join(" ")}</p>`;
}

/**
 * @param {import("@openplatform/client").Customer} customer
 * @param {import("@openplatform/client").Page<import("@openplatform/client").Site>} sites
 * @param {string} csrf
 * @param {string | null} error
 */
export function sitesPage(customer, sites, csrf, error = null) {
  const table = rows(sites.items.map((s) => [s.name, s.domain, s.status, s.siteId]));
  const problem = error ? `<p class="error">${escape(error)}</p>` : "";
  return layout("Your sites",
    `<p>Signed in as customer <b>${escape(customer.name)}</b> (${escape(customer.customerId)}) of SPE ${escape(customer.xspe)}.</p>` +
    `<table><tr><th>name</th><th>domain</th><th>status</th><th>id</th></tr>${table}</table>` +
    `${pager("/sites", sites)}${problem}` +
    `<form method="post" action="/sites"><input type="hidden" name="csrf" value="${escape(csrf)}">` +
    '<input name="name" placeholder="Site name" required maxlength="200">' +
    '<input name="domain" placeholder="www.example.com" required maxlength="253">' +
    "<button>Add site</button></form>");
}

/** An SPE-wide launch names no customer (`launch.customerId` is null): the page says so, then lists them. */
export const SPE_WIDE = "This app was opened for the whole SPE, not for one customer: these are the SPE's customers.";

/** @param {string} xspe @param {import("@openplatform/client").Page<import("@openplatform/client").Customer>} customers */
export function spePage(xspe, customers) {
  const table = rows(customers.items.map((c) => [c.name, c.contact, c.status, c.customerId]));
  return layout("Customers of the SPE",
    `<p>${escape(SPE_WIDE)}</p>` +
    `<p>SPE ${escape(xspe)}, listed with the app token.</p>` +
    `<table><tr><th>name</th><th>contact</th><th>status</th><th>id</th></tr>${table}</table>${pager("/spe", customers)}`);
}

/** @param {string} title @param {string} text */
export function messagePage(title, text) {
  return layout(title, `<p>${escape(text)}</p>`);
}
