/**
 * Open API resource groups (SPEC §2.5): customers and sites.
 *
 * With the app token: `client.customers` (`/api/spe/customers`) and `client.sites`
 * (`/api/spe/customer/{id}/sites`). With a customer's user token: `client.asCustomer(id)`, its own
 * record and its sites (`/api/specp/sites`).
 */

import { type Customer, customerFromApi, type Page, pageParser, type Site, siteFromApi } from "./models.js";
import { requiredCustomerId } from "./protocol.js";

/** One Open API call: what to send, with whose token (null: the app token), how to read the result. */
export interface Call<T> {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  parse: (result: unknown) => T;
  customerId: string | null;
  params?: Record<string, string | number>;
  json?: Record<string, unknown>;
}

export interface Caller {
  call<T>(call: Call<T>): Promise<T>;
}

export interface PageOptions {
  page?: number;
  pageSize?: number;
}

export interface CustomerFilter {
  xspe?: string;
  status?: string;
  name?: string;
}

export interface NewCustomer {
  name: string;
  contact?: string;
  status?: string;
  /** Which SPE, when the app is installed at several. */
  xspe?: string;
}

export interface CustomerChanges {
  name?: string;
  contact?: string;
  status?: string;
  /** Optimistic concurrency: with a version, a stale write gets `Conflict` (40901). */
  version?: number;
}

export interface NewSite {
  name: string;
  domain: string;
  status?: string;
}

export interface SiteChanges {
  name?: string;
  domain?: string;
  status?: string;
  version?: number;
}

const CUSTOMERS = pageParser(customerFromApi);
const SITES = pageParser(siteFromApi);
const CUSTOMER_SIDE = "/api/specp/sites";

const deleted = (): void => undefined;

/** Only the members that are set (query parameters, PUT bodies). */
function defined<T extends Record<string, unknown>>(values: T): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === "string" || typeof value === "number") out[key] = value;
  }
  return out;
}

function segment(id: string): string {
  return encodeURIComponent(id);
}

/** `/api/spe/customer/{id}`; throws `CustomerIdRequired` for a missing id (the methods below are
 * `async`, so callers get a rejected promise, before any request). */
function customerPath(customerId: string): string {
  return `/api/spe/customer/${segment(requiredCustomerId(customerId))}`;
}

function speSide(customerId: string): string {
  return `${customerPath(customerId)}/sites`;
}

/** Every item of every page, one request per page (memory stays flat however long the list). */
export async function* iterate<T>(fetchPage: (page: number) => Promise<Page<T>>): AsyncGenerator<T, void, undefined> {
  for (let number = 1; ; number += 1) {
    const page = await fetchPage(number);
    yield* page.items;
    if (!page.hasNext) return;
  }
}

/** `client.customers`: scopes `customer:read` / `customer:write`, with the app token. */
export class Customers {
  constructor(private readonly client: Caller) {}

  list(options: CustomerFilter & PageOptions = {}): Promise<Page<Customer>> {
    const { xspe, status, name, page = 1, pageSize = 20 } = options;
    const params = defined({ xspe, status, name, page, page_size: pageSize });
    return this.client.call({ method: "GET", path: "/api/spe/customers", parse: CUSTOMERS, customerId: null, params });
  }

  /** Every customer, page after page: `for await (const c of client.customers.iter()) ...`. */
  iter(options: CustomerFilter & { pageSize?: number } = {}): AsyncGenerator<Customer, void, undefined> {
    return iterate((page) => this.list({ ...options, pageSize: options.pageSize ?? 100, page }));
  }

  async get(customerId: string): Promise<Customer> {
    return this.client.call({ method: "GET", path: customerPath(customerId), parse: customerFromApi, customerId: null });
  }

  create(customer: NewCustomer): Promise<Customer> {
    const json = defined({ name: customer.name, contact: customer.contact, status: customer.status, xspe: customer.xspe });
    return this.client.call({ method: "POST", path: "/api/spe/customers", parse: customerFromApi, customerId: null, json });
  }

  async update(customerId: string, changes: CustomerChanges): Promise<Customer> {
    const json = defined({ ...changes });
    return this.client.call({ method: "PUT", path: customerPath(customerId), parse: customerFromApi, customerId: null, json });
  }

  /** Deletes the customer and its sites. */
  async delete(customerId: string): Promise<void> {
    await this.client.call({ method: "DELETE", path: customerPath(customerId), parse: deleted, customerId: null });
  }
}

/** `client.sites`: any customer the app reaches, with the app token (`site:read` / `site:write`). */
export class Sites {
  constructor(private readonly client: Caller) {}

  async list(customerId: string, options: { status?: string } & PageOptions = {}): Promise<Page<Site>> {
    return listSites(this.client, speSide(customerId), null, options);
  }

  iter(customerId: string, options: { status?: string; pageSize?: number } = {}): AsyncGenerator<Site, void, undefined> {
    requiredCustomerId(customerId); // now, not at the first page
    return iterate((page) => this.list(customerId, { ...options, pageSize: options.pageSize ?? 100, page }));
  }

  async get(customerId: string, siteId: string): Promise<Site> {
    return this.client.call({ method: "GET", path: `${speSide(customerId)}/${segment(siteId)}`, parse: siteFromApi, customerId: null });
  }

  async create(customerId: string, site: NewSite): Promise<Site> {
    return createSite(this.client, speSide(customerId), null, site);
  }

  async update(customerId: string, siteId: string, changes: SiteChanges): Promise<Site> {
    return updateSite(this.client, speSide(customerId), null, siteId, changes);
  }

  async delete(customerId: string, siteId: string): Promise<void> {
    await this.client.call({ method: "DELETE", path: `${speSide(customerId)}/${segment(siteId)}`, parse: deleted, customerId: null });
  }
}

/** `client.asCustomer(id).sites`: one customer's sites, with that customer's user token. */
export class CustomerSites {
  constructor(private readonly client: Caller, readonly customerId: string) {}

  list(options: { status?: string } & PageOptions = {}): Promise<Page<Site>> {
    return listSites(this.client, CUSTOMER_SIDE, this.customerId, options);
  }

  iter(options: { status?: string; pageSize?: number } = {}): AsyncGenerator<Site, void, undefined> {
    return iterate((page) => this.list({ ...options, pageSize: options.pageSize ?? 100, page }));
  }

  get(siteId: string): Promise<Site> {
    return this.client.call({ method: "GET", path: `${CUSTOMER_SIDE}/${segment(siteId)}`, parse: siteFromApi, customerId: this.customerId });
  }

  create(site: NewSite): Promise<Site> {
    return createSite(this.client, CUSTOMER_SIDE, this.customerId, site);
  }

  update(siteId: string, changes: SiteChanges): Promise<Site> {
    return updateSite(this.client, CUSTOMER_SIDE, this.customerId, siteId, changes);
  }

  async delete(siteId: string): Promise<void> {
    await this.client.call({ method: "DELETE", path: `${CUSTOMER_SIDE}/${segment(siteId)}`, parse: deleted, customerId: this.customerId });
  }
}

/**
 * `client.asCustomer(customerId)`: one customer's view through its user token. The token comes
 * from `exchangeCode` and is refreshed by the client as needed; without one, calls throw
 * `ReauthorizationRequired`.
 */
export class CustomerSession {
  readonly sites: CustomerSites;

  readonly customerId: string;

  constructor(private readonly client: Caller, customerId: string) {
    this.customerId = requiredCustomerId(customerId);
    this.sites = new CustomerSites(client, this.customerId);
  }

  /** The customer itself (`install_login` is enough). */
  get(): Promise<Customer> {
    const path = customerPath(this.customerId);
    return this.client.call({ method: "GET", path, parse: customerFromApi, customerId: this.customerId });
  }
}

function listSites(
  client: Caller, base: string, customerId: string | null, options: { status?: string } & PageOptions,
): Promise<Page<Site>> {
  const { status, page = 1, pageSize = 20 } = options;
  return client.call({ method: "GET", path: base, parse: SITES, customerId, params: defined({ status, page, page_size: pageSize }) });
}

function createSite(client: Caller, base: string, customerId: string | null, site: NewSite): Promise<Site> {
  const json = defined({ name: site.name, domain: site.domain, status: site.status });
  return client.call({ method: "POST", path: base, parse: siteFromApi, customerId, json });
}

function updateSite(
  client: Caller, base: string, customerId: string | null, siteId: string, changes: SiteChanges,
): Promise<Site> {
  const json = defined({ ...changes });
  return client.call({ method: "PUT", path: `${base}/${segment(siteId)}`, parse: siteFromApi, customerId, json });
}
